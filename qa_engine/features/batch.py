"""Batch twin: every feature of a set over a bar table, with polars (numpy where polars has no expression).

Input: a polars DataFrame or LazyFrame with `ts` (bar close time, ns since epoch or datetime) and
open, high, low, close, volume (+ optional taker_buy_volume). Output: one row per bar, `ts` and one
column per feature, null before each feature's warm-up (never NaN). The table is split at gaps
(consecutive `ts` further apart than the bar interval) and every segment starts its warm-up anew,
exactly like the streaming engine, which resets at a gap.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from qa_engine.errors import DataError
from qa_engine.features.contexts import BatchContext
from qa_engine.features.registry import kind_of
from qa_engine.features.spec import FeatureSet
from qa_engine.features.spec import available_inputs

BASE_COLUMNS = ("open", "high", "low", "close", "volume")


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
