"""Guardian regimes: k-means on the latent space, deterministic labels, risk scales, a persistence rule.

The fitting side (numpy; scikit-learn only inside `fit_regimes`). What training writes into the
manifest and trading reads back (`RegimeConfig`, `RegimeModel`, `RegimeTracker`, the `guardian`
manifest section) is the contract, in `qa_engine.contract.guardian`; the online use is
`qa_engine.inference.guardian`: `load_guardian_artifact(folder)` then `GuardianOnline(artifact)
.update(raw_window) -> RegimeReading(regime, raw_regime, probabilities, risk_scale)`.

Fitting (training fold only). `fit_regimes` runs k-means (scikit-learn, `n_init` restarts, fixed
`kmeans_seed`) on the latent means of the TRAINING windows; nothing else is ever passed to it.

Labels. Clusters are renamed by the median realised volatility of their training windows (std of the
1-bar log returns inside the window), ascending: regime 0 is the calmest, regime K-1 the most
volatile. Ties (equal medians) fall back to the lexicographic order of the centroids. The same data
and seed therefore give the same labels, and refits on other folds give labels that mean the same
thing ("calm" .. "turbulent"), whatever order k-means found the clusters in.

Online assignment. p_k = softmax_k(-||mu - c_k||^2 / tau) over the ordered centroids c_k, where
tau = assignment_temperature * (mean squared distance of the training latents to their nearest
centroid): with the default multiplier 1, a point at a typical within-cluster distance from its
centroid and one typical distance further from the next one gets e^1 : 1 odds. The raw regime is
argmax p (the nearest centroid).

Risk scale per regime (a multiplier on new risk, in [0, 1]). vol_k = median realised volatility of
the training windows of regime k. scale_k = clip(vol_0 / vol_k, 0, 1): inverse volatility, 1.0 for
the calmest regime. The most volatile regime gets 0 ("no new risk") when it is dangerous on the
training fold: vol_{K-1} >= danger_volatility_ratio x the median window volatility of the whole
training fold, or the worst peak-to-trough drawdown of the close inside one of its (persistence-
filtered) runs >= danger_drawdown_pct.

Persistence (hysteresis), `RegimeTracker` / `apply_persistence`. The reported regime starts as the
first raw regime. It switches to a candidate k only after k has been the raw regime, with
probability >= min_switch_probability, on `escalate_bars` consecutive bars when k is riskier (a
higher label) than the reported regime, or `deescalate_bars` consecutive bars when k is calmer: risk
is cut fast and restored slowly. A bar whose raw regime is the reported one, or whose winning
probability is below the threshold, restarts the count. With escalate_bars >= 2 (enforced) a single
noisy bar never flips the regime. A gap in the bars resets the tracker (cold start).
"""

from __future__ import annotations

import numpy as np

from qa_engine.contract.guardian import RegimeConfig
from qa_engine.contract.guardian import RegimeModel
from qa_engine.contract.guardian import RegimeTracker


def apply_persistence(
    probabilities: np.ndarray, config: RegimeConfig, segment_starts: np.ndarray | None = None
) -> np.ndarray:
    """(N, K) probabilities in time order -> (N,) reported regimes; the tracker resets at each row of
    `segment_starts` (rows that follow a gap)."""
    tracker = RegimeTracker(config)
    starts = set() if segment_starts is None else {int(row) for row in segment_starts}
    labels = np.empty(len(probabilities), dtype=np.int64)
    for row, vector in enumerate(probabilities):
        if row in starts:
            tracker.reset()
        labels[row] = tracker.update(vector)
    return labels


def run_bounds(labels: np.ndarray, segment_starts: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """(label, start, end) of maximal runs of one label in time order, [start, end) rows; a run also
    ends where a new gap-free segment starts."""
    count = len(labels)
    if count == 0:
        return []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    breaks = set(change.tolist())
    if segment_starts is not None:
        breaks |= {int(row) for row in segment_starts if 0 < int(row) < count}
    edges = [0, *sorted(breaks), count]
    return [(int(labels[edges[i]]), edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def max_drawdown_pct(log_returns: np.ndarray) -> float:
    """Worst peak-to-trough fall of exp(cumsum(log_returns)) from the level before the first bar, percent."""
    if len(log_returns) == 0:
        return 0.0
    level = np.concatenate([[0.0], np.cumsum(log_returns)])
    drawdown = level - np.maximum.accumulate(level)
    return float(100.0 * (1.0 - np.exp(drawdown.min())))


def fit_regimes(
    latent: np.ndarray,
    window_volatility: np.ndarray,
    bar_log_returns: np.ndarray,
    config: RegimeConfig,
    segment_starts: np.ndarray | None = None,
) -> RegimeModel:
    """Fit regimes on TRAINING windows only, in time order.

    latent (N, D): latent means of the training windows; window_volatility (N,): std of the 1-bar log
    returns inside each window; bar_log_returns (N,): the log return of each window's last bar (for
    the in-run drawdowns); segment_starts: rows that follow a gap (runs never cross one).
    """
    from sklearn.cluster import KMeans

    latent = np.asarray(latent, dtype=np.float64)
    count = latent.shape[0]
    k = config.n_regimes
    if latent.ndim != 2 or count < k:
        raise ValueError(f"need (N >= {k}, D) training latents, got shape {latent.shape}")
    if window_volatility.shape != (count,) or bar_log_returns.shape != (count,):
        raise ValueError("window_volatility and bar_log_returns need one value per training window")
    kmeans = KMeans(n_clusters=k, n_init=config.kmeans_restarts, random_state=config.kmeans_seed)
    raw = kmeans.fit_predict(latent)
    centres = kmeans.cluster_centers_.astype(np.float64)  # (K, D)
    median_vol = np.array(
        [np.median(window_volatility[raw == j]) if np.any(raw == j) else np.inf for j in range(k)]
    )
    order = sorted(range(k), key=lambda j: (median_vol[j], tuple(centres[j])))
    rename = np.empty(k, dtype=np.int64)
    rename[order] = np.arange(k)
    labels = rename[raw]
    centroids = centres[order]
    volatility = median_vol[order]
    share = np.bincount(labels, minlength=k) / count
    within = float(np.mean(np.min(((latent[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)))
    temperature = config.assignment_temperature * max(within, 1e-12)

    risk_scale = np.clip(volatility[0] / np.maximum(volatility, 1e-18), 0.0, 1.0)
    provisional = RegimeModel(
        config, centroids, temperature, risk_scale, volatility, share, np.zeros(k), dangerous=False
    )
    filtered = apply_persistence(provisional.probabilities(latent), config, segment_starts)
    drawdown = np.zeros(k)
    for label, start, end in run_bounds(filtered, segment_starts):
        drawdown[label] = max(drawdown[label], max_drawdown_pct(bar_log_returns[start:end]))
    overall = float(np.median(window_volatility))
    dangerous = bool(
        volatility[-1] >= config.danger_volatility_ratio * overall
        or drawdown[-1] >= config.danger_drawdown_pct
    )
    if dangerous:
        risk_scale = risk_scale.copy()
        risk_scale[-1] = 0.0
    return RegimeModel(config, centroids, temperature, risk_scale, volatility, share, drawdown, dangerous)
