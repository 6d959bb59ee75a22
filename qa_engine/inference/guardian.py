"""The Guardian at trading time (onnxruntime + numpy, never torch): raw feature window -> regime.

`load_guardian_artifact(folder)` then `GuardianOnline(artifact).update(raw_window) -> RegimeReading(
regime, raw_regime, probabilities, risk_scale)`; the persistence rule and risk scales come from the
manifest's `guardian` section (`qa_engine.contract.guardian`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa_engine.contract.guardian import GuardianArtifactManifest
from qa_engine.contract.guardian import RegimeTracker
from qa_engine.features.spec import FeatureSet
from qa_engine.inference.artifact import Artifact


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
