"""The contexts feature families build on: what the batch and the streaming twins give a family.

`BatchContext` is one gap-free segment of bars with memoised shared intermediates as polars
expressions (and `ratio_or`); `StreamContext` collects the code of the streaming engine's one
generated update function, with the variable names of the bar's inputs (`TS`, `OPEN`, ... `BAR_INDEX`).
See `qa_engine.features.batch` and `qa_engine.features.streaming` for how the twins use them.

Dependencies point one way: the families (`qa_engine.features.families.*`) import this module (and
`spec`, `kernels`), never the twins; the registry imports the families; the twins import the
registry and this module. A family that needs another feature's streaming value asks
`StreamContext.feature`, which resolves the kind through the function the engine passes in (the
registry's `kind_of`), so this module imports neither. `tests/unit/features/test_import_graph.py`
checks that the package has no import circle.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from qa_engine.features.spec import FeatureSpec

# Typical price = (h + l + c) * ONE_THIRD in both twins (see BatchContext.typical_price).
ONE_THIRD = 1.0 / 3.0


# ---- the batch twin's context ----------------------------------------------------------------------


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


# ---- the streaming twin's context ------------------------------------------------------------------

NAN = math.nan

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
# The math functions a family may pass to `StreamContext.constant`, as the generated module names them.
MATH_FUNCTIONS: dict[Any, str] = {
    math.sin: "math.sin",
    math.cos: "math.cos",
    math.erfc: "math.erfc",
}
# The compiled engine's one signature: the four state arrays, the bar's inputs (ts and bar_index
# int64, prices and volumes float64), the output row.
ENGINE_SIGNATURE = (
    "void(float64[::1], int64[::1], float64[::1], int64[::1], "
    "int64, float64, float64, float64, float64, float64, float64, int64, float64[::1])"
)


@dataclass(frozen=True)
class StreamProgram:
    """A generated engine: the source of its module (whose `update` writes one bar's feature values into
    `out`) and the initial values of its state arrays (a fresh copy of each starts or restarts it)."""

    source: str
    float_state: np.ndarray
    int_state: np.ndarray
    float_buffer: np.ndarray
    int_buffer: np.ndarray


class StreamContext:
    """Collects the code of one engine: state, per-bar lines, constants, shared intermediates by key.

    Helpers return the NAME of the variable that holds a value after the lines emitted so far. The
    generated function is compiled with numba (`nopython` mode), so the lines are the Python subset
    numba compiles: scalars, numpy arrays and the routines of `qa_engine.features.compiled_kernels`.
    Its state lives in four flat arrays the engine owns (float and int scalars, float and int
    buffers): a scalar state is loaded into a local at the start and stored back at the end, a
    buffer is a view of its slice.
    """

    def __init__(self, resolve_kind: Callable[[str], Any]) -> None:
        """`resolve_kind(kind_name)` gives the registered kind whose `stream` twin computes a feature
        (`qa_engine.features.registry.kind_of`): passed in, so this module never imports the registry
        and the families that import this module."""
        self.resolve_kind = resolve_kind
        # Lines of the per-bar code, in order; a callable block writes its lines at compile time
        # (windows: they learn late which of sum / mean / max / min / std they must produce).
        self.blocks: list[list[str] | Callable[[], list[str]]] = []
        self.float_states: list[tuple[str, float]] = []
        self.int_states: list[tuple[str, int]] = []
        self.float_buffers: list[tuple[str, list[float]]] = []
        self.int_buffers: list[tuple[str, list[int]]] = []
        self.constant_lines: list[str] = []
        self._memo: dict[tuple, Any] = {}
        self._counter = itertools.count()

    # ---- code collection ----------------------------------------------------------------

    def name(self, hint: str) -> str:
        return f"{hint}_{next(self._counter)}"

    def state(self, hint: str, initial: float | int) -> str:
        """A scalar that keeps its value from bar to bar: a float, or an int if `initial` is one."""
        variable = self.name(hint)
        self._register_state(variable, initial)
        return variable

    def _register_state(self, variable: str, initial: float | int) -> None:
        if isinstance(initial, bool) or not isinstance(initial, (int, float)):
            raise TypeError(f"streaming state {variable}: a float or an int, not {initial!r}")
        if isinstance(initial, int):
            self.int_states.append((variable, initial))
        else:
            self.float_states.append((variable, float(initial)))

    def state_array(self, hint: str, initial: Sequence[float] | Sequence[int], integer: bool = False) -> str:
        """A buffer (1-D array) that keeps its values from bar to bar, float64 or int64."""
        variable = self.name(hint)
        if integer:
            self.int_buffers.append((variable, [int(value) for value in initial]))
        else:
            self.float_buffers.append((variable, [float(value) for value in initial]))
        return variable

    def constant(self, hint: str, value: Any) -> str:
        """A module-level constant of the generated engine: a number, a float array (written out in
        full, so the engine's source and its compiled cache change with it), or a math function."""
        if callable(value) and value in MATH_FUNCTIONS:
            return MATH_FUNCTIONS[value]
        variable = self.name(hint)
        if isinstance(value, np.ndarray):
            array = np.asarray(value, dtype=np.float64)
            literal = f"np.array({[float(item) for item in array.ravel()]!r}, dtype=np.float64)"
            if array.ndim > 1:
                literal += f".reshape({array.shape!r})"
            self.constant_lines.append(f"{variable} = {literal}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self.constant_lines.append(f"{variable} = {value!r}")
        else:
            raise TypeError(
                f"streaming constant {hint}: a number, a float array or a math function, not {value!r}"
            )
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
        return self.memo(
            ("feature", spec.kind, spec.params), lambda: self.resolve_kind(spec.kind).stream(self, spec)
        )

    def compile(self, outputs: list[str]) -> StreamProgram:
        """The engine's module source and its initial state (see `StreamProgram`)."""
        indent = "    "
        blocks = [block() if callable(block) else block for block in self.blocks]
        lines = [
            "# Generated by qa_engine.features.contexts.StreamContext: the streaming engine of one feature",
            "# set, compiled with numba (see qa_engine.features.streaming). Read it, do not edit it.",
            "import math",
            "",
            "import numpy as np",
            "from numba import njit",
            "",
            "from qa_engine.features.compiled_kernels import dot",
            "from qa_engine.features.compiled_kernels import fsum",
            "from qa_engine.features.compiled_kernels import volume_profile_step",
            "from qa_engine.features.compiled_kernels import wavelet_denoise_last",
            "",
            "nan = math.nan",
            "sqrt = math.sqrt",
            "log = math.log",
            *self.constant_lines,
            "",
            "",
            f"@njit({ENGINE_SIGNATURE!r}, cache=True, nogil=True)",
            f"def update(float_state, int_state, float_buffer, int_buffer, {', '.join(INPUT_NAMES)}, out):",
        ]
        for position, (variable, _) in enumerate(self.float_states):
            lines.append(f"{indent}{variable} = float_state[{position}]")
        for position, (variable, _) in enumerate(self.int_states):
            lines.append(f"{indent}{variable} = int_state[{position}]")
        float_initial: list[float] = []
        int_initial: list[int] = []
        for buffer, initial, name in (
            (self.float_buffers, float_initial, "float_buffer"),
            (self.int_buffers, int_initial, "int_buffer"),
        ):
            for variable, values in buffer:
                start = len(initial)
                initial.extend(values)
                lines.append(f"{indent}{variable} = {name}[{start}:{len(initial)}]")
        for block in blocks:
            lines += [f"{indent}{line}" for line in block]
        for position, (variable, _) in enumerate(self.float_states):
            lines.append(f"{indent}float_state[{position}] = {variable}")
        for position, (variable, _) in enumerate(self.int_states):
            lines.append(f"{indent}int_state[{position}] = {variable}")
        for position, variable in enumerate(outputs):
            lines.append(f"{indent}out[{position}] = {variable}")
        return StreamProgram(
            source="\n".join(lines) + "\n",
            float_state=np.asarray([value for _, value in self.float_states], dtype=np.float64),
            int_state=np.asarray([value for _, value in self.int_states], dtype=np.int64),
            float_buffer=np.asarray(float_initial, dtype=np.float64),
            int_buffer=np.asarray(int_initial, dtype=np.int64),
        )

    # ---- shared intermediates -----------------------------------------------------------

    def previous_close(self) -> str:
        """The previous bar's close (the bar's own close on the first bar of a segment)."""

        def build() -> str:
            last = self.state("last_close", NAN)
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
            ring = self.state_array("ring", [0.0] * bars)
            position = self.state("position", 0)
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
            self._register_state(total, 0.0)
            since = self.state("since_refresh", 0)
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
                lines.append(f"{names[which]} = {ring}.{which}()")
                continue
            # Monotonic deque as a circular buffer of (bar index, value): the values still in the
            # window that a later value has not beaten, the window's extreme at the head.
            capacity = bars + 1
            values = self.state_array(f"{which}_queue_values", [0.0] * capacity)
            indices = self.state_array(f"{which}_queue_bars", [0] * capacity, integer=True)
            head, size, tail = (
                self.state(f"{which}_queue_head", 0),
                self.state(f"{which}_queue_size", 0),
                self.name("tail"),
            )
            lines += [
                f"while {size} > 0 and {values}[({head} + {size} - 1) % {capacity}] {keeps} {source}:",
                f"    {size} -= 1",
                f"{tail} = ({head} + {size}) % {capacity}",
                f"{values}[{tail}] = {source}",
                f"{indices}[{tail}] = {BAR_INDEX}",
                f"{size} += 1",
                f"if {indices}[{head}] <= {BAR_INDEX} - {bars}:",
                f"    {head} = {head} + 1 if {head} + 1 < {capacity} else 0",
                f"    {size} -= 1",
                f"{names[which]} = {values}[{head}]",
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
            state = self.state("ema", NAN)
            smoothing = self.constant("alpha", alpha)
            self.emit(
                f"{state} = {source} if {state} != {state} else {state} + ({source} - {state}) * {smoothing}"
            )
            return state

        return self.memo(("ema", key, alpha), build)

    def lagged(self, source: str, key: str, lag_bars: int) -> str:
        """The source's value `lag_bars` bars ago (NaN until then)."""

        def build() -> str:
            ring = self.state_array("lag_ring", [NAN] * (lag_bars + 1))
            position = self.state("lag_position", 0)
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
            buffer = self.state_array("buffer", [0.0] * (2 * window_bars))
            position = self.state("buffer_position", 0)
            self.emit(
                f"{buffer}[{position}] = {source}",
                f"{buffer}[{position} + {window_bars}] = {source}",
                f"{position} += 1",
                f"if {position} == {window_bars}:",
                f"    {position} = 0",
            )
            return f"{buffer}[{position}:{position} + {window_bars}]"

        return self.memo(("array", key, window_bars), build)
