"""The Guardian's contract: its manifest section and the online regime rules (numpy, pydantic; torch-free).

`GuardianSection` / `GuardianArtifactManifest` are what a guardian artifact's manifest.json holds
besides the shared part; `RegimeConfig` (the rules), `RegimeModel` (ordered centroids, softmax
temperature, risk scales) and `RegimeTracker` (the persistence filter) are what training
(`qa_engine.models.guardian.regimes.fit_regimes`) writes into it and what trading
(`qa_engine.inference.guardian.GuardianOnline`) reads back. The rules themselves (labels ordered by
volatility, soft assignment, risk scales, persistence) are described in
`qa_engine.models.guardian.regimes`.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from typing import Any
from typing import Literal

import numpy as np
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator

from qa_engine.contract.manifest import ArtifactManifest


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
    `qa_engine.contract.manifest.MANIFEST_TYPES`: `read_manifest` and `load_artifact` read it."""

    model_kind: Literal["guardian"] = "guardian"  # type: ignore[assignment]
    guardian: GuardianSection

    @model_validator(mode="after")
    def _consistent(self) -> GuardianArtifactManifest:
        if self.oracle is not None:
            raise ValueError("a guardian manifest has no oracle section")
        return self
