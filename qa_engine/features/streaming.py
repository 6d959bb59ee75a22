"""Streaming twin: one engine that updates every feature of a set incrementally, bar by bar.

Design, for speed in CPython: the engine is ONE generated Python function. Every feature and
shared intermediate contributes a few lines of code to it (`StreamContext` collects them) and
keeps its state (ring buffers, running sums, EMA values) in variables of the enclosing factory,
so a bar costs straight-line arithmetic on local variables: no per-feature object, call or list
lookup (a first closure-per-feature design measured ~115 us/bar for the default set on this
2-core machine, this one about half; see bench/bench_features.py). Intermediates are shared by
key: the EMA-26 behind MACD and behind the `ema_26` feature is one line. Every step is O(1) or
O(window): window sums are running sums refreshed exactly every REFRESH_BARS bars (math.fsum),
EMAs use the exact recursion of polars' ewm_mean(adjust=False), windowed numerics (FFD, wavelet,
volume profile, OBV slope) call the same kernels as the batch twin on a contiguous view of a
double-length numpy ring buffer.

The generated source is kept on the engine (`engine.source`) for reading and debugging.
A gap (bar close times further apart than the interval) restarts every state, so the warm-up
restarts, as in the batch twin, which splits the table at gaps.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import numpy as np

from qa_engine.errors import DataError
from qa_engine.features.spec import FeatureSet
from qa_engine.features.spec import FeatureSpec

NAN = math.nan
ONE_THIRD = 1.0 / 3.0  # typical price = (h + l + c) * ONE_THIRD in both twins (see batch.typical_price)

# The bar's inputs, as variable names inside the generated update function.
TS, OPEN, HIGH, LOW, CLOSE, VOLUME, TAKER_BUY_VOLUME, BAR_INDEX = (
    "ts",
    "open_price",
    "high",
    "low",
    "close",
    "volume",
    "taker_buy_volume",
    "bar_index",
)
INPUT_NAMES = (TS, OPEN, HIGH, LOW, CLOSE, VOLUME, TAKER_BUY_VOLUME, BAR_INDEX)
# Running window sums are recomputed exactly (math.fsum) this often, bounding their float drift
# to a few ulps of the sum (a pure running sum drifts by ~1e-9 of the price over 263k bars).
REFRESH_BARS = 16
# Rolling max / min over more bars than this use a monotonic deque instead of scanning the ring.
MONOTONIC_DEQUE_MIN_BARS = 32


class StreamContext:
    """Collects the code of one engine: state variables, per-bar lines, shared intermediates by key.

    Helpers return the NAME of the variable that holds a value after the lines emitted so far.
    """

    def __init__(self) -> None:
        self.init_lines: list[str] = []
        # Lines of the per-bar code, in order; a callable block writes its lines at compile time
        # (windows: they learn late which of sum / mean / max / min / std they must produce).
        self.blocks: list[list[str] | Callable[[], list[str]]] = []
        self.persistent: list[str] = []
        self.constants: dict[str, Any] = {"nan": NAN, "fsum": math.fsum, "sqrt": math.sqrt, "log": math.log}
        self._memo: dict[tuple, Any] = {}
        self._counter = itertools.count()

    # ---- code collection ----------------------------------------------------------------

    def name(self, hint: str) -> str:
        return f"{hint}_{next(self._counter)}"

    def state(self, hint: str, initial: str) -> str:
        """A variable that keeps its value from bar to bar (initialised by the code `initial`)."""
        variable = self.name(hint)
        self.init_lines.append(f"{variable} = {initial}")
        self.persistent.append(variable)
        return variable

    def constant(self, hint: str, value: Any) -> str:
        variable = self.name(hint)
        self.constants[variable] = value
        return variable

    def emit(self, *lines: str) -> list[str]:
        """Append a block of lines to the per-bar code; returns it (a later request may extend it)."""
        block = list(lines)
        self.blocks.append(block)
        return block

    def temporary(self, hint: str, expression: str) -> str:
        variable = self.name(hint)
        self.emit(f"{variable} = {expression}")
        return variable

    def memo(self, key: tuple, build: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def feature(self, spec: FeatureSpec) -> str:
        """The variable of a feature's value; one computation per (kind, params), whatever its name."""
        from qa_engine.features.registry import kind_of

        return self.memo(("feature", spec.kind, spec.params), lambda: kind_of(spec.kind).stream(self, spec))

    def compile(self, outputs: list[str]) -> tuple[Callable[[], Callable[..., tuple]], str]:
        """(factory of fresh update functions, generated source)."""
        indent = "        "
        blocks = [block() if callable(block) else block for block in self.blocks]
        lines = ["def factory():"]
        lines += [f"    {line}" for line in self.init_lines]
        lines.append(f"    def update({', '.join(INPUT_NAMES)}):")
        if self.persistent:
            for start in range(0, len(self.persistent), 8):
                lines.append(f"{indent}nonlocal {', '.join(self.persistent[start : start + 8])}")
        for block in blocks:
            lines += [f"{indent}{line}" for line in block]
        lines.append(f"{indent}return ({', '.join(outputs)},)")
        lines.append("    return update")
        source = "\n".join(lines) + "\n"
        namespace: dict[str, Any] = dict(self.constants)
        exec(compile(source, "<qa_engine.features streaming engine>", "exec"), namespace)
        return namespace["factory"], source

    # ---- shared intermediates -----------------------------------------------------------

    def previous_close(self) -> str:
        """The previous bar's close (the bar's own close on the first bar of a segment)."""

        def build() -> str:
            last = self.state("last_close", "nan")
            out = self.name("previous_close")
            self.emit(f"{out} = {CLOSE} if {last} != {last} else {last}", f"{last} = {CLOSE}")
            return out

        return self.memo(("previous_close",), build)

    def typical_price(self) -> str:
        def build() -> str:
            third = self.constant("one_third", ONE_THIRD)
            return self.temporary("typical", f"({HIGH} + {LOW} + {CLOSE}) * {third}")

        return self.memo(("typical",), build)

    def log_return(self) -> str:
        def build() -> str:
            return self.temporary("log_return", f"log({CLOSE} / {self.previous_close()})")

        return self.memo(("log_return",), build)

    def _window(self, source: str, key: str, period_bars: int) -> dict[str, Any]:
        """One shared block per (source, window), written at compile time with only what was asked for.

        Ring buffer + running sum (refreshed exactly every REFRESH_BARS bars) for sums, means and
        the std; max / min by a builtin scan of the ring (short windows, O(window) in C) or by a
        monotonic deque (long windows, amortised O(1)); the std is an exact two-pass over the ring
        around the mean (no cancellation, unlike a running sum of squares on prices).
        """

        def build() -> dict[str, Any]:
            record: dict[str, Any] = {"names": {}, "source": source, "bars": period_bars}
            self.blocks.append(lambda: self._window_lines(record))
            return record

        return self.memo(("window", key, period_bars), build)

    def _window_output(self, source: str, key: str, period_bars: int, which: str) -> str:
        names: dict[str, str] = self._window(source, key, period_bars)["names"]
        if which not in names:
            names[which] = self.name(which)
        return names[which]

    def _window_lines(self, record: dict[str, Any]) -> list[str]:
        source, bars, names = record["source"], record["bars"], record["names"]
        use_deque = bars > MONOTONIC_DEQUE_MIN_BARS
        needs_sum = any(item in names for item in ("sum", "mean", "std"))
        needs_ring = needs_sum or (not use_deque and ("max" in names or "min" in names))
        lines: list[str] = []
        ring = total = mean = ""
        if needs_ring:
            ring = self.state("ring", f"[0.0] * {bars}")
            position = self.state("position", "0")
            leaving = self.name("leaving")
            lines += [
                f"{leaving} = {ring}[{position}]",
                f"{ring}[{position}] = {source}",
                f"{position} += 1",
                f"if {position} == {bars}:",
                f"    {position} = 0",
            ]
        if needs_sum:
            total = names.get("sum") or self.name("sum")
            self.persistent.append(total)
            self.init_lines.append(f"{total} = 0.0")
            since = self.state("since_refresh", "0")
            mean = names.get("mean") or self.name("mean")
            lines += [
                f"{since} += 1",
                f"if {since} >= {REFRESH_BARS}:",
                f"    {since} = 0",
                f"    {total} = fsum({ring})",
                "else:",
                f"    {total} += {source} - {leaving}",
                f"{mean} = {total} / {bars}",
            ]
        for which, keeps in (("max", "<="), ("min", ">=")):
            if which not in names:
                continue
            if not use_deque:
                lines.append(f"{names[which]} = {which}({ring})")
                continue
            queue = self.state(f"{which}_queue", "deque()")
            self.constants["deque"] = deque
            lines += [
                f"while {queue} and {queue}[-1][1] {keeps} {source}:",
                f"    {queue}.pop()",
                f"{queue}.append(({BAR_INDEX}, {source}))",
                f"if {queue}[0][0] <= {BAR_INDEX} - {bars}:",
                f"    {queue}.popleft()",
                f"{names[which]} = {queue}[0][1]",
            ]
        if "std" in names:
            accumulated, item, deviation = self.name("accumulated"), self.name("item"), self.name("deviation")
            lines += [
                f"{accumulated} = 0.0",
                f"for {item} in {ring}:",
                f"    {deviation} = {item} - {mean}",
                f"    {accumulated} += {deviation} * {deviation}",
                f"{names['std']} = sqrt({accumulated} / {bars})",
            ]
        return lines

    def rolling_sum(self, source: str, key: str, period_bars: int) -> str:
        if period_bars == 1:
            return source
        return self._window_output(source, key, period_bars, "sum")

    def sma(self, source: str, key: str, period_bars: int) -> str:
        if period_bars == 1:
            return source
        return self._window_output(source, key, period_bars, "mean")

    def rolling_std(self, source: str, key: str, period_bars: int, centred: bool = False) -> str:
        """Population std. `centred=True` (sources with mean ~ 0, e.g. returns): from sums of squares."""
        if not centred:
            return self._window_output(source, key, period_bars, "std")

        def build() -> str:
            square = self.temporary("square", f"{source} * {source}")
            squares_mean = self.sma(square, f"{key}_squared", period_bars)
            mean = self.sma(source, key, period_bars)
            variance = self.temporary("variance", f"{squares_mean} - {mean} * {mean}")
            return self.temporary("std", f"sqrt({variance}) if {variance} > 0.0 else 0.0")

        return self.memo(("centred_std", key, period_bars), build)

    def rolling_max(self, source: str, key: str, period_bars: int) -> str:
        if period_bars == 1:
            return source
        return self._window_output(source, key, period_bars, "max")

    def rolling_min(self, source: str, key: str, period_bars: int) -> str:
        if period_bars == 1:
            return source
        return self._window_output(source, key, period_bars, "min")

    def ema(self, source: str, key: str, alpha: float) -> str:
        """y_0 = x_0, y_t = y_{t-1} + (x_t - y_{t-1}) alpha: polars' ewm_mean(adjust=False) exactly."""

        def build() -> str:
            state = self.state("ema", "nan")
            smoothing = self.constant("alpha", alpha)
            self.emit(
                f"{state} = {source} if {state} != {state} else {state} + ({source} - {state}) * {smoothing}"
            )
            return state

        return self.memo(("ema", key, alpha), build)

    def lagged(self, source: str, key: str, lag_bars: int) -> str:
        """The source's value `lag_bars` bars ago (NaN until then)."""

        def build() -> str:
            ring = self.state("lag_ring", f"[nan] * {lag_bars + 1}")
            position = self.state("lag_position", "0")
            out = self.name("lagged")
            self.emit(
                f"{ring}[{position}] = {source}",
                f"{position} = {position} + 1 if {position} < {lag_bars} else 0",
                f"{out} = {ring}[{position}]",
            )
            return out

        return self.memo(("lag", key, lag_bars), build)

    def window_array(self, source: str, key: str, window_bars: int) -> str:
        """A double-length numpy ring buffer; returns an expression: the window, oldest first."""

        def build() -> str:
            zeros = self.constant("zeros", np.zeros)
            buffer = self.state("buffer", f"{zeros}({2 * window_bars})")
            position = self.state("buffer_position", "0")
            self.emit(
                f"{buffer}[{position}] = {source}",
                f"{buffer}[{position} + {window_bars}] = {source}",
                f"{position} += 1",
                f"if {position} == {window_bars}:",
                f"    {position} = 0",
            )
            return f"{buffer}[{position}:{position} + {window_bars}]"

        return self.memo(("array", key, window_bars), build)


class StreamingFeatureEngine:
    """Incremental features of one instrument's bars: `update` once per closed bar.

    `update` returns the feature values of the bar in set order, NaN where a feature is still in
    its warm-up; `warm` says whether every feature is past it. Bars must come in time order; a gap
    (close times more than one interval apart) restarts the warm-up.
    """

    def __init__(
        self, feature_set: FeatureSet, interval_ns: int, available: Sequence[str] = ("ohlcv",)
    ) -> None:
        self.feature_set = feature_set.resolve(frozenset(available))
        self.interval_ns = interval_ns
        self.names = self.feature_set.names
        self._warmups = [spec.warmup_bars for spec in self.feature_set.specs]
        self._set_warmup = self.feature_set.warmup_bars
        self._needs_taker = any("taker_buy_volume" in spec.inputs for spec in self.feature_set.specs)
        context = StreamContext()
        outputs = [context.feature(spec) for spec in self.feature_set.specs]
        self._factory, self.source = context.compile(outputs)
        self.reset()

    def reset(self) -> None:
        """Forget every bar: fresh state, warm-up restarts."""
        self._update = self._factory()
        self._bar_index = -1
        self._last_ts: int | None = None

    @property
    def warm(self) -> bool:
        return self._bar_index >= self._set_warmup - 1

    @property
    def bars_in_segment(self) -> int:
        return self._bar_index + 1

    def update(
        self,
        ts_ns: int,
        open_price: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        taker_buy_volume: float = NAN,
    ) -> tuple[float, ...]:
        if not (
            open_price == open_price and high == high and low == low and close == close and volume == volume
        ):
            raise DataError(f"bar at ts={ts_ns} has a NaN price or volume; clean the data first")
        if self._needs_taker and taker_buy_volume != taker_buy_volume:
            raise DataError(
                f"bar at ts={ts_ns} has no taker buy volume, which this engine was built to use; "
                "build it with available=('ohlcv',) to use the declared fallback instead"
            )
        last = self._last_ts
        if last is not None and ts_ns - last != self.interval_ns:
            if ts_ns <= last:
                raise DataError(f"bar at ts={ts_ns} is not after the previous bar at ts={last}")
            self.reset()
        self._last_ts = ts_ns
        self._bar_index += 1
        index = self._bar_index
        result = self._update(ts_ns, open_price, high, low, close, volume, taker_buy_volume, index)
        if index >= self._set_warmup - 1:
            return result
        return tuple(
            value if index >= warmup - 1 else NAN for value, warmup in zip(result, self._warmups, strict=True)
        )


def stream_features(
    engine: StreamingFeatureEngine,
    ts_ns: np.ndarray,
    open_price: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    taker_buy_volume: np.ndarray | None = None,
) -> np.ndarray:
    """Feed arrays through the engine bar by bar; (n, features) float64, NaN in warm-up (tests, bench)."""
    count = len(ts_ns)
    taker = [NAN] * count if taker_buy_volume is None else taker_buy_volume.tolist()
    update = engine.update
    rows = [
        update(*bar)
        for bar in zip(
            ts_ns.tolist(),
            open_price.tolist(),
            high.tolist(),
            low.tolist(),
            close.tolist(),
            volume.tolist(),
            taker,
            strict=True,
        )
    ]
    return np.asarray(rows, dtype=np.float64).reshape(count, len(engine.names))
