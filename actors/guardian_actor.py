"""GuardianActor: the contrastive-VAE market regime (ONNX) of each bar, published as Regime.

Consumes the FeatureVectors of the artifact's fitted feature set (run a FeatureActor with
`artifact=<the same folder>` beside it; the Guardian's set is the registered "guardian" set), or,
with `features_from = "artifacts/strategist"`, selects its 20 features from the vectors of the
Strategist's fitted default set (one FeatureActor for both; `model_actor` checks they are the same
features) and, once it holds `encoder_bars` consecutive warm vectors, publishes per bar a Regime on
DataType(Regime, metadata={"instrument_id": <id>}): the persistence-filtered regime (0 = calmest),
the regime probabilities of this bar and the risk scale of the reported regime, stamped with the
vector's ts_event / ts_init. The persistence filter restarts (cold start) with the first full window
after a gap, as `GuardianOnline.reset()` prescribes. Window, gap and error handling: `model_actor`.
"""

from __future__ import annotations

import numpy as np

from actors.model_actor import ModelActor
from actors.model_actor import ModelActorConfig
from qa_engine.inference.artifact import Artifact
from qa_engine.inference.guardian import GuardianOnline
from qa_engine.inference.runner import OnnxRunner
from qa_engine.signals import FeatureVector
from qa_engine.signals import Regime
from qa_engine.signals import pack


class GuardianActorConfig(ModelActorConfig, frozen=True):
    artifact: str = "artifacts/guardian"  # model folder: model.onnx + manifest.json


class GuardianActor(ModelActor):
    role = "Guardian"
    model_kind = "guardian"
    output_class = Regime

    def __init__(self, config: GuardianActorConfig) -> None:
        super().__init__(config)
        self.guardian: GuardianOnline | None = None

    @property
    def regimes_published(self) -> int:
        return self.published

    def build(self, artifact: Artifact) -> OnnxRunner:
        self.guardian = GuardianOnline(artifact, threads=1)
        return self.guardian.runner

    def evaluate(self, scaled: np.ndarray, vector: FeatureVector) -> Regime:
        guardian = self.guardian
        if self.window.windows_in_segment == 1:  # first window after a gap (or the first ever)
            guardian.reset()
        # GuardianOnline.update on the already-scaled window: its runner's output, then its tracker
        runner = guardian.runner
        probabilities = runner.postprocess(runner.run_scaled(scaled))[0].astype(np.float64)
        regime = guardian.tracker.update(probabilities)
        return Regime(
            ts_event=vector.ts_event,
            ts_init=vector.ts_init,
            instrument_id=self.config.instrument_id,
            model_id=self.model_id,
            regime_id=regime,
            probabilities_f8=pack(probabilities),
            risk_scale=float(guardian.regimes.risk_scale[regime]),
        )
