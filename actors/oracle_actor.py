"""OracleActor: the TFT quantile forecast (ONNX) of each bar, published as Forecast on the message bus.

Consumes the FeatureVectors of the artifact's fitted feature set (run a FeatureActor with
`artifact=<the same folder>` beside it, or set `features_from` to the folder of a model whose fitted
set holds this one's features and whose FeatureActor runs) and, once it holds `encoder_bars`
consecutive warm vectors, publishes per bar a Forecast: (horizon_bars, quantiles) forward log
returns ln(close[t+k] / close[t]) in natural units, stamped with the vector's ts_event / ts_init, on
DataType(Forecast, metadata={"instrument_id": <id>}). Window, gap and error handling: `model_actor`.
"""

from __future__ import annotations

import numpy as np

from actors.model_actor import ModelActor
from actors.model_actor import ModelActorConfig
from qa_engine.inference.artifact import Artifact
from qa_engine.inference.runner import OnnxRunner
from qa_engine.signals import FeatureVector
from qa_engine.signals import Forecast
from qa_engine.signals import pack


class OracleActorConfig(ModelActorConfig, frozen=True):
    artifact: str = "artifacts/oracle"  # model folder: model.onnx + manifest.json


class OracleActor(ModelActor):
    role = "Oracle"
    model_kind = "oracle"
    output_class = Forecast

    def __init__(self, config: OracleActorConfig) -> None:
        super().__init__(config)
        self.runner: OnnxRunner | None = None
        self.quantiles_f8 = b""
        self.horizon_bars = 0

    @property
    def forecasts_published(self) -> int:
        return self.published

    def build(self, artifact: Artifact) -> OnnxRunner:
        self.runner = OnnxRunner(artifact, threads=1)
        oracle = artifact.manifest.oracle
        self.quantiles_f8 = pack(np.asarray(oracle.quantiles, dtype=np.float64))
        self.horizon_bars = artifact.manifest.window.horizon_bars
        return self.runner

    def evaluate(self, scaled: np.ndarray, vector: FeatureVector) -> Forecast:
        values = self.runner.postprocess(self.runner.run_scaled(scaled))[0]  # (H, Q) log returns
        return Forecast(
            ts_event=vector.ts_event,
            ts_init=vector.ts_init,
            instrument_id=self.config.instrument_id,
            model_id=self.model_id,
            horizon_bars=self.horizon_bars,
            quantiles_f8=self.quantiles_f8,
            values_f8=pack(values),
        )
