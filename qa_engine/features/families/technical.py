"""Classic technical indicators, batch (polars) and streaming twins side by side.

Conventions (TA-Lib / Nautilus where they exist): SMA over the last n closes; EMA with smoothing
2/(n+1) seeded with the first value; RSI and ATR with Wilder smoothing 1/n (RSI seeded with a zero
change on the first bar, as Nautilus' RSI; ATR's first true range is high - low, as Nautilus'
ATR); MACD 12/26/9 on EMAs; Bollinger on close with population standard deviation (TA-Lib
BBANDS); MFI on typical price over n money flows (TA-Lib MFI); Williams %R over n bars.
Degenerate windows have documented values instead of NaN: RSI with no change at all = 50, %B of a
flat window = 0.5, Williams %R of a flat window = -50, ratios with a zero denominator = 1 or 0.
"Is the window flat / empty" is decided on exact rolling max/min, never on a rounded sum.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from qa_engine.features.contexts import CLOSE
from qa_engine.features.contexts import HIGH
from qa_engine.features.contexts import LOW
from qa_engine.features.contexts import NAN
from qa_engine.features.contexts import OPEN
from qa_engine.features.contexts import VOLUME
from qa_engine.features.contexts import BatchContext
from qa_engine.features.contexts import StreamContext
from qa_engine.features.contexts import ratio_or
from qa_engine.features.families.common import SOURCE_VARIABLES
from qa_engine.features.families.common import FeatureKind
from qa_engine.features.families.common import choice
from qa_engine.features.families.common import ema_alpha
from qa_engine.features.families.common import make_spec
from qa_engine.features.families.common import positive_int
from qa_engine.features.families.common import settle_bars
from qa_engine.features.families.common import wilder_alpha
from qa_engine.features.spec import FeatureSpec

# Bollinger %B / z-scores treat a window as flat when its max equals its min (exact test).

# ---------------------------------------------------------------- SMA / EMA


def sma_spec(period_bars: int, source: str = "close") -> FeatureSpec:
    return make_spec(
        f"sma_{period_bars}" if source == "close" else f"sma_{source}_{period_bars}",
        "sma",
        warmup_bars=period_bars,
        description=f"simple moving average of {source} over {period_bars} bars",
        period_bars=period_bars,
        source=source,
    )


def _source(spec: FeatureSpec) -> str:
    return choice(spec.name, "source", spec.param("source"), tuple(SOURCE_VARIABLES))


def sma_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    source = _source(spec)
    return context.sma(
        pl.col(source), source, positive_int(spec.name, "period_bars", spec.param("period_bars"))
    )


def sma_stream(context: StreamContext, spec: FeatureSpec) -> str:
    source = _source(spec)
    period = positive_int(spec.name, "period_bars", spec.param("period_bars"))
    return context.sma(SOURCE_VARIABLES[source], source, period)


def ema_spec(period_bars: int, source: str = "close") -> FeatureSpec:
    return make_spec(
        f"ema_{period_bars}" if source == "close" else f"ema_{source}_{period_bars}",
        "ema",
        warmup_bars=settle_bars(ema_alpha(period_bars)),
        description=(
            f"exponential moving average of {source}, smoothing 2/({period_bars}+1), first-value seed"
        ),
        period_bars=period_bars,
        source=source,
    )


def ema_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    source = _source(spec)
    alpha = ema_alpha(positive_int(spec.name, "period_bars", spec.param("period_bars")))
    return context.ema(pl.col(source), source, alpha)


def ema_stream(context: StreamContext, spec: FeatureSpec) -> str:
    source = _source(spec)
    alpha = ema_alpha(positive_int(spec.name, "period_bars", spec.param("period_bars")))
    return context.ema(SOURCE_VARIABLES[source], source, alpha)


# ---------------------------------------------------------------- RSI (Wilder)


def rsi_spec(period_bars: int = 14) -> FeatureSpec:
    return make_spec(
        f"rsi_{period_bars}",
        "rsi",
        warmup_bars=settle_bars(wilder_alpha(period_bars)),
        description="relative strength index 0..100, Wilder smoothing; 50 when prices never moved",
        period_bars=period_bars,
    )


def _rsi_batch_parts(context: BatchContext, period: int) -> tuple[pl.Expr, pl.Expr]:
    change = pl.col("close") - context.previous_close()
    alpha = wilder_alpha(period)
    gain = context.ema(change.clip(lower_bound=0.0), "gain", alpha)
    loss = context.ema((-change).clip(lower_bound=0.0), "loss", alpha)
    return gain, loss


def rsi_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    gain, loss = _rsi_batch_parts(context, positive_int(spec.name, "period_bars", spec.param("period_bars")))
    return ratio_or(100.0 * gain, gain + loss, 50.0)


def rsi_stream(context: StreamContext, spec: FeatureSpec) -> str:
    period = positive_int(spec.name, "period_bars", spec.param("period_bars"))
    alpha = wilder_alpha(period)

    def build_changes() -> tuple[str, str]:
        change = context.temporary("change", f"{CLOSE} - {context.previous_close()}")
        gain = context.temporary("gain", f"{change} if {change} > 0.0 else 0.0")
        loss = context.temporary("loss", f"-{change} if -{change} > 0.0 else 0.0")
        return gain, loss

    gain_source, loss_source = context.memo(("gain_loss",), build_changes)
    gain = context.ema(gain_source, "gain", alpha)
    loss = context.ema(loss_source, "loss", alpha)
    total = context.temporary("gain_loss_total", f"{gain} + {loss}")
    return context.temporary("rsi", f"100.0 * {gain} / {total} if {total} > 0.0 else 50.0")


# ---------------------------------------------------------------- MACD

MACD_OUTPUTS = ("line", "signal", "histogram")


def macd_spec(output: str, fast_bars: int = 12, slow_bars: int = 26, signal_bars: int = 9) -> FeatureSpec:
    line_warmup = settle_bars(ema_alpha(slow_bars))
    warmup = line_warmup if output == "line" else line_warmup + settle_bars(ema_alpha(signal_bars))
    short = {"line": "macd", "signal": "macd_signal", "histogram": "macd_hist"}[output]
    return make_spec(
        short,
        "macd",
        warmup_bars=warmup,
        description=f"MACD {output}: EMA{fast_bars} - EMA{slow_bars} of close, signal EMA{signal_bars}",
        fast_bars=fast_bars,
        output=output,
        signal_bars=signal_bars,
        slow_bars=slow_bars,
    )


def _macd_parameters(spec: FeatureSpec) -> tuple[int, int, int, str]:
    return (
        positive_int(spec.name, "fast_bars", spec.param("fast_bars")),
        positive_int(spec.name, "slow_bars", spec.param("slow_bars")),
        positive_int(spec.name, "signal_bars", spec.param("signal_bars")),
        choice(spec.name, "output", spec.param("output"), MACD_OUTPUTS),
    )


def macd_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    fast, slow, signal_bars, output = _macd_parameters(spec)
    close = pl.col("close")
    line = context.memo(
        ("macd_line", fast, slow),
        lambda: context.ema(close, "close", ema_alpha(fast)) - context.ema(close, "close", ema_alpha(slow)),
    )
    if output == "line":
        return line
    signal = context.ema(line, f"macd_line_{fast}_{slow}", ema_alpha(signal_bars))
    return signal if output == "signal" else line - signal


def _macd_line_variable(context: StreamContext, fast: int, slow: int) -> str:
    def build() -> str:
        fast_ema = context.ema(CLOSE, "close", ema_alpha(fast))
        slow_ema = context.ema(CLOSE, "close", ema_alpha(slow))
        return context.temporary("macd_line", f"{fast_ema} - {slow_ema}")

    return context.memo(("macd_line", fast, slow), build)


def _macd_histogram_variable(context: StreamContext, fast: int, slow: int, signal_bars: int) -> str:
    def build() -> str:
        line = _macd_line_variable(context, fast, slow)
        signal = context.ema(line, f"macd_line_{fast}_{slow}", ema_alpha(signal_bars))
        return context.temporary("macd_histogram", f"{line} - {signal}")

    return context.memo(("macd_histogram", fast, slow, signal_bars), build)


def macd_stream(context: StreamContext, spec: FeatureSpec) -> str:
    fast, slow, signal_bars, output = _macd_parameters(spec)
    line = _macd_line_variable(context, fast, slow)
    if output == "line":
        return line
    if output == "signal":
        return context.ema(line, f"macd_line_{fast}_{slow}", ema_alpha(signal_bars))
    return _macd_histogram_variable(context, fast, slow, signal_bars)


# ---------------------------------------------------------------- Bollinger bands

BOLLINGER_OUTPUTS = ("upper", "lower", "percent_b", "bandwidth")


def bollinger_spec(output: str, period_bars: int = 20, width_std: float = 2.0) -> FeatureSpec:
    short = {"upper": "bb_upper", "lower": "bb_lower", "percent_b": "bb_percent_b", "bandwidth": "bb_width"}
    return make_spec(
        f"{short[output]}_{period_bars}",
        "bollinger",
        warmup_bars=period_bars,
        description=(
            f"Bollinger {output}: SMA{period_bars} of close +- {width_std} population std; "
            "%B = 0.5 and width = 0 in a flat window"
        ),
        output=output,
        period_bars=period_bars,
        width_std=width_std,
    )


def bollinger_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    period = positive_int(spec.name, "period_bars", spec.param("period_bars"))
    output = choice(spec.name, "output", spec.param("output"), BOLLINGER_OUTPUTS)
    width = float(spec.param("width_std"))  # type: ignore[arg-type]
    close = pl.col("close")
    mean = context.sma(close, "close", period)
    std = context.rolling_std(close, "close", period)
    upper = mean + width * std
    lower = mean - width * std
    if output == "upper":
        return upper
    if output == "lower":
        return lower
    varying = context.rolling_max(close, "close", period) > context.rolling_min(close, "close", period)
    if output == "percent_b":
        return pl.when(varying).then((close - lower) / (upper - lower)).otherwise(0.5)
    return (upper - lower) / mean


def bollinger_stream(context: StreamContext, spec: FeatureSpec) -> str:
    period = positive_int(spec.name, "period_bars", spec.param("period_bars"))
    output = choice(spec.name, "output", spec.param("output"), BOLLINGER_OUTPUTS)
    width = context.constant("width_std", float(spec.param("width_std")))  # type: ignore[arg-type]
    mean = context.sma(CLOSE, "close", period)
    std = context.rolling_std(CLOSE, "close", period)
    upper = context.memo(
        ("bollinger_upper", period, width), lambda: context.temporary("upper", f"{mean} + {width} * {std}")
    )
    lower = context.memo(
        ("bollinger_lower", period, width), lambda: context.temporary("lower", f"{mean} - {width} * {std}")
    )
    if output == "upper":
        return upper
    if output == "lower":
        return lower
    if output == "percent_b":
        highest = context.rolling_max(CLOSE, "close", period)
        lowest = context.rolling_min(CLOSE, "close", period)
        return context.temporary(
            "percent_b", f"({CLOSE} - {lower}) / ({upper} - {lower}) if {highest} > {lowest} else 0.5"
        )
    return context.temporary("bandwidth", f"({upper} - {lower}) / {mean}")


# ---------------------------------------------------------------- ATR family

ATR_OUTPUTS = ("atr", "natr", "ratio")


def atr_spec(output: str = "atr", period_bars: int = 14, average_bars: int = 50) -> FeatureSpec:
    settle = settle_bars(wilder_alpha(period_bars))
    names = {"atr": f"atr_{period_bars}", "natr": f"natr_{period_bars}", "ratio": f"atr_ratio_{period_bars}"}
    descriptions = {
        "atr": "average true range, Wilder smoothing",
        "natr": "ATR as percent of close (TA-Lib NATR)",
        "ratio": f"ATR / its {average_bars}-bar SMA (volatility regime; 1 when ATR is 0)",
    }
    extra = {"average_bars": average_bars} if output == "ratio" else {}
    return make_spec(
        names[output],
        "atr",
        warmup_bars=settle + (average_bars - 1 if output == "ratio" else 0),
        description=descriptions[output],
        output=output,
        period_bars=period_bars,
        **extra,
    )


def _atr_batch(context: BatchContext, period: int) -> pl.Expr:
    previous = context.previous_close()
    true_range = context.memo(
        ("true_range",),
        lambda: pl.max_horizontal(pl.col("high"), previous) - pl.min_horizontal(pl.col("low"), previous),
    )
    return context.ema(true_range, "true_range", wilder_alpha(period))


def atr_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    period = positive_int(spec.name, "period_bars", spec.param("period_bars"))
    output = choice(spec.name, "output", spec.param("output"), ATR_OUTPUTS)
    atr = _atr_batch(context, period)
    if output == "atr":
        return atr
    if output == "natr":
        return 100.0 * atr / pl.col("close")
    average = positive_int(spec.name, "average_bars", spec.param("average_bars"))
    key = f"atr_{period}"
    mean = context.sma(atr, key, average)
    return pl.when(context.rolling_max(atr, key, average) > 0.0).then(atr / mean).otherwise(1.0)


def _atr_stream(context: StreamContext, period: int) -> str:
    def build_true_range() -> str:
        previous = context.previous_close()
        return context.temporary(
            "true_range",
            f"({HIGH} if {HIGH} > {previous} else {previous}) "
            f"- ({LOW} if {LOW} < {previous} else {previous})",
        )

    true_range = context.memo(("true_range",), build_true_range)
    return context.ema(true_range, "true_range", wilder_alpha(period))


def atr_stream(context: StreamContext, spec: FeatureSpec) -> str:
    period = positive_int(spec.name, "period_bars", spec.param("period_bars"))
    output = choice(spec.name, "output", spec.param("output"), ATR_OUTPUTS)
    atr = _atr_stream(context, period)
    if output == "atr":
        return atr
    if output == "natr":
        return context.temporary("natr", f"100.0 * {atr} / {CLOSE}")
    average = positive_int(spec.name, "average_bars", spec.param("average_bars"))
    key = f"atr_{period}"
    mean = context.sma(atr, key, average)
    highest = context.rolling_max(atr, key, average)
    return context.temporary("atr_ratio", f"{atr} / {mean} if {highest} > 0.0 else 1.0")


# ---------------------------------------------------------------- OBV slope and divergence


def obv_spec(output: str, window_bars: int = 20) -> FeatureSpec:
    if output == "slope":
        return make_spec(
            f"obv_slope_{window_bars}",
            "obv",
            warmup_bars=window_bars,
            description=(
                f"least-squares slope of on-balance volume over {window_bars} bars / mean volume "
                "(offset-free: OBV's starting value cancels); 0 when there was no volume"
            ),
            output=output,
            window_bars=window_bars,
        )
    return make_spec(
        f"obv_divergence_{window_bars}",
        "obv",
        warmup_bars=window_bars + 1,
        description=(
            f"+1 when close fell over {window_bars} bars while OBV rose (bullish divergence), "
            "-1 when close rose while OBV fell, else 0"
        ),
        output=output,
        window_bars=window_bars,
    )


def obv_slope_weights(window_bars: int) -> np.ndarray:
    """Weights turning signed volumes into the OLS slope of their running sum (OBV) over the window.

    With y_k = Y + sum_{m<=k} v_m (k = 0..W-1), sum_k (k - mean k) y_k = sum_m v_m m (W - m) / 2 and
    sum_k (k - mean k)^2 = W (W^2 - 1) / 12, so the slope is a fixed weighted sum of the window's
    signed volumes (oldest first) in which OBV's unknown offset Y never appears. Hand-written: a
    library slope (TA-Lib LINEARREG_SLOPE, Nautilus LinearRegression) of cumulative OBV would carry
    OBV's ever-growing level into the rounding and depend on where the history started.
    """
    positions = np.arange(window_bars, dtype=np.float64)
    return positions * (window_bars - positions) / 2.0 / (window_bars * (window_bars**2 - 1) / 12.0)


def _signed_volume_batch(context: BatchContext) -> pl.Expr:
    return context.memo(
        ("signed_volume",), lambda: (pl.col("close") - context.previous_close()).sign() * pl.col("volume")
    )


def obv_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    window = positive_int(spec.name, "window_bars", spec.param("window_bars"))
    output = choice(spec.name, "output", spec.param("output"), ("slope", "divergence"))
    signed = _signed_volume_batch(context)
    volume = pl.col("volume")
    highest_volume = context.rolling_max(volume, "volume", window)
    if output == "slope":
        weights = obv_slope_weights(window).tolist()
        slope = signed.rolling_sum(window, weights=weights)
        mean_volume = context.sma(volume, "volume", window)
        return pl.when(highest_volume > 0.0).then(slope / mean_volume).otherwise(0.0)
    obv_change = context.rolling_sum(signed, "signed_volume", window)
    price_change = pl.col("close") - pl.col("close").shift(window)
    band = 1e-9 * window * highest_volume
    return (
        pl.when((price_change < 0.0) & (obv_change > band))
        .then(1.0)
        .when((price_change > 0.0) & (obv_change < -band))
        .then(-1.0)
        .otherwise(0.0)
    )


def _signed_volume_stream(context: StreamContext) -> str:
    def build() -> str:
        change = context.temporary("close_change", f"{CLOSE} - {context.previous_close()}")
        return context.temporary(
            "signed_volume",
            f"{VOLUME} if {change} > 0.0 else (-{VOLUME} if {change} < 0.0 else 0.0 * {VOLUME})",
        )

    return context.memo(("signed_volume",), build)


def obv_stream(context: StreamContext, spec: FeatureSpec) -> str:
    window = positive_int(spec.name, "window_bars", spec.param("window_bars"))
    output = choice(spec.name, "output", spec.param("output"), ("slope", "divergence"))
    signed = _signed_volume_stream(context)
    highest_volume = context.rolling_max(VOLUME, "volume", window)
    if output == "slope":
        weights = context.constant("obv_weights", obv_slope_weights(window))
        view = context.window_array(signed, "signed_volume", window)
        mean_volume = context.sma(VOLUME, "volume", window)
        return context.temporary(
            "obv_slope", f"dot({view}, {weights}) / {mean_volume} if {highest_volume} > 0.0 else 0.0"
        )
    obv_change = context.rolling_sum(signed, "signed_volume", window)
    close_then = context.lagged(CLOSE, "close", window)
    price_change = context.temporary("price_change", f"{CLOSE} - {close_then}")
    band = context.temporary("band", f"1e-9 * {window} * {highest_volume}")
    return context.temporary(
        "obv_divergence",
        f"1.0 if ({price_change} < 0.0 and {obv_change} > {band}) else "
        f"(-1.0 if ({price_change} > 0.0 and {obv_change} < -{band}) else 0.0)",
    )


# ---------------------------------------------------------------- MFI

MFI_OUTPUTS = ("index", "zone")


def mfi_spec(output: str = "index", period_bars: int = 14, overbought: float = 80.0, oversold: float = 20.0):
    if output == "index":
        return make_spec(
            f"mfi_{period_bars}",
            "mfi",
            warmup_bars=period_bars + 1,
            description="money flow index 0..100 on typical price (TA-Lib MFI); 50 with no money flow",
            output=output,
            period_bars=period_bars,
        )
    return make_spec(
        f"mfi_zone_{period_bars}",
        "mfi",
        warmup_bars=period_bars + 1,
        description=f"+1 when MFI > {overbought} (overbought), -1 when MFI < {oversold} (oversold), else 0",
        output=output,
        overbought=overbought,
        oversold=oversold,
        period_bars=period_bars,
    )


def _mfi_batch(context: BatchContext, period: int) -> pl.Expr:
    def build() -> pl.Expr:
        typical = context.typical_price()
        previous = typical.shift(1).fill_null(typical)
        raw = typical * pl.col("volume")
        positive = pl.when(typical > previous).then(raw).otherwise(0.0)
        negative = pl.when(typical < previous).then(raw).otherwise(0.0)
        positive_sum = context.rolling_sum(positive, "mfi_positive", period)
        negative_sum = context.rolling_sum(negative, "mfi_negative", period)
        flowing = context.rolling_max(positive + negative, "mfi_flow", period) > 0.0
        return pl.when(flowing).then(100.0 * positive_sum / (positive_sum + negative_sum)).otherwise(50.0)

    return context.memo(("mfi", period), build)


def mfi_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    period = positive_int(spec.name, "period_bars", spec.param("period_bars"))
    output = choice(spec.name, "output", spec.param("output"), MFI_OUTPUTS)
    index = _mfi_batch(context, period)
    if output == "index":
        return index
    overbought = float(spec.param("overbought"))  # type: ignore[arg-type]
    oversold = float(spec.param("oversold"))  # type: ignore[arg-type]
    return pl.when(index > overbought).then(1.0).when(index < oversold).then(-1.0).otherwise(0.0)


def _mfi_stream(context: StreamContext, period: int) -> str:
    def build() -> str:
        typical = context.typical_price()
        last = context.state("last_typical", NAN)
        raw = context.temporary("raw_flow", f"{typical} * {VOLUME}")
        positive, negative, flow = context.name("positive"), context.name("negative"), context.name("flow")
        context.emit(
            f"if {last} != {last}:",
            f"    {last} = {typical}",
            f"{positive} = {raw} if {typical} > {last} else 0.0",
            f"{negative} = {raw} if {typical} < {last} else 0.0",
            f"{flow} = {positive} + {negative}",
            f"{last} = {typical}",
        )
        positive_sum = context.rolling_sum(positive, "mfi_positive", period)
        negative_sum = context.rolling_sum(negative, "mfi_negative", period)
        flowing = context.rolling_max(flow, "mfi_flow", period)
        return context.temporary(
            "mfi", f"100.0 * {positive_sum} / ({positive_sum} + {negative_sum}) if {flowing} > 0.0 else 50.0"
        )

    return context.memo(("mfi", period), build)


def mfi_stream(context: StreamContext, spec: FeatureSpec) -> str:
    period = positive_int(spec.name, "period_bars", spec.param("period_bars"))
    output = choice(spec.name, "output", spec.param("output"), MFI_OUTPUTS)
    index = _mfi_stream(context, period)
    if output == "index":
        return index
    overbought = context.constant("overbought", float(spec.param("overbought")))  # type: ignore[arg-type]
    oversold = context.constant("oversold", float(spec.param("oversold")))  # type: ignore[arg-type]
    return context.temporary(
        "mfi_zone", f"1.0 if {index} > {overbought} else (-1.0 if {index} < {oversold} else 0.0)"
    )


# ---------------------------------------------------------------- Williams %R


def williams_r_spec(period_bars: int = 14) -> FeatureSpec:
    return make_spec(
        f"williams_r_{period_bars}",
        "williams_r",
        warmup_bars=period_bars,
        description="Williams %R, -100..0; -50 in a window whose high equals its low",
        period_bars=period_bars,
    )


def williams_r_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    period = positive_int(spec.name, "period_bars", spec.param("period_bars"))
    highest = context.rolling_max(pl.col("high"), "high", period)
    lowest = context.rolling_min(pl.col("low"), "low", period)
    return (
        pl.when(highest > lowest)
        .then(-100.0 * (highest - pl.col("close")) / (highest - lowest))
        .otherwise(-50.0)
    )


def williams_r_stream(context: StreamContext, spec: FeatureSpec) -> str:
    period = positive_int(spec.name, "period_bars", spec.param("period_bars"))
    highest = context.rolling_max(HIGH, "high", period)
    lowest = context.rolling_min(LOW, "low", period)
    return context.temporary(
        "williams_r",
        f"-100.0 * ({highest} - {CLOSE}) / ({highest} - {lowest}) if {highest} > {lowest} else -50.0",
    )


# ---------------------------------------------------------------- volume ratio / change


def volume_spec(output: str, period_bars: int = 20) -> FeatureSpec:
    if output == "ratio":
        return make_spec(
            f"volume_ratio_{period_bars}",
            "volume",
            warmup_bars=period_bars,
            description=f"volume / its {period_bars}-bar SMA; 1 when the window had no volume",
            output=output,
            period_bars=period_bars,
        )
    return make_spec(
        "volume_change",
        "volume",
        warmup_bars=2,
        description="symmetric volume change (v - v_prev) / (v + v_prev) in [-1, 1]; 0 when both are 0",
        output=output,
    )


def volume_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    output = choice(spec.name, "output", spec.param("output"), ("ratio", "change"))
    volume = pl.col("volume")
    if output == "ratio":
        period = positive_int(spec.name, "period_bars", spec.param("period_bars"))
        mean = context.sma(volume, "volume", period)
        return pl.when(context.rolling_max(volume, "volume", period) > 0.0).then(volume / mean).otherwise(1.0)
    previous = volume.shift(1)
    return ratio_or(volume - previous, volume + previous, 0.0)


def volume_stream(context: StreamContext, spec: FeatureSpec) -> str:
    output = choice(spec.name, "output", spec.param("output"), ("ratio", "change"))
    if output == "ratio":
        period = positive_int(spec.name, "period_bars", spec.param("period_bars"))
        mean = context.sma(VOLUME, "volume", period)
        highest = context.rolling_max(VOLUME, "volume", period)
        return context.temporary("volume_ratio", f"{VOLUME} / {mean} if {highest} > 0.0 else 1.0")
    last = context.state("last_volume", NAN)
    total = context.temporary("volume_pair", f"{VOLUME} + {last}")
    out = context.temporary("volume_change", f"({VOLUME} - {last}) / {total} if {total} > 0.0 else 0.0")
    context.emit(f"{last} = {VOLUME}")
    return out


# ---------------------------------------------------------------- candle patterns

CANDLE_PATTERNS = ("doji", "hammer", "engulfing")


def candle_spec(pattern: str) -> FeatureSpec:
    descriptions = {
        "doji": "1 when |close - open| <= 0.1 (high - low) of the bar, else 0",
        "hammer": (
            "1 when the bar has a range, a small body (<= 0.3 range), a lower shadow >= 2 bodies "
            "and an upper shadow <= 0.1 range, else 0"
        ),
        "engulfing": (
            "+1 bullish engulfing (down bar, then an up bar whose body covers it and is larger), "
            "-1 bearish engulfing, else 0 (TA-Lib CDLENGULFING / 100)"
        ),
    }
    return make_spec(
        f"candle_{pattern}",
        "candle",
        warmup_bars=2 if pattern == "engulfing" else 1,
        description=descriptions[pattern],
        pattern=pattern,
    )


def candle_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    pattern = choice(spec.name, "pattern", spec.param("pattern"), CANDLE_PATTERNS)
    open_, high, low, close = pl.col("open"), pl.col("high"), pl.col("low"), pl.col("close")
    body = (close - open_).abs()
    span = high - low
    if pattern == "doji":
        return pl.when(body <= 0.1 * span).then(1.0).otherwise(0.0)
    if pattern == "hammer":
        lower_shadow = pl.min_horizontal(open_, close) - low
        upper_shadow = high - pl.max_horizontal(open_, close)
        hammer = (
            (span > 0.0) & (body <= 0.3 * span) & (lower_shadow >= 2.0 * body) & (upper_shadow <= 0.1 * span)
        )
        return pl.when(hammer).then(1.0).otherwise(0.0)
    previous_open = open_.shift(1)
    previous_close = close.shift(1)
    bullish = (
        (previous_close < previous_open)
        & (close > open_)
        & (open_ <= previous_close)
        & (close >= previous_open)
        & ((close - open_) > (previous_open - previous_close))
    )
    bearish = (
        (previous_close > previous_open)
        & (close < open_)
        & (open_ >= previous_close)
        & (close <= previous_open)
        & ((open_ - close) > (previous_close - previous_open))
    )
    return pl.when(bullish).then(1.0).when(bearish).then(-1.0).otherwise(0.0)


def candle_stream(context: StreamContext, spec: FeatureSpec) -> str:
    pattern = choice(spec.name, "pattern", spec.param("pattern"), CANDLE_PATTERNS)
    if pattern == "doji":
        return context.temporary("doji", f"1.0 if abs({CLOSE} - {OPEN}) <= 0.1 * ({HIGH} - {LOW}) else 0.0")
    if pattern == "hammer":
        body, span = context.name("body"), context.name("span")
        lower_shadow, upper_shadow, out = (
            context.name("lower_shadow"),
            context.name("upper_shadow"),
            context.name("hammer"),
        )
        context.emit(
            f"{body} = abs({CLOSE} - {OPEN})",
            f"{span} = {HIGH} - {LOW}",
            f"{lower_shadow} = ({OPEN} if {OPEN} < {CLOSE} else {CLOSE}) - {LOW}",
            f"{upper_shadow} = {HIGH} - ({OPEN} if {OPEN} > {CLOSE} else {CLOSE})",
            f"{out} = 1.0 if ({span} > 0.0 and {body} <= 0.3 * {span} and {lower_shadow} >= 2.0 * {body} "
            f"and {upper_shadow} <= 0.1 * {span}) else 0.0",
        )
        return out
    previous_open = context.state("previous_open", NAN)
    previous_close = context.state("previous_close_candle", NAN)
    out = context.name("engulfing")
    context.emit(
        f"if ({previous_close} < {previous_open} and {CLOSE} > {OPEN} and {OPEN} <= {previous_close} "
        f"and {CLOSE} >= {previous_open} and ({CLOSE} - {OPEN}) > ({previous_open} - {previous_close})):",
        f"    {out} = 1.0",
        f"elif ({previous_close} > {previous_open} and {CLOSE} < {OPEN} and {OPEN} >= {previous_close} "
        f"and {CLOSE} <= {previous_open} and ({OPEN} - {CLOSE}) > ({previous_close} - {previous_open})):",
        f"    {out} = -1.0",
        "else:",
        f"    {out} = 0.0",
        f"{previous_open} = {OPEN}",
        f"{previous_close} = {CLOSE}",
    )
    return out


# ---------------------------------------------------------------- composite strong signals


def strong_signal_spec(direction: str, rsi_bars: int = 14, bollinger_bars: int = 20) -> FeatureSpec:
    warmup = max(
        settle_bars(wilder_alpha(rsi_bars)),
        bollinger_bars,
        settle_bars(ema_alpha(26)) + settle_bars(ema_alpha(9)) + 1,
    )
    condition = (
        "RSI < 30, close under the lower Bollinger band (%B < 0) and the MACD histogram rising"
        if direction == "buy"
        else "RSI > 70, close over the upper Bollinger band (%B > 1) and the MACD histogram falling"
    )
    return make_spec(
        f"strong_{direction}",
        "strong_signal",
        warmup_bars=warmup,
        description=f"1 when {condition}, else 0",
        bollinger_bars=bollinger_bars,
        direction=direction,
        rsi_bars=rsi_bars,
    )


def strong_signal_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    direction = choice(spec.name, "direction", spec.param("direction"), ("buy", "sell"))
    rsi_bars = positive_int(spec.name, "rsi_bars", spec.param("rsi_bars"))
    bollinger_bars = positive_int(spec.name, "bollinger_bars", spec.param("bollinger_bars"))
    rsi = rsi_batch(context, rsi_spec(rsi_bars))
    percent_b = bollinger_batch(context, bollinger_spec("percent_b", bollinger_bars))
    histogram = macd_batch(context, macd_spec("histogram"))
    if direction == "buy":
        signal = (rsi < 30.0) & (percent_b < 0.0) & (histogram > histogram.shift(1))
    else:
        signal = (rsi > 70.0) & (percent_b > 1.0) & (histogram < histogram.shift(1))
    return pl.when(signal).then(1.0).otherwise(0.0)


def strong_signal_stream(context: StreamContext, spec: FeatureSpec) -> str:
    direction = choice(spec.name, "direction", spec.param("direction"), ("buy", "sell"))
    rsi_bars = positive_int(spec.name, "rsi_bars", spec.param("rsi_bars"))
    bollinger_bars = positive_int(spec.name, "bollinger_bars", spec.param("bollinger_bars"))
    rsi = context.feature(rsi_spec(rsi_bars))
    percent_b = context.feature(bollinger_spec("percent_b", bollinger_bars))
    histogram = _macd_histogram_variable(context, 12, 26, 9)
    previous = context.state("previous_histogram", NAN)
    if direction == "buy":
        condition = f"{rsi} < 30.0 and {percent_b} < 0.0 and {histogram} > {previous}"
    else:
        condition = f"{rsi} > 70.0 and {percent_b} > 1.0 and {histogram} < {previous}"
    out = context.temporary(f"strong_{direction}", f"1.0 if ({condition}) else 0.0")
    context.emit(f"{previous} = {histogram}")
    return out


KINDS = (
    FeatureKind("sma", sma_batch, sma_stream, "simple moving average"),
    FeatureKind("ema", ema_batch, ema_stream, "exponential moving average"),
    FeatureKind("rsi", rsi_batch, rsi_stream, "relative strength index (Wilder)"),
    FeatureKind("macd", macd_batch, macd_stream, "MACD line / signal / histogram"),
    FeatureKind("bollinger", bollinger_batch, bollinger_stream, "Bollinger bands, %B, bandwidth"),
    FeatureKind("atr", atr_batch, atr_stream, "average true range, NATR, ATR ratio"),
    FeatureKind("obv", obv_batch, obv_stream, "on-balance volume slope and divergence"),
    FeatureKind("mfi", mfi_batch, mfi_stream, "money flow index and its zone"),
    FeatureKind("williams_r", williams_r_batch, williams_r_stream, "Williams %R"),
    FeatureKind("volume", volume_batch, volume_stream, "volume ratio and change"),
    FeatureKind("candle", candle_batch, candle_stream, "candle patterns"),
    FeatureKind("strong_signal", strong_signal_batch, strong_signal_stream, "composite strong buy / sell"),
)
