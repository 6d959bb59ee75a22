"""Volatility-scaled naive quantile forecasts for the Oracle's report (numpy + the `arch` package).

Each baseline is a one-bar variance forecast v[t] (for bar t+1, from the one-bar log returns of bars
<= t of the same series only), turned into a k-step cumulative variance V[t, k] and quantiles

    forecast[t, k, q] = z[k, q] * sqrt(V[t, k])          (centre 0: no drift is forecast)

- `vol_rolling_48`, `vol_rolling_288`: v[t] = mean of r^2 over the last N one-bar returns up to t
  (zero-mean "std": 5m returns have no usable mean), V[t, k] = k v[t];
- `vol_ewma`: RiskMetrics v[t] = lambda v[t-1] + (1 - lambda) r[t]^2 with lambda = 0.94 (half-life
  about 11 bars), V[t, k] = k v[t];
- `garch_11`: zero-mean GARCH(1,1) with Student-t innovations, fitted once per fold by `arch` on the
  training split's one-bar returns (x 1e4 for the optimiser); the conditional variance is then
  filtered through the whole series with those parameters fixed (`arch_model(...).fix(params)`), and
  V[t, k] = the sum of arch's analytic 1..k-step-ahead variance forecasts made at t
  (`forecast(horizon=H, method="analytic")`). Zero mean on purpose: arch's constant mean and its
  starting values read the whole sample, a zero mean keeps every forecast causal.

The multipliers z[k, q] are the EMPIRICAL quantiles of the standardised training labels,
y[t, k-1] / sqrt(V[t, k]) over the training windows, one set per baseline and horizon step
(`CALIBRATION = "empirical"`). Measured on the validation splits of the committed Oracle's folds
(`calibration_comparison`, README "Volatility-scaled baselines"), they beat the normal quantile
z = Phi^-1(q) and the one-bar standardised-return quantiles scaled by sqrt(k) for every baseline:
5m returns are fat-tailed at one bar but not at twelve, and the standardised labels carry both.

Returns of a series are taken in row order with undefined ones (after a gap) skipped, so a rolling
window or a filter runs on across a gap but never reads a bar after t. A row without enough history
(fewer than N returns, fewer than `BURN_IN` for the EWMA and the GARCH filter, whose start-up value
arch takes from the first 75 returns) gets NaN; a target window with NaN raises.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.signal import lfilter
from scipy.stats import norm

from qa_engine.errors import DataError
from qa_engine.models.data import WindowedDataset

ROLLING_WINDOWS = (48, 288)  # 4 hours and 1 day of 5m bars
EWMA_LAMBDA = 0.94  # RiskMetrics
GARCH_SCALE = 1e4  # returns in bp for the optimiser
GARCH_DIST = "t"
BURN_IN = 75  # arch's backcast reads the first 75 returns of a series; nothing before that is causal
VOLATILITY_BASELINES = ("vol_rolling_48", "vol_rolling_288", "vol_ewma", "garch_11")
Calibration = Literal["empirical", "normal", "one_bar"]
CALIBRATION: Calibration = "empirical"


# ---- one-bar variance forecasts, row by row -------------------------------------------------------


def one_bar_returns(dataset: WindowedDataset) -> np.ndarray:
    """(N,) r[t] = ln(close[t] / close[t-1]) for every row of the fold (NaN after a gap)."""
    return dataset.past_returns[:, 0]


def _series_runs(series_id: np.ndarray, returns: np.ndarray) -> list[np.ndarray]:
    """Rows of each series whose one-bar return is defined, in row order."""
    finite = np.isfinite(returns)
    return [np.flatnonzero((series_id == s) & finite) for s in np.unique(series_id)]


def rolling_variance(returns: np.ndarray, series_id: np.ndarray, window: int) -> np.ndarray:
    """(N,) mean of r^2 over the last `window` defined returns of the series up to and including t."""
    out = np.full(len(returns), np.nan)
    for rows in _series_runs(series_id, returns):
        if len(rows) < window:
            continue
        squares = np.concatenate([[0.0], np.cumsum(returns[rows] ** 2)])
        out[rows[window - 1 :]] = (squares[window:] - squares[:-window]) / window
    return _carry_forward(out, returns, series_id)


def ewma_variance(returns: np.ndarray, series_id: np.ndarray, lam: float = EWMA_LAMBDA) -> np.ndarray:
    """(N,) RiskMetrics v[t] = lam v[t-1] + (1 - lam) r[t]^2, started at r[0]^2; NaN for the first
    `BURN_IN` returns of a series."""
    out = np.full(len(returns), np.nan)
    for rows in _series_runs(series_id, returns):
        if len(rows) <= BURN_IN:
            continue
        squares = returns[rows] ** 2
        variance = lfilter([1.0 - lam], [1.0, -lam], squares, zi=[lam * squares[0]])[0]
        out[rows[BURN_IN:]] = variance[BURN_IN:]
    return _carry_forward(out, returns, series_id)


def _carry_forward(values: np.ndarray, returns: np.ndarray, series_id: np.ndarray) -> np.ndarray:
    """Rows whose own return is undefined (right after a gap) take the value of the last row of their
    series, at or before them, that has a return (NaN if none); `values` is (N,) or (N, H)."""
    count = len(returns)
    own = np.isfinite(returns)
    last = np.maximum.accumulate(np.where(own, np.arange(count), -1))  # last row <= t with a return
    source = np.clip(last, 0, None)
    ok = ~own & (last >= 0) & (series_id[source] == series_id)
    out = values.copy()
    out[~own] = np.nan
    out[ok] = values[source[ok]]
    return out


def fit_garch(train_returns: np.ndarray) -> np.ndarray:
    """Zero-mean GARCH(1,1)-t parameters (omega, alpha[1], beta[1], nu) on returns x GARCH_SCALE."""
    from arch import arch_model

    clean = train_returns[np.isfinite(train_returns)] * GARCH_SCALE
    model = arch_model(clean, mean="Zero", vol="GARCH", p=1, q=1, dist=GARCH_DIST, rescale=False)
    return np.asarray(model.fit(disp="off", show_warning=False).params, dtype=np.float64)


def garch_variance_paths(
    returns: np.ndarray, series_id: np.ndarray, params: np.ndarray, horizon_bars: int
) -> np.ndarray:
    """(N, H) arch's analytic k-step-ahead variance forecasts made at t (steps 1..H, in returns^2),
    the parameters fixed; NaN for the first `BURN_IN` returns of a series."""
    from arch import arch_model

    out = np.full((len(returns), horizon_bars), np.nan)
    for rows in _series_runs(series_id, returns):
        if len(rows) <= BURN_IN:
            continue
        scaled = returns[rows] * GARCH_SCALE
        model = arch_model(scaled, mean="Zero", vol="GARCH", p=1, q=1, dist=GARCH_DIST, rescale=False)
        forecast = model.fix(params).forecast(horizon=horizon_bars, start=0, method="analytic", reindex=False)
        variance = np.asarray(forecast.variance, dtype=np.float64) / GARCH_SCALE**2  # (len(rows), H)
        out[rows[BURN_IN:]] = variance[BURN_IN:]
    return _carry_forward(out, returns, series_id)


def garch_conditional_variance(returns: np.ndarray, params: np.ndarray) -> np.ndarray:
    """(T,) arch's own in-sample conditional variance sigma^2[t] (of bar t, known at t-1) with the
    parameters fixed, for returns without gaps (the test compares the filter against it)."""
    from arch import arch_model

    model = arch_model(
        returns * GARCH_SCALE, mean="Zero", vol="GARCH", p=1, q=1, dist=GARCH_DIST, rescale=False
    )
    return np.asarray(model.fix(params).conditional_volatility, dtype=np.float64) ** 2 / GARCH_SCALE**2


# ---- cumulative variance and quantiles ------------------------------------------------------------


def cumulative_variances(
    dataset: WindowedDataset, horizon_bars: int, garch_params: np.ndarray | None
) -> dict[str, np.ndarray]:
    """name -> (N, H) variance of the k-step cumulative log return forecast at every row of the fold."""
    returns = one_bar_returns(dataset)
    series = dataset.series_id
    steps = np.arange(1, horizon_bars + 1, dtype=np.float64)
    flat = {f"vol_rolling_{n}": rolling_variance(returns, series, n) for n in ROLLING_WINDOWS}
    flat["vol_ewma"] = ewma_variance(returns, series)
    variances = {name: v[:, None] * steps[None, :] for name, v in flat.items()}
    if garch_params is not None:
        variances["garch_11"] = np.cumsum(
            garch_variance_paths(returns, series, garch_params, horizon_bars), axis=1
        )
    return variances


def quantile_multipliers(
    train: WindowedDataset, variance: np.ndarray, quantiles: tuple[float, ...], calibration: Calibration
) -> np.ndarray:
    """(H, Q) z[k, q] fitted on the training windows (see the module docstring)."""
    horizon = variance.shape[1]
    q = np.asarray(quantiles)
    if calibration == "normal":
        return np.broadcast_to(norm.ppf(q), (horizon, len(q))).copy()
    ends = train.ends
    if calibration == "one_bar":  # quantiles of r[t+1] / sqrt(v[t]) = y[t, 0] / sqrt(V[t, 1]), every step
        z = train.labels_raw[ends, 0] / np.sqrt(variance[ends, 0])
        z = z[np.isfinite(z)]
        return np.broadcast_to(np.quantile(z, q), (horizon, len(q))).copy()
    z = train.labels_raw[ends] / np.sqrt(variance[ends])  # (M, H)
    out = np.empty((horizon, len(q)))
    for k in range(horizon):
        column = z[:, k][np.isfinite(z[:, k])]
        if len(column) == 0:
            raise DataError("no training window has enough history for the volatility baselines")
        out[k] = np.quantile(column, q)
    return out


def volatility_forecasts(
    train: WindowedDataset,
    target: WindowedDataset,
    quantiles: tuple[float, ...],
    calibration: Calibration = CALIBRATION,
    garch: bool = True,
) -> dict[str, np.ndarray]:
    """(N, H, Q) forecasts of the volatility-scaled baselines for `target`'s windows. `train` and
    `target` are splits of one fold (they share the rows); the GARCH fit and the multipliers read the
    training split only, every forecast at t reads bars <= t only."""
    horizon = target.meta.horizon_bars
    params = fit_garch(one_bar_returns(train)[train.ends]) if garch else None
    forecasts = {}
    for name, variance in cumulative_variances(target, horizon, params).items():
        z = quantile_multipliers(train, variance, quantiles, calibration)  # (H, Q)
        sigma = np.sqrt(variance[target.ends])  # (N, H)
        if not np.all(np.isfinite(sigma)):
            raise DataError(f"{name}: a target window has too little history before it (need >= 288 bars)")
        forecasts[name] = sigma[..., None] * z[None]  # one_bar: z sigma sqrt(k), as V[t, k] = k v[t]
    return forecasts


def calibration_comparison(
    train: WindowedDataset, validation: WindowedDataset, quantiles: tuple[float, ...]
) -> dict[str, dict[str, float]]:
    """Mean pinball loss on `validation` of every baseline under every calibration (how CALIBRATION
    was chosen; never run on a test split)."""
    realised = validation.labels_raw[validation.ends][..., None]  # (N, H, 1)
    q = np.asarray(quantiles)
    result: dict[str, dict[str, float]] = {}
    for calibration in ("empirical", "normal", "one_bar"):
        forecasts = volatility_forecasts(train, validation, quantiles, calibration)  # type: ignore[arg-type]
        result[calibration] = {
            name: float(np.maximum(q * (realised - f), (q - 1.0) * (realised - f)).mean())
            for name, f in forecasts.items()
        }
    return result
