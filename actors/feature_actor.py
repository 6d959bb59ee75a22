"""FeatureActor: streaming features of each bar, published as FeatureVector on the message bus.

The same streaming engine as `qa features build` computes in batch (qa_engine.features), so a
model sees in live trading exactly the inputs it was trained on. During warm-up the vector is
published with `warm=False` and NaN values; consumers wait for `warm`.

Which features: `feature_set` names a registered set; `artifact` (a model folder) computes instead
the exact fitted set that model was trained on (FFD order, fallbacks), after checking that the
registered feature code is still the one it was fitted from. Several FeatureActors may run side by
side (one per fitted set); every vector carries its set's hash and consumers take only theirs.
"""

from __future__ import annotations

from pathlib import Path

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import DataType
from nautilus_trader.model.identifiers import InstrumentId

from qa_engine.features.sets import get_feature_set
from qa_engine.features.spec import FeatureSet
from qa_engine.features.streaming import StreamingFeatureEngine
from qa_engine.inference.artifact import load_artifact
from qa_engine.lifecycle import stop_after_start
from qa_engine.signals import FeatureVector

NANOS_PER_UNIT = {"MINUTE": 60_000_000_000, "HOUR": 3_600_000_000_000, "DAY": 86_400_000_000_000}


class FeatureActorConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    feature_set: str = "default"
    artifact: str | None = None  # a model folder: compute that model's fitted feature set instead
    keep_history: bool = False  # keep every published vector in memory (tests, research)


def bar_interval_ns(bar_type: BarType) -> int:
    spec = bar_type.spec  # e.g. 5-MINUTE-LAST
    return spec.step * NANOS_PER_UNIT[str(spec).split("-")[1]]


class FeatureActor(Actor):
    def __init__(self, config: FeatureActorConfig) -> None:
        super().__init__(config)
        self.engine: StreamingFeatureEngine | None = None
        self.feature_set_hash = ""
        self.history: list[FeatureVector] = []
        self.config_errors: list[str] = []  # the backtest runner fails with these (ConfigError)
        self.data_type = DataType(FeatureVector, metadata={"instrument_id": config.instrument_id.value})

    def on_start(self) -> None:
        try:
            feature_set = self.resolve_feature_set()
            self.engine = StreamingFeatureEngine(feature_set, bar_interval_ns(self.config.bar_type))
        except Exception as exc:
            source = self.config.artifact or self.config.feature_set
            message = f"FeatureActor ({self.id}): the feature set of '{source}' cannot stream: {exc}"
            self.config_errors.append(message)
            self.log.error(message)
            stop_after_start(self, "features")
            return
        self.feature_set_hash = feature_set.hash
        self._instrument_id = self.config.instrument_id
        self._keep_history = self.config.keep_history
        self.subscribe_bars(self.config.bar_type)

    def resolve_feature_set(self) -> FeatureSet:
        if self.config.artifact is None:
            return get_feature_set(self.config.feature_set)
        artifact = load_artifact(Path(self.config.artifact))
        artifact.check_registered(get_feature_set(artifact.manifest.feature_set.name))
        return artifact.feature_set()

    def on_bar(self, bar: Bar) -> None:
        engine = self.engine
        ts_event = bar.ts_event
        engine.advance(
            ts_event,
            bar.open.as_double(),
            bar.high.as_double(),
            bar.low.as_double(),
            bar.close.as_double(),
            bar.volume.as_double(),
        )
        vector = FeatureVector(
            ts_event=ts_event,
            ts_init=bar.ts_init,
            instrument_id=self._instrument_id,
            feature_set_hash=self.feature_set_hash,
            values_f8=engine.values_f8,
            warm=engine.warm,
        )
        self.publish_data(self.data_type, vector)
        if self._keep_history:
            self.history.append(vector)

    def on_stop(self) -> None:
        """Nothing to release: the engine lives in memory."""
