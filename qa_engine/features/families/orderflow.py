"""Bar-level order-flow imbalance: taker buy volume when the bars carry it, bulk volume classification if not.

OFI over n bars = sum(buy - sell) / sum(volume), in [-1, 1], 0 when the window had no volume.
- Primary (input taker_buy_volume): buy = taker buy volume, sell = volume - buy (Binance klines).
- Declared fallback (OHLCV only): bulk volume classification (Easley, Lopez de Prado & O'Hara 2012,
  "Flow Toxicity and Liquidity in a High-Frequency World"): the buy share of a bar's volume is
  Phi(r / sigma), r the bar's log return and sigma the population std of 1-bar log returns over
  the last `sigma_bars` bars (0.5 when they were all equal). It is an estimate, not observed flow.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from qa_engine.features.contexts import TAKER_BUY_VOLUME
from qa_engine.features.contexts import VOLUME
from qa_engine.features.contexts import BatchContext
from qa_engine.features.contexts import StreamContext
from qa_engine.features.families.common import FeatureKind
from qa_engine.features.families.common import make_spec
from qa_engine.features.families.common import positive_int
from qa_engine.features.spec import Fallback
from qa_engine.features.spec import FeatureSpec

DEFAULT_SIGMA_BARS = 50


def ofi_spec(window_bars: int, sigma_bars: int = DEFAULT_SIGMA_BARS) -> FeatureSpec:
    return make_spec(
        f"ofi_{window_bars}",
        "ofi_taker",
        warmup_bars=window_bars,
        description=f"order-flow imbalance over {window_bars} bars from taker buy volume",
        inputs=("ohlcv", "taker_buy_volume"),
        fallback=Fallback(
            kind="ofi_bvc",
            inputs=("ohlcv",),
            params=(("sigma_bars", sigma_bars),),
            description=f"bulk volume classification, sigma over {sigma_bars} bars",
            warmup_bars=bvc_warmup_bars(window_bars, sigma_bars),
        ),
        window_bars=window_bars,
    )


def bvc_warmup_bars(window_bars: int, sigma_bars: int) -> int:
    """Bars until a BVC OFI is valid: sigma needs sigma_bars real returns (+1 bar), then the window."""
    return sigma_bars + 1 + window_bars - 1


def _imbalance_batch(context: BatchContext, buy: pl.Expr, key: str, window: int) -> pl.Expr:
    volume = pl.col("volume")
    net = context.rolling_sum(2.0 * buy - volume, key, window)
    total = context.rolling_sum(volume, "volume", window)
    return pl.when(context.rolling_max(volume, "volume", window) > 0.0).then(net / total).otherwise(0.0)


def ofi_taker_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    window = positive_int(spec.name, "window_bars", spec.param("window_bars"))
    return _imbalance_batch(context, pl.col("taker_buy_volume"), "taker_net", window)


def _bvc_buy_share(values: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr  # the standard normal CDF; polars has no erf

    return ndtr(values)


def ofi_bvc_batch(context: BatchContext, spec: FeatureSpec) -> pl.Expr:
    window = positive_int(spec.name, "window_bars", spec.param("window_bars"))
    sigma_bars = positive_int(spec.name, "sigma_bars", spec.param("sigma_bars"))

    def build_buy() -> pl.Expr:
        returns = context.log_return()
        sigma = context.rolling_std(returns, "log_return", sigma_bars)
        varying = context.rolling_max(returns, "log_return", sigma_bars) > context.rolling_min(
            returns, "log_return", sigma_bars
        )
        z = pl.when(varying).then(returns / sigma).otherwise(0.0)
        share = z.map_batches(lambda s: pl.Series(_bvc_buy_share(s.to_numpy())), return_dtype=pl.Float64)
        return pl.col("volume") * share

    buy = context.memo(("bvc_buy", sigma_bars), build_buy)
    return _imbalance_batch(context, buy, f"bvc_net_{sigma_bars}", window)


def _imbalance_stream(context: StreamContext, buy: str, key: str, window: int) -> str:
    net_value = context.memo(("net", key), lambda: context.temporary("net_flow", f"2.0 * {buy} - {VOLUME}"))
    net = context.rolling_sum(net_value, key, window)
    total = context.rolling_sum(VOLUME, "volume", window)
    highest = context.rolling_max(VOLUME, "volume", window)
    return context.temporary("ofi", f"{net} / {total} if {highest} > 0.0 else 0.0")


def ofi_taker_stream(context: StreamContext, spec: FeatureSpec) -> str:
    window = positive_int(spec.name, "window_bars", spec.param("window_bars"))
    return _imbalance_stream(context, TAKER_BUY_VOLUME, "taker_net", window)


def ofi_bvc_stream(context: StreamContext, spec: FeatureSpec) -> str:
    window = positive_int(spec.name, "window_bars", spec.param("window_bars"))
    sigma_bars = positive_int(spec.name, "sigma_bars", spec.param("sigma_bars"))

    def build_buy() -> str:
        returns = context.log_return()
        sigma = context.rolling_std(returns, "log_return", sigma_bars, centred=True)
        highest = context.rolling_max(returns, "log_return", sigma_bars)
        lowest = context.rolling_min(returns, "log_return", sigma_bars)
        erfc = context.constant("erfc", math.erfc)
        minus_sqrt_half = context.constant("minus_sqrt_half", -math.sqrt(0.5))
        z = context.temporary("bvc_z", f"{returns} / {sigma} if {highest} > {lowest} else 0.0")
        return context.temporary(
            "bvc_buy", f"{VOLUME} * (0.5 * {erfc}({minus_sqrt_half} * {z}))"
        )  # v * Phi(z)

    buy = context.memo(("bvc_buy", sigma_bars), build_buy)
    return _imbalance_stream(context, buy, f"bvc_net_{sigma_bars}", window)


KINDS = (
    FeatureKind("ofi_taker", ofi_taker_batch, ofi_taker_stream, "order-flow imbalance from taker buy volume"),
    FeatureKind("ofi_bvc", ofi_bvc_batch, ofi_bvc_stream, "order-flow imbalance, bulk volume classification"),
)
