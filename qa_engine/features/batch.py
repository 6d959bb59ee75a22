"""Batch twin: every feature of a set over a bar table, with polars (numpy where polars has no expression).

Input: a polars DataFrame or LazyFrame with `ts` (bar close time, ns since epoch or datetime) and
open, high, low, close, volume (+ optional taker_buy_volume). Output: one row per bar, `ts` and one
column per feature, null before each feature's warm-up (never NaN). The table is split at gaps
(consecutive `ts` further apart than the bar interval) and every segment starts its warm-up anew,
exactly like the streaming engine, which resets at a gap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from qa_engine.errors import DataError
from qa_engine.features.spec import FeatureSet
from qa_engine.features.spec import available_inputs

BASE_COLUMNS = ("open", "high", "low", "close", "volume")
ONE_THIRD = 1.0 / 3.0


class BatchContext:
    """One contiguous segment of bars, plus memoised shared intermediates (polars expressions)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self.length = frame.height
        self._memo: dict[tuple, Any] = {}
        self._arrays: dict[str, np.ndarray] = {}
        # Shared intermediate expressions become named columns, computed once, in stages: an
        # intermediate's stage is one more than the latest stage of the intermediates it reads.
        self.stages: list[dict[str, pl.Expr]] = []
        self._stage_of: dict[str, int] = {}

    def memo(self, key: tuple, build: Callable[[], Any]) -> Any:
        if key not in self._memo:
            value = build()
            if isinstance(value, pl.Expr):
                value = self._materialise(value)
            self._memo[key] = value
        return self._memo[key]

    def _materialise(self, expression: pl.Expr) -> pl.Expr:
        name = f"__intermediate_{len(self._stage_of)}"
        stage = 1 + max((self._stage_of.get(root, -1) for root in expression.meta.root_names()), default=-1)
        while len(self.stages) <= stage:
            self.stages.append({})
        self.stages[stage][name] = expression.alias(name)
        self._stage_of[name] = stage
        return pl.col(name)

    def array(self, column: str) -> np.ndarray:
        """A base column as a float64 numpy array (ts as int64 ns)."""
        if column not in self._arrays:
            series = self.frame.get_column(column)
            dtype = np.int64 if column == "ts" else np.float64
            self._arrays[column] = series.to_numpy().astype(dtype, copy=False)
        return self._arrays[column]

    # Shared intermediates. Every one is defined from the first bar (no nulls) where an EMA
    # consumes it, so that batch and streaming seed their recursions on the same bar and value.

    def col(self, name: str) -> pl.Expr:
        return pl.col(name)

    def previous_close(self) -> pl.Expr:
        return self.memo(("previous_close",), lambda: pl.col("close").shift(1).fill_null(pl.col("close")))

    def typical_price(self) -> pl.Expr:
        # Multiplication by ONE_THIRD, never "/ 3.0": polars rewrites division by a literal into
        # multiplication by its reciprocal, and the streaming twin must round identically.
        return self.memo(("typical",), lambda: (pl.col("high") + pl.col("low") + pl.col("close")) * ONE_THIRD)

    def log_return(self) -> pl.Expr:
        return self.memo(("log_return",), lambda: (pl.col("close") / self.previous_close()).log())

    def sma(self, source: pl.Expr, key: str, period_bars: int) -> pl.Expr:
        return self.memo(("sma", key, period_bars), lambda: source.rolling_mean(period_bars))

    def rolling_sum(self, source: pl.Expr, key: str, period_bars: int) -> pl.Expr:
        return self.memo(("sum", key, period_bars), lambda: source.rolling_sum(period_bars))

    def rolling_std(self, source: pl.Expr, key: str, period_bars: int) -> pl.Expr:
        """Population standard deviation (ddof 0, the TA-Lib STDDEV / BBANDS convention)."""
        return self.memo(("std", key, period_bars), lambda: source.rolling_std(period_bars, ddof=0))

    def ema(self, source: pl.Expr, key: str, alpha: float) -> pl.Expr:
        """y_0 = x_0, y_t = y_{t-1} + (x_t - y_{t-1}) alpha (polars ewm_mean, adjust=False)."""
        return self.memo(("ema", key, alpha), lambda: source.ewm_mean(alpha=alpha, adjust=False))

    def rolling_max(self, source: pl.Expr, key: str, period_bars: int) -> pl.Expr:
        return self.memo(("max", key, period_bars), lambda: source.rolling_max(period_bars))

    def rolling_min(self, source: pl.Expr, key: str, period_bars: int) -> pl.Expr:
        return self.memo(("min", key, period_bars), lambda: source.rolling_min(period_bars))


def ratio_or(
    numerator: pl.Expr, denominator: pl.Expr, default: float, floor: pl.Expr | float = 0.0
) -> pl.Expr:
    """numerator / denominator where denominator > floor, else `default` (documented per feature)."""
    return pl.when(denominator > floor).then(numerator / denominator).otherwise(pl.lit(default))


def prepare_bars(bars: pl.DataFrame | pl.LazyFrame, interval_ns: int) -> pl.DataFrame:
    """Validate and normalise a bar table: ts as int64 ns, float64 prices, strictly increasing ts.

    Nulls, NaN/inf and unsorted or duplicate times are refused with a DataError, never filled.
    """
    frame = bars.collect() if isinstance(bars, pl.LazyFrame) else bars
    missing = [column for column in ("ts", *BASE_COLUMNS) if column not in frame.columns]
    if missing:
        raise DataError(f"bar table lacks columns {missing}; it has {frame.columns}")
    ts = frame.get_column("ts")
    if ts.dtype.is_temporal():
        ts = ts.dt.epoch("ns")  # datetime of any unit and zone -> ns since the epoch (UTC)
    frame = frame.with_columns(ts.cast(pl.Int64).alias("ts"))
    float_columns = [c for c in (*BASE_COLUMNS, "taker_buy_volume") if c in frame.columns]
    frame = frame.with_columns([pl.col(c).cast(pl.Float64) for c in float_columns])
    nulls = {c: frame.get_column(c).null_count() for c in ("ts", *float_columns)}
    bad = {c: n for c, n in nulls.items() if n}
    if bad:
        raise DataError(f"bar table has nulls (column: count) {bad}; clean the data first")
    non_finite = frame.select([(~pl.col(c).is_finite()).sum().alias(c) for c in float_columns]).row(0)
    if any(non_finite):
        raise DataError(
            f"bar table has NaN/inf values in {dict(zip(float_columns, non_finite, strict=True))}"
        )
    step = frame.get_column("ts").diff().drop_nulls()
    if step.len() and step.min() <= 0:
        position = int((step <= 0).arg_true()[0]) + 1
        raise DataError(f"bar table ts is not strictly increasing at row {position}")
    if interval_ns <= 0:
        raise DataError(f"bar interval must be positive, got {interval_ns} ns")
    return frame


def segment_bounds(ts: np.ndarray, interval_ns: int) -> list[tuple[int, int]]:
    """[start, end) row ranges of the gap-free runs of bars."""
    breaks = np.flatnonzero(np.diff(ts) != interval_ns) + 1
    edges = [0, *breaks.tolist(), len(ts)]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1) if edges[i + 1] > edges[i]]


def _masked_series(name: str, values: np.ndarray, warmup_bars: int) -> pl.Series:
    """A numpy feature column with null (not NaN) before its warm-up; later NaNs stay visible."""
    series = pl.Series(name, values, dtype=pl.Float64)
    head = min(warmup_bars - 1, len(values))
    if head <= 0:
        return series
    return pl.concat([pl.Series(name, [None] * head, dtype=pl.Float64), series.slice(head)])


def compute_features_batch(
    bars: pl.DataFrame | pl.LazyFrame, feature_set: FeatureSet, interval_ns: int
) -> pl.DataFrame:
    """All features of `feature_set` over `bars`: `ts` + one Float64 column per feature, in set order.

    Missing inputs are resolved by the set (declared fallback or a DataError that names them);
    values before a feature's warm-up (counted from the start of each gap-free segment) are null.
    Kinds computed with numpy (FFD, wavelet, volume profile) run in worker threads while polars
    evaluates the expression kinds: both release the GIL, so the two cores work at once.
    """
    from concurrent.futures import ThreadPoolExecutor

    from qa_engine.features.registry import kind_of

    frame = prepare_bars(bars, interval_ns)
    resolved = feature_set.resolve(available_inputs(frame.columns))
    kinds = [kind_of(spec.kind) for spec in resolved.specs]
    numpy_kinds = sorted({kind.name for kind in kinds if kind.engine == "numpy"})
    parts: list[pl.DataFrame] = []
    with ThreadPoolExecutor(max_workers=max(1, len(numpy_kinds))) as pool:
        for start, end in segment_bounds(frame.get_column("ts").to_numpy(), interval_ns):
            segment = frame.slice(start, end - start)
            context = BatchContext(segment)
            for column in ("ts", *BASE_COLUMNS):
                context.array(column)  # fill the shared cache before threads read it

            def numpy_columns(kind_name: str, context: BatchContext = context) -> dict[str, pl.Series]:
                own = BatchContext(context.frame)  # a private memo per thread
                own._arrays = context._arrays
                return {
                    spec.name: _masked_series(spec.name, kind.batch(own, spec), spec.warmup_bars)
                    for spec, kind in zip(resolved.specs, kinds, strict=True)
                    if kind.name == kind_name
                }

            futures = [pool.submit(numpy_columns, name) for name in numpy_kinds]
            row = pl.int_range(pl.len(), dtype=pl.Int64)
            expressions = [
                pl.when(row >= spec.warmup_bars - 1)
                .then(kind.batch(context, spec).cast(pl.Float64))
                .otherwise(None)
                .alias(spec.name)
                for spec, kind in zip(resolved.specs, kinds, strict=True)
                if kind.engine == "polars"
            ]
            plan = segment.lazy()
            for stage in context.stages:
                plan = plan.with_columns(list(stage.values()))
            # The in-memory engine: polars' streaming engine (the 2.x default) cuts columns into
            # morsels whose boundaries depend on the table length, which changes the last bits of
            # rolling sums; in memory, the value at bar t is bit-identical whether or not later
            # bars exist.
            computed = plan.select([pl.col("ts"), *expressions]).collect(engine="in-memory")
            for future in futures:
                computed = computed.with_columns(list(future.result().values()))
            parts.append(computed.select(["ts", *resolved.names]))
    return (
        pl.concat(parts)
        if parts
        else pl.DataFrame(schema={"ts": pl.Int64, **dict.fromkeys(resolved.names, pl.Float64)})
    )
