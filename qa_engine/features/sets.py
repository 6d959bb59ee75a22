"""Named, versioned feature sets. `default` is the product's per-bar set (53 features, OHLCV only)."""

from __future__ import annotations

from collections.abc import Callable

from qa_engine.errors import ConfigError
from qa_engine.features.families.fracdiff import ffd_spec
from qa_engine.features.families.orderflow import ofi_spec
from qa_engine.features.families.returns import calendar_spec
from qa_engine.features.families.returns import log_return_spec
from qa_engine.features.families.returns import realised_volatility_spec
from qa_engine.features.families.returns import zscore_spec
from qa_engine.features.families.technical import atr_spec
from qa_engine.features.families.technical import bollinger_spec
from qa_engine.features.families.technical import candle_spec
from qa_engine.features.families.technical import ema_spec
from qa_engine.features.families.technical import macd_spec
from qa_engine.features.families.technical import mfi_spec
from qa_engine.features.families.technical import obv_spec
from qa_engine.features.families.technical import rsi_spec
from qa_engine.features.families.technical import sma_spec
from qa_engine.features.families.technical import strong_signal_spec
from qa_engine.features.families.technical import volume_spec
from qa_engine.features.families.technical import williams_r_spec
from qa_engine.features.families.volume_profile import volume_profile_spec
from qa_engine.features.families.wavelet import wavelet_spec
from qa_engine.features.spec import FeatureSet


def default_feature_set() -> FeatureSet:
    """The default per-bar set: technical, returns, calendar, FFD, OFI, volume profile, wavelet."""
    specs = (
        *(sma_spec(period) for period in (5, 10, 20, 50)),
        ema_spec(12),
        ema_spec(26),
        rsi_spec(14),
        macd_spec("line"),
        macd_spec("signal"),
        macd_spec("histogram"),
        *(bollinger_spec(output) for output in ("upper", "lower", "percent_b", "bandwidth")),
        atr_spec("atr"),
        atr_spec("natr"),
        atr_spec("ratio"),
        obv_spec("slope"),
        obv_spec("divergence"),
        mfi_spec("index"),
        mfi_spec("zone"),
        williams_r_spec(14),
        volume_spec("ratio"),
        volume_spec("change"),
        *(candle_spec(pattern) for pattern in ("doji", "hammer", "engulfing")),
        strong_signal_spec("buy"),
        strong_signal_spec("sell"),
        *(log_return_spec(lag) for lag in (1, 5, 15, 60)),
        realised_volatility_spec(20),
        realised_volatility_spec(60),
        zscore_spec("close", 20),
        zscore_spec("volume", 20),
        calendar_spec("time_of_day", "sin"),
        calendar_spec("time_of_day", "cos"),
        calendar_spec("day_of_week", "sin"),
        calendar_spec("day_of_week", "cos"),
        ffd_spec(),
        ofi_spec(1),
        ofi_spec(20),
        *(
            volume_profile_spec(output)
            for output in ("poc", "vah", "val", "poc_distance", "vah_distance", "val_distance")
        ),
        wavelet_spec("level"),
        wavelet_spec("deviation"),
    )
    return FeatureSet(
        name="default",
        version=1,
        specs=specs,
        description="per-bar model features; OHLCV only (OFI falls back to BVC without taker volume)",
    )


# Scale-free features of the default set (returns, volatility, oscillators, relative distances). Price
# levels (SMA/EMA/Bollinger bands/POC/wavelet level), price-unit MACD/ATR, calendar and sparse candle
# flags are left out: standardised on one year, a price level drifts out of range the next and the
# clusters would become "where the price was", not "how the market behaves".
GUARDIAN_FEATURE_NAMES: tuple[str, ...] = (
    "log_return_1",
    "log_return_5",
    "log_return_15",
    "log_return_60",
    "realised_volatility_20",
    "realised_volatility_60",
    "natr_14",
    "atr_ratio_14",
    "bb_width_20",
    "bb_percent_b_20",
    "zscore_close_20",
    "rsi_14",
    "williams_r_14",
    "mfi_14",
    "obv_slope_20",
    "volume_ratio_20",
    "zscore_volume_20",
    "ofi_20",
    "vp_poc_distance_96",
    "wavelet_deviation_64",
)


def guardian_feature_set() -> FeatureSet:
    """The Guardian's inputs: the default set's specs of `GUARDIAN_FEATURE_NAMES`, in that order."""
    default = default_feature_set()
    return FeatureSet(
        name="guardian",
        version=1,
        specs=tuple(default.spec(name) for name in GUARDIAN_FEATURE_NAMES),
        description="scale-free subset of the default set for the Guardian regime detector",
    )


FEATURE_SETS: dict[str, Callable[[], FeatureSet]] = {
    "default": default_feature_set,
    "guardian": guardian_feature_set,
}


def get_feature_set(name: str) -> FeatureSet:
    """A registered feature set by name; an unknown name lists the valid ones."""
    if name not in FEATURE_SETS:
        raise ConfigError(f"unknown feature set '{name}'; registered: {', '.join(sorted(FEATURE_SETS))}")
    return FEATURE_SETS[name]()
