"""The baseline classifiers' contract (torch-free: pydantic, numpy): the artifact manifest and the ensemble.

The shared `ArtifactManifest` with model_kind "baseline" and the kind's own `baseline` section,
registered in `qa_engine.contract.manifest.MANIFEST_TYPES` (so `load_artifact` reads these folders);
and the ensemble of the members' class probabilities with its agreement flag (default weights 0.6
xgboost + 0.4 lstm), which training's evaluation and trading (`qa_engine.inference.baseline`,
`strategies.ml_signal`) both apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field
from pydantic import model_validator

from qa_engine.contract.labels import CLASS_NAMES
from qa_engine.contract.labels import N_CLASSES
from qa_engine.contract.labels import TradeClass
from qa_engine.contract.manifest import ArtifactManifest
from qa_engine.contract.manifest import _Record
from qa_engine.contract.manifest import read_manifest_json
from qa_engine.contract.manifest import validate_manifest
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError

DEFAULT_ENSEMBLE_WEIGHTS: dict[str, float] = {"xgboost": 0.6, "lstm": 0.4}
BaselineFamily = Literal["xgboost", "lstm", "mlp"]
LABEL_DEFINITION = (
    "r = (close[t+H] / close[t] - 1) * 1e4 bps; BUY if r > threshold_bps, SELL if r < -threshold_bps, "
    "else HOLD"
)


class BaselineSection(_Record):
    """A SELL/HOLD/BUY classifier: output `probabilities` (batch, 3) in `classes` order; the trading
    signal is the argmax, position = class index - 1 (SELL -1, HOLD 0, BUY +1)."""

    family: BaselineFamily
    classes: list[str] = Field(default_factory=lambda: list(CLASS_NAMES))
    label_definition: str = LABEL_DEFINITION
    label_horizon_bars: int = Field(ge=1, description="H: the label compares close[t+H] with close[t]")
    threshold_bps: float = Field(gt=0)
    class_weights: list[float] = Field(description="loss weights per class, from the training split")
    train_class_balance: dict[str, float] = Field(description="class shares of the training labels")
    ensemble_weight: float | None = Field(
        None, description="default weight in the XGB+LSTM ensemble, if a member"
    )
    test_metrics: dict[str, float] = Field(
        default_factory=dict,
        description="out-of-sample metrics of this fold's test split (never used to choose)",
    )

    @model_validator(mode="after")
    def _check(self) -> BaselineSection:
        if self.classes != list(CLASS_NAMES):
            raise ValueError(f"classes must be {list(CLASS_NAMES)}, got {self.classes}")
        if len(self.class_weights) != len(CLASS_NAMES) or not all(w > 0 for w in self.class_weights):
            raise ValueError(
                f"class_weights needs {len(CLASS_NAMES)} positive values, got {self.class_weights}"
            )
        return self


class BaselineArtifactManifest(ArtifactManifest):
    """The shared manifest with model_kind 'baseline' and its section."""

    model_kind: Literal["baseline"] = "baseline"  # type: ignore[assignment]
    baseline: BaselineSection

    @model_validator(mode="after")
    def _consistent(self) -> BaselineArtifactManifest:
        if self.oracle is not None:
            raise ValueError("a baseline manifest has no oracle section")
        if self.baseline.label_horizon_bars != self.window.horizon_bars:
            raise ValueError(
                f"baseline.label_horizon_bars {self.baseline.label_horizon_bars} differs from "
                f"window.horizon_bars {self.window.horizon_bars}"
            )
        return self


def read_baseline_manifest(folder: Path) -> BaselineArtifactManifest:
    """The manifest of a baseline artifact folder; missing, unreadable or invalid -> ConfigError."""
    path, raw = read_manifest_json(folder)
    return validate_manifest(BaselineArtifactManifest, raw, path, "baseline manifest")


# ---- the ensemble -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnsembleOutput:
    """Blended probabilities (B, 3), their argmax (B,), and whether every member's argmax agreed (B,)."""

    probabilities: np.ndarray
    classes: np.ndarray
    agreement: np.ndarray


def _check_probabilities(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != N_CLASSES:
        raise DataError(f"{name}: expected probabilities of shape (batch, {N_CLASSES}), got {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise DataError(f"{name}: probabilities must be finite and >= 0")
    return values


def ensemble_probabilities(
    members: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None
) -> EnsembleOutput:
    """sum_m w_m p_m with weights normalised to 1 (default 0.6 xgboost + 0.4 lstm); `agreement` is True
    where every member's argmax is the same class. Members and weights must name the same models."""
    weights = dict(DEFAULT_ENSEMBLE_WEIGHTS if weights is None else weights)
    if set(weights) != set(members):
        raise ConfigError(f"ensemble weights name {sorted(weights)} but the members are {sorted(members)}")
    if any(not w > 0 for w in weights.values()):
        raise ConfigError(f"ensemble weights must be > 0, got {weights}")
    total = sum(weights.values())
    arrays = {name: _check_probabilities(name, values) for name, values in members.items()}
    shapes = {values.shape for values in arrays.values()}
    if len(shapes) != 1:
        raise DataError(f"ensemble members have different shapes {sorted(shapes)}")
    blended = sum(arrays[name] * (weights[name] / total) for name in sorted(arrays))
    argmaxes = np.stack([np.argmax(arrays[name], axis=1) for name in sorted(arrays)])  # (M, B)
    agreement = np.all(argmaxes == argmaxes[0], axis=0)
    return EnsembleOutput(np.asarray(blended), np.argmax(blended, axis=1).astype(np.int64), agreement)


def agreement_classes(output: EnsembleOutput) -> np.ndarray:
    """The ensemble's class where the members agree, HOLD where they do not (the 'conservative' mode)."""
    return np.where(output.agreement, output.classes, int(TradeClass.HOLD)).astype(np.int64)
