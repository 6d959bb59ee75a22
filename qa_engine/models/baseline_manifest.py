"""The manifest of a baseline classifier artifact (torch-free, pydantic only).

The shared `ArtifactManifest` with model_kind "baseline" and the kind's own `baseline` section,
registered in `qa_engine.models.manifest.MANIFEST_TYPES` (so `load_artifact` reads these folders).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic import ValidationError
from pydantic import model_validator

from qa_engine.errors import ConfigError
from qa_engine.models.labels import CLASS_NAMES
from qa_engine.models.manifest import MANIFEST_FILE
from qa_engine.models.manifest import ArtifactManifest
from qa_engine.models.manifest import _Record

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
    path = Path(folder) / MANIFEST_FILE
    if not path.parent.is_dir():
        raise ConfigError(
            f"{folder}: no such artifact folder (an artifact is a folder with "
            f"{MANIFEST_FILE} and its model file)"
        )
    if not path.is_file():
        raise ConfigError(f"{folder} is not a model artifact: {MANIFEST_FILE} is missing")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    try:
        return BaselineArtifactManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}"
            for item in exc.errors()
        )
        raise ConfigError(f"{path}: invalid baseline manifest ({problems})") from None
