"""Fixed-width fractional differencing (FFD) of log close, with the order chosen on a training range.

FFD keeps memory of the price level while making the series (close to) stationary (Lopez de Prado,
AFML ch. 5). The feature at bar t is sum_k w_k ln(close_{t-k}) over a fixed window of K weights,
so it only ever sees the last K bars (the founding code differenced the whole series at once, which
leaks the future through the expanding window's normalisation). The order d is chosen by
`choose_ffd_order` on the training range only and written into the spec (so into its hash).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.features.contexts import CLOSE
from qa_engine.features.contexts import BatchContext
from qa_engine.features.contexts import StreamContext
from qa_engine.features.families.common import FeatureKind
from qa_engine.features.families.common import make_spec
from qa_engine.features.kernels import ffd_weights
from qa_engine.features.spec import FeatureSet
from qa_engine.features.spec import FeatureSpec

DEFAULT_FFD_ORDER = 0.4  # used until `fit_feature_set` chooses d on a training range
DEFAULT_FFD_THRESHOLD = 1e-4
ADF_CRITICAL_5PCT = -2.86  # MacKinnon (2010) 5% critical value, constant, no trend, large sample
ORDER_GRID = tuple(round(0.05 * step, 2) for step in range(0, 21))  # 0.00, 0.05, ..., 1.00


def ffd_spec(order: float = DEFAULT_FFD_ORDER, threshold: float = DEFAULT_FFD_THRESHOLD, fitted_on: str = ""):
    width = len(ffd_weights(order, threshold))
    return make_spec(
        "ffd_log_close",
        "ffd",
        warmup_bars=width,
        description=(
            f"fixed-width fractional difference of ln(close), d={order}, |w| >= {threshold} "
            f"({width} bars); d {'chosen on ' + fitted_on if fitted_on else 'not fitted (default)'}"
        ),
        fitted_on=fitted_on,
        order=order,
        threshold=threshold,
    )


def _weights(spec: FeatureSpec) -> np.ndarray:
    return ffd_weights(float(spec.param("order")), float(spec.param("threshold")))  # type: ignore[arg-type]


def ffd_apply(log_close: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """FFD of a whole array: out[t] = sum_k w_k x[t-k] for t >= K-1, NaN before (direct convolution).

    Hand-written with numpy because polars has no convolution expression; np.convolve is the direct
    O(n K) sum, deterministic for every t regardless of the array's length (no FFT rounding).
    """
    width = len(weights)
    out = np.full(len(log_close), np.nan)
    if len(log_close) >= width:
        out[width - 1 :] = np.convolve(log_close, weights, mode="valid")
    return out


def ffd_batch(context: BatchContext, spec: FeatureSpec) -> np.ndarray:
    return ffd_apply(np.log(context.array("close")), _weights(spec))


def ffd_stream(context: StreamContext, spec: FeatureSpec) -> str:
    weights = _weights(spec)
    reversed_weights = context.constant(
        "ffd_weights", np.ascontiguousarray(weights[::-1])
    )  # window: oldest first
    log_close = context.memo(("log_close",), lambda: context.temporary("log_close", f"log({CLOSE})"))
    view = context.window_array(log_close, "log_close", len(weights))
    return context.temporary("ffd", f"dot({view}, {reversed_weights})")


@dataclass(frozen=True)
class FfdOrderChoice:
    """The outcome of `choose_ffd_order`: d, the ADF statistic there, and every tried order."""

    order: float
    adf_statistic: float
    adf_pvalue: float
    width_bars: int
    tried: tuple[tuple[float, float, float], ...]  # (d, ADF statistic, p-value)
    passed: bool


def choose_ffd_order(
    train_close: np.ndarray,
    threshold: float = DEFAULT_FFD_THRESHOLD,
    orders: tuple[float, ...] = ORDER_GRID,
    pvalue: float = 0.05,
    max_observations: int = 200_000,
) -> FfdOrderChoice:
    """Smallest d in `orders` whose FFD of ln(close) passes an augmented Dickey-Fuller test.

    Uses statsmodels' adfuller (constant, one lag, no autolag: the AFML recipe) on the training
    closes only; the caller must not pass bars after the training range. The last
    `max_observations` FFD values are tested (the ADF regression is O(n)). If no order passes,
    the largest is returned with passed=False.
    """
    from statsmodels.tsa.stattools import adfuller

    closes = np.asarray(train_close, dtype=np.float64)
    if closes.ndim != 1 or not np.all(np.isfinite(closes)) or np.any(closes <= 0):
        raise DataError("choose_ffd_order needs a 1-D array of positive, finite closes")
    log_close = np.log(closes)
    tried: list[tuple[float, float, float]] = []
    for order in sorted(orders):
        weights = ffd_weights(order, threshold)
        if len(log_close) < len(weights) + 100:
            raise DataError(
                f"training range has {len(log_close)} bars; FFD d={order} needs {len(weights)} + 100 for ADF"
            )
        series = ffd_apply(log_close, weights)[len(weights) - 1 :][-max_observations:]
        if np.ptp(series) == 0.0:
            continue
        statistic, p_value, *_ = adfuller(series, maxlag=1, regression="c", autolag=None, result_object=False)
        tried.append((order, float(statistic), float(p_value)))
        if p_value < pvalue:
            return FfdOrderChoice(order, float(statistic), float(p_value), len(weights), tuple(tried), True)
    if not tried:
        raise DataError("every FFD series of the training range is constant; cannot choose d")
    order, statistic, p_value = tried[-1]
    return FfdOrderChoice(order, statistic, p_value, len(ffd_weights(order, threshold)), tuple(tried), False)


def fit_feature_set(
    feature_set: FeatureSet, train_bars: pl.DataFrame, train_label: str | None = None
) -> FeatureSet:
    """The set with every FFD order chosen on `train_bars` (its `close` and `ts`), recorded in the spec.

    The returned set has a different hash from the unfitted one, and from one fitted elsewhere.
    """
    if train_bars.height == 0:
        raise DataError("the training range holds no bars")
    label = train_label
    if label is None:
        ts = train_bars.get_column("ts").cast(pl.Int64)
        first, last = (
            pl.Series([ts.min(), ts.max()])
            .cast(pl.Datetime("ns", "UTC"))
            .dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_list()
        )
        label = f"{first}..{last} ({train_bars.height} bars)"
    fitted = feature_set
    for spec in feature_set.specs:
        if spec.kind != "ffd":
            continue
        threshold = float(spec.param("threshold"))  # type: ignore[arg-type]
        choice = choose_ffd_order(train_bars.get_column("close").to_numpy(), threshold=threshold)
        if not choice.passed:
            raise ConfigError(
                f"no FFD order up to d={choice.order} makes ln(close) stationary on {label} "
                f"(ADF {choice.adf_statistic:.2f}, critical {ADF_CRITICAL_5PCT}); check the training range"
            )
        refit = ffd_spec(choice.order, threshold, fitted_on=label)
        fitted = fitted.replace_spec(
            FeatureSpec(
                name=spec.name,
                kind=refit.kind,
                params=refit.params,
                inputs=refit.inputs,
                warmup_bars=refit.warmup_bars,
                version=refit.version,
                description=refit.description,
            )
        )
    return fitted


KINDS = (
    FeatureKind(
        "ffd", ffd_batch, ffd_stream, "fixed-width fractional differencing of ln(close)", engine="numpy"
    ),
)
