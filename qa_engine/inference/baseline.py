"""Run the baseline classifiers (XGBoost, LSTM, MLP artifacts) and their ensemble with onnxruntime only.

Every baseline artifact is `model.onnx` + `manifest.json` with model_kind 'baseline' (see
`qa_engine.contract.baseline`): input `features` (batch, E, F) of raw features scaled by the
manifest's scaler (E = 20 for LSTM/MLP, 1 for XGBoost: the features at t), output `probabilities`
(batch, 3) in class order SELL, HOLD, BUY. XGBoost ships as ONNX too (onnxmltools, ai.onnx.ml
TreeEnsembleClassifier), so trading needs neither torch nor xgboost.

    xgb = BaselineClassifier(load_baseline_artifact(Path("artifacts/baselines/models/xgboost"), feature_set))
    lstm = BaselineClassifier(load_baseline_artifact(Path("artifacts/baselines/models/lstm"), feature_set))
    signal = BaselineEnsemble({"xgboost": xgb, "lstm": lstm}).predict(window)  # window: (>= 20, F) raw
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa_engine.contract.baseline import DEFAULT_ENSEMBLE_WEIGHTS
from qa_engine.contract.baseline import BaselineArtifactManifest
from qa_engine.contract.baseline import ensemble_probabilities
from qa_engine.contract.baseline import read_baseline_manifest
from qa_engine.contract.labels import CLASS_NAMES
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.features.spec import FeatureSet
from qa_engine.inference.artifact import Artifact
from qa_engine.inference.artifact import _check_model_file
from qa_engine.inference.artifact import check_feature_set
from qa_engine.inference.runner import OnnxRunner


def load_baseline_artifact(
    folder: Path,
    expected_feature_set: FeatureSet | None = None,
    interval: str | None = None,
) -> Artifact:
    """Read and check a baseline artifact folder: manifest schema, model file hash, input/output shapes,
    and (if given) the feature set the caller computes and the bar interval it feeds. A mismatch is a
    ConfigError naming every difference (as `qa_engine.inference.artifact.load_artifact`)."""
    folder = Path(folder)
    artifact = Artifact(folder, read_baseline_manifest(folder))
    where = f"baseline artifact {folder}"
    _check_model_file(artifact)
    if expected_feature_set is not None:
        check_feature_set(artifact.manifest, expected_feature_set, where)
    if interval is not None and interval != artifact.manifest.window.interval:
        raise ConfigError(
            f"{where}: refusing to load: the model was trained on {artifact.manifest.window.interval} bars, "
            f"the feed provides {interval} bars"
        )
    return artifact


class BaselineClassifier:
    """One baseline artifact: `probabilities(window)` for the most recent bars of a raw feature window."""

    def __init__(self, artifact: Artifact, threads: int = 1) -> None:
        manifest = artifact.manifest
        if not isinstance(manifest, BaselineArtifactManifest):
            raise ConfigError(
                f"{artifact.folder}: not a baseline artifact (model_kind '{manifest.model_kind}')"
            )
        self.manifest = manifest
        self.family = manifest.baseline.family
        self.runner = OnnxRunner(artifact, threads=threads)
        self.window_bars = manifest.window.encoder_bars

    def probabilities_batch(self, windows: np.ndarray) -> np.ndarray:
        """(B, >= E, F) raw features, oldest bar first -> (B, 3) probabilities (the last E bars are used)."""
        if windows.ndim != 3 or windows.shape[1] < self.window_bars:
            raise DataError(
                f"{self.family}: need windows (batch, >= {self.window_bars}, F), got {windows.shape}"
            )
        return self.runner.predict_batch(windows[:, -self.window_bars :, :]).astype(np.float64)

    def probabilities(self, window: np.ndarray) -> np.ndarray:
        """(>= E, F) raw features -> (3,) probabilities SELL, HOLD, BUY."""
        return self.probabilities_batch(window[None])[0]


@dataclass(frozen=True)
class BaselineSignal:
    probabilities: np.ndarray  # (3,) blended
    signal: str  # SELL / HOLD / BUY
    position: int  # -1 / 0 / +1
    confidence: float  # blended probability of the chosen class
    agreement: bool  # every member chose the same class
    members: dict[str, np.ndarray]


class BaselineEnsemble:
    """Weighted probabilities of several baseline classifiers (default 0.6 XGBoost + 0.4 LSTM) with the
    agreement flag. All members must come from the same fold (one feature set, one label definition)."""

    def __init__(
        self, members: dict[str, BaselineClassifier], weights: dict[str, float] | None = None
    ) -> None:
        self.members = members
        self.weights = dict(DEFAULT_ENSEMBLE_WEIGHTS if weights is None else weights)
        hashes = {m.manifest.feature_set.hash for m in members.values()}
        labels = {
            (m.manifest.baseline.label_horizon_bars, m.manifest.baseline.threshold_bps)
            for m in members.values()
        }
        if len(hashes) != 1 or len(labels) != 1:
            raise ConfigError(
                f"ensemble members disagree on the feature set ({len(hashes)} hashes) or the label "
                f"definition {sorted(labels)}; train them in one run"
            )
        self.window_bars = max(m.window_bars for m in members.values())

    def predict(self, window: np.ndarray) -> BaselineSignal:
        """(>= window_bars, F) raw features, oldest first -> the blended signal."""
        members = {name: member.probabilities(window) for name, member in self.members.items()}
        blend = ensemble_probabilities({k: v[None] for k, v in members.items()}, self.weights)
        chosen = int(blend.classes[0])
        return BaselineSignal(
            probabilities=blend.probabilities[0],
            signal=CLASS_NAMES[chosen],
            position=chosen - 1,
            confidence=float(blend.probabilities[0, chosen]),
            agreement=bool(blend.agreement[0]),
            members=members,
        )
