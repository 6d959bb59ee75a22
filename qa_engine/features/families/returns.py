"""Returns at several lags, realised volatility, z-scores, and cyclic calendar features."""

from __future__ import annotations

import math

import polars as pl

from qa_engine.features.contexts import CLOSE
from qa_engine.features.contexts import TS
from qa_engine.features.contexts import BatchContext
from qa_engine.features.contexts import StreamContext
from qa_engine.features.families.common import SOURCE_VARIABLES
from qa_engine.features.families.common import FeatureKind
from qa_engine.features.families.common import choice
from qa_engine.features.families.common import make_spec
from qa_engine.features.families.common import positive_int
from qa_engine.features.spec import FeatureSpec

DAY_NS = 86_400_000_000_000
WEEK_NS = 7 * DAY_NS
# 1970-01-01 was a Thursday: shifting by three days puts Monday 00:00 UTC at phase 0 of the week.
WEEK_PHASE_SHIFT_NS = 3 * DAY_NS
TWO_PI = 2.0 * math.pi


def log_return_spec(lag_bars: int) -> FeatureSpec:
    return make_spec(
        f"log_return_{lag_bars}",
        "log_return",
        warmup_bars=lag_bars + 1,
        description=f"ln(close / close {lag_bars} bars earlier)",
        lag_bars=lag_bars,
    )


def log_return_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    lag = positive_int(spec.name, "lag_bars", spec.param("lag_bars"))
    return (pl.col("close") / pl.col("close").shift(lag)).log()


def log_return_stream(context: StreamContext, spec: FeatureSpec) -> str:
    lag = positive_int(spec.name, "lag_bars", spec.param("lag_bars"))
    then = context.lagged(CLOSE, "close", lag)
    return context.temporary("log_return_lag", f"log({CLOSE} / {then}) if {then} == {then} else nan")


def realised_volatility_spec(window_bars: int) -> FeatureSpec:
    return make_spec(
        f"realised_volatility_{window_bars}",
        "realised_volatility",
        warmup_bars=window_bars + 1,
        description=f"sqrt of the sum of squared 1-bar log returns over {window_bars} bars (not annualised)",
        window_bars=window_bars,
    )


def realised_volatility_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    window = positive_int(spec.name, "window_bars", spec.param("window_bars"))
    returns = context.log_return()
    squares = context.rolling_sum(returns * returns, "squared_return", window)
    return squares.clip(lower_bound=0.0).sqrt()


def realised_volatility_stream(context: StreamContext, spec: FeatureSpec) -> str:
    window = positive_int(spec.name, "window_bars", spec.param("window_bars"))
    returns = context.log_return()
    square = context.memo(
        ("squared_return",), lambda: context.temporary("squared_return", f"{returns} * {returns}")
    )
    squares = context.rolling_sum(square, "squared_return", window)
    return context.temporary("realised_volatility", f"sqrt({squares}) if {squares} > 0.0 else 0.0")


def zscore_spec(source: str, window_bars: int) -> FeatureSpec:
    return make_spec(
        f"zscore_{source}_{window_bars}",
        "zscore",
        warmup_bars=window_bars,
        description=(
            f"({source} - SMA{window_bars}) / population std over {window_bars} bars; 0 in a flat window"
        ),
        source=source,
        window_bars=window_bars,
    )


def zscore_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    window = positive_int(spec.name, "window_bars", spec.param("window_bars"))
    source = choice(spec.name, "source", spec.param("source"), tuple(SOURCE_VARIABLES))
    value = pl.col(source)
    mean = context.sma(value, source, window)
    std = context.rolling_std(value, source, window)
    varying = context.rolling_max(value, source, window) > context.rolling_min(value, source, window)
    return pl.when(varying).then((value - mean) / std).otherwise(0.0)


def zscore_stream(context: StreamContext, spec: FeatureSpec) -> str:
    window = positive_int(spec.name, "window_bars", spec.param("window_bars"))
    source = choice(spec.name, "source", spec.param("source"), tuple(SOURCE_VARIABLES))
    variable = SOURCE_VARIABLES[source]
    mean = context.sma(variable, source, window)
    std = context.rolling_std(variable, source, window)
    highest = context.rolling_max(variable, source, window)
    lowest = context.rolling_min(variable, source, window)
    return context.temporary("zscore", f"({variable} - {mean}) / {std} if {highest} > {lowest} else 0.0")


CALENDAR_OUTPUTS = ("sin", "cos")


def calendar_spec(cycle: str, output: str) -> FeatureSpec:
    return make_spec(
        f"{cycle}_{output}",
        "calendar",
        warmup_bars=1,
        description=(
            f"{output} of the "
            f"{'UTC time of day' if cycle == 'time_of_day' else 'UTC week phase (Monday 00:00 = 0)'}"
            " of the bar close time"
        ),
        cycle=cycle,
        output=output,
    )


def _calendar_parameters(spec: FeatureSpec) -> tuple[int, int, str]:
    cycle = choice(spec.name, "cycle", spec.param("cycle"), ("time_of_day", "day_of_week"))
    output = choice(spec.name, "output", spec.param("output"), CALENDAR_OUTPUTS)
    if cycle == "time_of_day":
        return DAY_NS, 0, output
    return WEEK_NS, WEEK_PHASE_SHIFT_NS, output


def calendar_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    period, shift, output = _calendar_parameters(spec)
    phase = ((pl.col("ts") + shift) % period) * (
        1.0 / period
    )  # reciprocal: as polars would, and as streaming
    angle = TWO_PI * phase
    return angle.sin() if output == "sin" else angle.cos()


def calendar_stream(context: StreamContext, spec: FeatureSpec) -> str:
    period, shift, output = _calendar_parameters(spec)
    function = context.constant(output, math.sin if output == "sin" else math.cos)
    two_pi = context.constant("two_pi", TWO_PI)
    reciprocal = context.constant("reciprocal_period", 1.0 / period)
    return context.temporary(
        f"calendar_{output}", f"{function}({two_pi} * ((({TS} + {shift}) % {period}) * {reciprocal}))"
    )


KINDS = (
    FeatureKind("log_return", log_return_batch, log_return_stream, "log return over a lag"),
    FeatureKind(
        "realised_volatility", realised_volatility_batch, realised_volatility_stream, "realised volatility"
    ),
    FeatureKind("zscore", zscore_batch, zscore_stream, "rolling z-score"),
    FeatureKind("calendar", calendar_batch, calendar_stream, "cyclic time of day / day of week"),
)
