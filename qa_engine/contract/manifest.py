"""The artifact manifest: what a trained model needs from its inputs and what it was trained on.

An artifact is a folder: `model.onnx` + `manifest.json`. This module is torch-free (pydantic only):
training writes the manifest, `qa_engine.inference` reads and checks it, and every model kind uses
the same schema. The common part says what goes in and out (feature set with hash and canonical
specs, feature order, window, scaler, tensor names and shapes) and where the model came from
(training data range and hash, walk-forward folds, code version, configs, validation metrics); a
section named after the model kind (`oracle`, `guardian`, `baseline`, ...) holds what only that kind
has. To add a kind: a `<Kind>Section` model and a subclass of `ArtifactManifest` that narrows
`model_kind` to the kind, adds the section field and re-states `_consistent` (see
`qa_engine.contract.guardian.GuardianArtifactManifest`), in a module of `qa_engine.contract`; its
"module:Class" in `MANIFEST_TYPES`; and, if its outputs need scaling, an entry in
`qa_engine.inference.runner.OUTPUT_TRANSFORMS`.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError
from pydantic import model_validator

from qa_engine.errors import ConfigError

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
SCHEMA_VERSION = 1

# Every kind the repository trains. `ArtifactManifest` itself carries the `oracle` section; the other
# kinds are subclasses that narrow `model_kind` and add their section (see MANIFEST_TYPES below), so
# `read_manifest` / `qa_engine.inference.artifact.load_artifact` read all of them.
ModelKind = Literal["oracle", "guardian", "strategist", "baseline"]
REPO_ROOT = Path(__file__).resolve().parents[2]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureSetRecord(_Record):
    """The exact feature set the model was trained on (resolved for the data's inputs, FFD fitted)."""

    name: str
    version: int
    hash: str = Field(description="sha256 of the canonical specs of the fitted, resolved set")
    declared_hash: str = Field(
        description="hash of the registered set before fitting (what the code declares)"
    )
    names: list[str] = Field(description="feature names in model-input order")
    canonical: dict[str, Any] = Field(description="the set's canonical JSON (what `hash` covers)")
    warmup_bars: int = Field(ge=1)


class WindowRecord(_Record):
    interval: str = Field(description="bar interval, e.g. 5m")
    encoder_bars: int = Field(ge=1, description="bars of features per input window")
    horizon_bars: int = Field(ge=0, description="steps forecast ahead (0 for models without a horizon)")


class ScalerRecord(_Record):
    """x_scaled = clip((x - mean) / std, -clip, clip), per feature in `FeatureSetRecord.names` order."""

    method: Literal["standard"] = "standard"
    mean: list[float]
    std: list[float]
    clip: float = Field(gt=0)
    fitted_on: str = Field(
        description="the rows the statistics come from, e.g. 'train split of fold 2025-10'"
    )


class TensorRecord(_Record):
    """An ONNX input or output: name, element type, shape ('batch' marks the dynamic axis)."""

    name: str
    dtype: Literal["float32", "float64", "int64"]
    shape: list[int | str]


class DataRecord(_Record):
    """The bars behind the training split (warm-up history included)."""

    sources: list[str] = Field(description="one per symbol: 'SYMBOL=path' or 'SYMBOL=catalog:instrument'")
    first_bar_close: str
    last_bar_close: str
    rows: int = Field(ge=1)
    sha256: str = Field(description="qa_engine.models.data.bars_sha256 per symbol, hashed together")


class FoldRecord(_Record):
    name: str
    train_start: str
    validation_start: str
    test_start: str
    test_end: str
    embargo_bars: int = Field(ge=0)
    windows: dict[str, int] = Field(description="windows per split (train, validation, test)")


class CodeRecord(_Record):
    git_commit: str | None
    git_dirty: bool | None
    package_version: str
    torch_version: str | None = None
    onnx_opset: int


class OracleSection(_Record):
    """Quantile forecasts of forward log returns: output (batch, H, Q) in scaled units, times
    `target_scale[k]` gives ln(close[t+k+1] / close[t]) at quantile `quantiles[q]`."""

    target: Literal["log_return_close"] = "log_return_close"
    quantiles: list[float] = Field(min_length=1)
    target_scale: list[float] = Field(min_length=1, description="per horizon step (H values)")

    @model_validator(mode="after")
    def _check(self) -> OracleSection:
        if self.quantiles != sorted(set(self.quantiles)) or not all(0 < q < 1 for q in self.quantiles):
            raise ValueError(f"quantiles must be strictly increasing in (0, 1), got {self.quantiles}")
        if not all(scale > 0 for scale in self.target_scale):
            raise ValueError("target_scale values must be > 0")
        return self


class ArtifactManifest(_Record):
    schema_version: Literal[1] = 1
    model_kind: ModelKind
    model_name: str = Field(description="e.g. temporal_fusion_transformer")
    created_utc: str
    model_file: str = MODEL_FILE
    model_sha256: str = Field(description="sha256 of model_file")
    feature_set: FeatureSetRecord
    window: WindowRecord
    scaler: ScalerRecord
    inputs: list[TensorRecord] = Field(min_length=1)
    outputs: list[TensorRecord] = Field(min_length=1)
    training_data: DataRecord
    folds: list[FoldRecord] = Field(min_length=1, description="every walk-forward fold of the run")
    trained_on_fold: str = Field(description="the fold whose model this artifact is")
    code: CodeRecord
    model_config_values: dict[str, Any] = Field(description="the model's config dataclass, as a dict")
    trainer_config: dict[str, Any]
    validation_metrics: dict[str, float]
    oracle: OracleSection | None = None

    @model_validator(mode="after")
    def _scaler_and_folds(self) -> ArtifactManifest:
        """Checks every kind shares (subclasses override `_consistent` for their sections only)."""
        count = len(self.feature_set.names)
        if len(self.scaler.mean) != count or len(self.scaler.std) != count:
            raise ValueError(
                f"scaler has {len(self.scaler.mean)} means / {len(self.scaler.std)} stds for {count} features"
            )
        if self.trained_on_fold not in {fold.name for fold in self.folds}:
            raise ValueError(f"trained_on_fold '{self.trained_on_fold}' is not one of the folds")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> ArtifactManifest:
        sections = {"oracle": self.oracle}
        if sections.get(self.model_kind) is None:
            raise ValueError(f"model_kind '{self.model_kind}' needs its '{self.model_kind}' section")
        extra = [
            name for name, section in sections.items() if section is not None and name != self.model_kind
        ]
        if extra:
            raise ValueError(f"sections {extra} do not belong to model_kind '{self.model_kind}'")
        if self.oracle is not None and len(self.oracle.target_scale) != self.window.horizon_bars:
            raise ValueError(
                f"oracle.target_scale has {len(self.oracle.target_scale)} values for horizon "
                f"{self.window.horizon_bars}"
            )
        return self


def write_manifest(manifest: ArtifactManifest, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    return path


# Model kind -> "module:Class" of its manifest model: ArtifactManifest itself, or a subclass that narrows
# `model_kind` and adds the kind's section (each in its module of qa_engine.contract).
# Resolved on use, so reading one kind imports nothing of the others. Every module listed here must be
# torch-free: qa_engine.inference reads manifests through this table.
MANIFEST_TYPES: dict[str, str] = {
    "oracle": "qa_engine.contract.manifest:ArtifactManifest",
    "guardian": "qa_engine.contract.guardian:GuardianArtifactManifest",
    "baseline": "qa_engine.contract.baseline:BaselineArtifactManifest",
    "strategist": "qa_engine.contract.strategist:StrategistArtifactManifest",
}


def manifest_type(kind: str) -> type[ArtifactManifest]:
    """The manifest model of a model kind; an unknown kind lists the known ones."""
    import importlib

    if kind not in MANIFEST_TYPES:
        raise ConfigError(f"unknown model_kind '{kind}'; known kinds: {', '.join(sorted(MANIFEST_TYPES))}")
    module_name, _, class_name = MANIFEST_TYPES[kind].partition(":")
    model = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(model, type) and issubclass(model, ArtifactManifest)):
        raise TypeError(f"{MANIFEST_TYPES[kind]} is not an ArtifactManifest model")
    return model


def read_manifest_json(folder: Path) -> tuple[Path, Any]:
    """(path, parsed JSON) of an artifact folder's manifest, not yet validated: the one place that says
    why a folder is not an artifact (no folder, no manifest, not JSON), as a ConfigError."""
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
    return path, raw


def validate_manifest[M: ArtifactManifest](model: type[M], raw: Any, path: Path, what: str) -> M:
    """`raw` validated by `model`; its problems, one `location: message` each, in one ConfigError that
    names the file and `what` it should have been ("manifest", "baseline manifest")."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}"
            for item in exc.errors()
        )
        raise ConfigError(f"{path}: invalid {what} ({problems})") from None


def read_manifest(folder: Path) -> ArtifactManifest:
    """The manifest of an artifact folder, parsed by its kind's model (`MANIFEST_TYPES`); a missing,
    unreadable or invalid one is a ConfigError."""
    path, raw = read_manifest_json(folder)
    kind = raw.get("model_kind") if isinstance(raw, dict) else None
    model = manifest_type(kind) if isinstance(kind, str) else ArtifactManifest
    return validate_manifest(model, raw, path, "manifest")


def package_version() -> str:
    """The installed quantum-alpha distribution's version, or "unknown" when it is not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    try:
        return version("quantum-alpha")
    except PackageNotFoundError:
        return "unknown"


def code_version() -> tuple[str | None, bool | None]:
    """(git commit, dirty) of the repository this code runs from, or (None, None) outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def utc_now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
