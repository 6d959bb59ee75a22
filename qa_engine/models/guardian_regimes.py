"""Guardian regimes: k-means on the latent space, deterministic labels, risk scales, a persistence rule.

Torch-free (numpy, pydantic; scikit-learn only inside `fit_regimes`), so the trading side can import
the online part next to onnxruntime: `load_guardian_artifact(folder)` then `GuardianOnline(artifact)
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

from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Literal

import numpy as np
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator

from qa_engine.features.spec import FeatureSet
from qa_engine.inference.artifact import Artifact
from qa_engine.models.manifest import ArtifactManifest


@dataclass(frozen=True)
class RegimeConfig:
    """How regimes are fitted, assigned, scaled and filtered (see the module docstring for the rules)."""

    n_regimes: int = 4
    kmeans_seed: int = 0
    kmeans_restarts: int = 10
    assignment_temperature: float = 1.0  # multiplier on the mean within-cluster squared distance
    danger_volatility_ratio: float = 2.0  # most volatile regime: vol / median training vol threshold
    danger_drawdown_pct: float = 5.0  # most volatile regime: worst in-run drawdown threshold, percent
    escalate_bars: int = 2  # consecutive bars to switch to a riskier regime (>= 2)
    deescalate_bars: int = 6  # consecutive bars to switch to a calmer regime (>= escalate_bars)
    min_switch_probability: float = 0.5  # a candidate bar counts only with p >= this

    def __post_init__(self) -> None:
        if self.n_regimes < 2:
            raise ValueError(f"n_regimes must be >= 2, got {self.n_regimes}")
        if self.kmeans_restarts < 1:
            raise ValueError(f"kmeans_restarts must be >= 1, got {self.kmeans_restarts}")
        if self.assignment_temperature <= 0:
            raise ValueError(f"assignment_temperature must be > 0, got {self.assignment_temperature}")
        if self.danger_volatility_ratio <= 0 or self.danger_drawdown_pct <= 0:
            raise ValueError("danger thresholds must be > 0")
        if self.escalate_bars < 2:
            raise ValueError(f"escalate_bars must be >= 2 so one bar cannot flip, got {self.escalate_bars}")
        if self.deescalate_bars < self.escalate_bars:
            raise ValueError(
                f"deescalate_bars ({self.deescalate_bars}) must be >= escalate_bars ({self.escalate_bars})"
            )
        if not 0.0 <= self.min_switch_probability < 1.0:
            raise ValueError(f"min_switch_probability must be in [0, 1), got {self.min_switch_probability}")


@dataclass(frozen=True, eq=False)
class RegimeModel:
    """Fitted regimes: ordered centroids, softmax temperature, risk scales and training-fold facts."""

    config: RegimeConfig
    centroids: np.ndarray  # (K, D), regime 0 = calmest
    temperature: float  # tau of the soft assignment
    risk_scale: np.ndarray  # (K,) in [0, 1]
    training_volatility: np.ndarray  # (K,) median realised volatility (per bar) of training windows
    training_share: np.ndarray  # (K,) share of training windows
    training_drawdown_pct: np.ndarray  # (K,) worst in-run drawdown on the training fold, percent
    dangerous: bool  # whether the most volatile regime was set to 0 ("no new risk")

    @property
    def n_regimes(self) -> int:
        return int(self.centroids.shape[0])

    def squared_distances(self, latent: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, K) squared Euclidean distances to the centroids."""
        diff = latent[:, None, :] - self.centroids[None, :, :]  # (N, K, D)
        return np.einsum("nkd,nkd->nk", diff, diff)

    def probabilities(self, latent: np.ndarray) -> np.ndarray:
        """(N, D) latent means -> (N, K) soft assignment softmax(-d^2 / tau)."""
        logits = -self.squared_distances(np.asarray(latent, dtype=np.float64)) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def assign(self, latent: np.ndarray) -> np.ndarray:
        """(N, D) -> (N,) nearest-centroid regime."""
        return self.squared_distances(np.asarray(latent, dtype=np.float64)).argmin(axis=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (manifest) form."""
        return {
            "config": asdict(self.config),
            "centroids": self.centroids.tolist(),
            "temperature": self.temperature,
            "risk_scale": self.risk_scale.tolist(),
            "training_volatility": self.training_volatility.tolist(),
            "training_share": self.training_share.tolist(),
            "training_drawdown_pct": self.training_drawdown_pct.tolist(),
            "dangerous": self.dangerous,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegimeModel:
        return cls(
            config=RegimeConfig(**data["config"]),
            centroids=np.asarray(data["centroids"], dtype=np.float64),
            temperature=float(data["temperature"]),
            risk_scale=np.asarray(data["risk_scale"], dtype=np.float64),
            training_volatility=np.asarray(data["training_volatility"], dtype=np.float64),
            training_share=np.asarray(data["training_share"], dtype=np.float64),
            training_drawdown_pct=np.asarray(data["training_drawdown_pct"], dtype=np.float64),
            dangerous=bool(data["dangerous"]),
        )


class RegimeTracker:
    """Online persistence filter: feed one probability vector per bar, get the reported regime."""

    def __init__(self, config: RegimeConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Cold start (at a gap in the bars, or a new run)."""
        self.current: int | None = None
        self.candidate: int | None = None
        self.count = 0

    def update(self, probabilities: np.ndarray) -> int:
        raw = int(np.argmax(probabilities))
        if self.current is None:
            self.current = raw
            return raw
        if raw == self.current or probabilities[raw] < self.config.min_switch_probability:
            self.candidate, self.count = None, 0
            return self.current
        self.count = self.count + 1 if raw == self.candidate else 1
        self.candidate = raw
        needed = self.config.escalate_bars if raw > self.current else self.config.deescalate_bars
        if self.count >= needed:
            self.current, self.candidate, self.count = raw, None, 0
        return self.current


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


# ---- the manifest section ---------------------------------------------------------------------


class GuardianSection(BaseModel):
    """The `guardian` section of an artifact manifest: everything the trading side needs besides the
    ONNX graph (which already holds the centroids) to turn probabilities into a reported regime and a
    risk scale: the ordered regimes' facts, risk scales and the persistence rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: Literal["ordered by median training-window volatility, 0 = calmest"] = (
        "ordered by median training-window volatility, 0 = calmest"
    )
    latent_dim: int = Field(ge=1)
    n_regimes: int = Field(ge=2)
    centroids: list[list[float]] = Field(description="(K, D) ordered centroids, as baked into the graph")
    temperature: float = Field(gt=0, description="p = softmax(-||mu - c||^2 / temperature)")
    risk_scale: list[float] = Field(description="(K,) multiplier on new risk per regime, in [0, 1]")
    training_volatility: list[float] = Field(description="(K,) median per-bar volatility of training windows")
    training_share: list[float] = Field(description="(K,) share of training windows")
    training_drawdown_pct: list[float] = Field(description="(K,) worst in-run drawdown on the training fold")
    dangerous: bool = Field(description="whether the most volatile regime was set to 0 (no new risk)")
    rules: dict[str, Any] = Field(
        description="RegimeConfig: k-means, temperature, danger and persistence rules"
    )

    @model_validator(mode="after")
    def _check(self) -> GuardianSection:
        k = self.n_regimes
        if len(self.centroids) != k or any(len(row) != self.latent_dim for row in self.centroids):
            raise ValueError(f"centroids must be ({k}, {self.latent_dim})")
        for name in ("risk_scale", "training_volatility", "training_share", "training_drawdown_pct"):
            if len(getattr(self, name)) != k:
                raise ValueError(f"{name} needs {k} values")
        if not all(0.0 <= value <= 1.0 for value in self.risk_scale):
            raise ValueError(f"risk_scale values must lie in [0, 1], got {self.risk_scale}")
        RegimeConfig(**self.rules)
        return self

    @classmethod
    def from_regimes(cls, regimes: RegimeModel, latent_dim: int) -> GuardianSection:
        values = regimes.to_dict()
        rules = values.pop("config")
        return cls(latent_dim=latent_dim, n_regimes=regimes.n_regimes, rules=rules, **values)

    def regime_model(self) -> RegimeModel:
        values = self.model_dump(exclude={"labels", "latent_dim", "n_regimes", "rules"})
        return RegimeModel.from_dict({**values, "config": self.rules})


class GuardianArtifactManifest(ArtifactManifest):
    """The shared manifest with model_kind 'guardian' and its section, registered in
    `qa_engine.models.manifest.MANIFEST_TYPES`: `read_manifest` and `load_artifact` read it."""

    model_kind: Literal["guardian"] = "guardian"  # type: ignore[assignment]
    guardian: GuardianSection

    @model_validator(mode="after")
    def _consistent(self) -> GuardianArtifactManifest:
        if self.oracle is not None:
            raise ValueError("a guardian manifest has no oracle section")
        return self


# ---- online use (onnxruntime, no torch) ------------------------------------------------------


def load_guardian_artifact(
    folder: Path,
    expected_feature_set: FeatureSet | None = None,
    window_bars: int | None = None,
    interval: str | None = None,
) -> Artifact:
    """`qa_engine.inference.artifact.load_artifact` (model file hash, input/output shapes, feature set,
    window, interval), refusing an artifact of another kind."""
    from qa_engine.errors import ConfigError
    from qa_engine.inference.artifact import load_artifact

    artifact = load_artifact(Path(folder), expected_feature_set, window_bars, interval)
    if not isinstance(artifact.manifest, GuardianArtifactManifest):
        raise ConfigError(f"artifact {folder} is a '{artifact.manifest.model_kind}' model, not a Guardian")
    return artifact


@dataclass(frozen=True)
class RegimeReading:
    """What the Guardian says about one bar."""

    regime: int  # after persistence: the one to act on
    raw_regime: int  # nearest centroid of this bar alone
    probabilities: np.ndarray  # (K,)
    risk_scale: float  # multiplier on new risk for `regime`, in [0, 1]


class GuardianOnline:
    """The Guardian for one live or replayed bar stream: raw feature window -> RegimeReading.

    onnxruntime (the shared `OnnxRunner`, scaler from the manifest) gives the probabilities; the
    manifest's persistence rule and risk scales give the regime to act on. Call `reset()` at a gap.
    """

    def __init__(self, artifact: Artifact, threads: int = 1) -> None:
        from qa_engine.inference.runner import OnnxRunner

        section = getattr(artifact.manifest, "guardian", None)
        if section is None:
            raise ValueError(
                f"artifact {artifact.folder} is not a Guardian (model_kind {artifact.manifest.model_kind})"
            )
        self.regimes = section.regime_model()
        self.runner = OnnxRunner(artifact, threads=threads)
        self.tracker = RegimeTracker(self.regimes.config)

    def reset(self) -> None:
        self.tracker.reset()

    def update(self, window: np.ndarray) -> RegimeReading:
        """window (T, F): raw features of the last T bars, oldest first, in manifest order."""
        probabilities = self.runner.predict(window).astype(np.float64)
        regime = self.tracker.update(probabilities)
        return RegimeReading(
            regime, int(np.argmax(probabilities)), probabilities, float(self.regimes.risk_scale[regime])
        )
