"""ML signal: trade the baseline classifiers (XGBoost, LSTM, MLP: SELL / HOLD / BUY on the N-bar forward
return), one model or a weighted ensemble, on the FeatureVectors a FeatureActor streams.

Run it beside a FeatureActor that computes the models' fitted feature set (any member's folder):

    [[actors]]
    name = "features"
    params = { instrument_id = "...", bar_type = "...", artifact = "artifacts/baselines/models/xgboost" }

Each bar, once both the bar and the FeatureVector with the same close time have arrived (whichever
comes first; the message bus gives no order between the actor and the strategy), the strategy keeps the
last E warm feature rows (E = the largest window of the members; each member reads its own last E_m
rows) and runs the members with onnxruntime (`qa_engine.inference.baseline`, no torch):

- the class is the argmax of the probabilities, blended by `weights` for an ensemble (default 0.6
  XGBoost + 0.4 LSTM, `qa_engine.models.baselines.signals`); with `require_agreement` the ensemble acts
  on HOLD unless every member chose the same class;
- BUY -> target +1, SELL -> -1; HOLD -> flat (`hold_policy = "flat_on_hold"`) or keep the position
  (`"hold_previous"`); STRONG_BUY / STRONG_SELL when the chosen probability is >= `strong_probability`
  (same size, the signal is recorded); confidence = the chosen class's probability in percent;
- the reasoning names every member's class and probability, the agreement and the blended
  probabilities, e.g. "xgboost BUY 0.52, lstm BUY 0.47 agree; p(SELL/HOLD/BUY)=0.21/0.29/0.50".

Refused in on_start, and the backtest fails with a ConfigError naming every problem: a folder that is
not a baseline artifact, members fitted on different feature sets, trained on different bar intervals
or label definitions, two members of one family, or a bar type of another interval than the models'.
Vectors of other feature sets (other FeatureActors) are ignored; if none of this strategy's set arrives
the stop log says so.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from nautilus_trader.config import NonNegativeFloat
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import DataType

from qa_engine.contract.baseline import DEFAULT_ENSEMBLE_WEIGHTS
from qa_engine.contract.labels import CLASS_NAMES
from qa_engine.contract.labels import TradeClass
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.features.io import interval_ns
from qa_engine.inference.baseline import BaselineClassifier
from qa_engine.inference.baseline import BaselineEnsemble
from qa_engine.inference.baseline import BaselineSignal
from qa_engine.inference.baseline import load_baseline_artifact
from qa_engine.lifecycle import stop_after_start
from qa_engine.signals import INFERENCE_TOPIC
from qa_engine.signals import Decision
from qa_engine.signals import FeatureVector
from qa_engine.signals import InferenceTime
from qa_engine.signals import Signal
from qa_engine.signals import hold
from qa_engine.signals import subscribe_bus
from strategies.base import TargetPositionStrategy
from strategies.base import TargetPositionStrategyConfig

BASELINES = "artifacts/baselines/models"
HoldPolicy = Literal["flat_on_hold", "hold_previous"]
EnsembleMode = Literal["single", "ensemble"]


class MLSignalStrategyConfig(TargetPositionStrategyConfig, frozen=True):
    # Baseline artifact folders (relative paths from the working directory, as FeatureActor's).
    models: tuple[str, ...] = (f"{BASELINES}/xgboost", f"{BASELINES}/lstm")
    mode: EnsembleMode = "ensemble"  # "single": exactly one model; "ensemble": two or more
    weights: dict[str, float] | None = None  # by family (xgboost, lstm, mlp); None: 0.6 xgb + 0.4 lstm
    require_agreement: bool = False  # ensemble: HOLD unless every member chose the same class
    hold_policy: HoldPolicy = "flat_on_hold"
    strong_probability: NonNegativeFloat = 0.6  # chosen probability >= it: STRONG_BUY / STRONG_SELL
    keep_history: bool = False  # keep every model decision in memory (tests, research)

    def __post_init__(self) -> None:
        super().__post_init__()
        count = len(self.models)
        if self.mode == "single" and count != 1:
            raise ValueError(f"mode 'single' needs exactly one model, got {count}: {list(self.models)}")
        if self.mode == "ensemble" and count < 2:
            raise ValueError(f"mode 'ensemble' needs two or more models, got {count}: {list(self.models)}")
        if len(set(self.models)) != count:
            raise ValueError(f"models lists a folder twice: {list(self.models)}")
        if self.mode == "single" and (self.require_agreement or self.weights is not None):
            raise ValueError("require_agreement and weights apply to mode 'ensemble' only")
        if not 0.0 < self.strong_probability <= 1.0:
            raise ValueError(f"strong_probability must be in (0, 1], got {self.strong_probability}")


@dataclass(frozen=True)
class MLSignalRecord:
    """One model decision: what the models said and what the strategy acted on."""

    ts_event: int
    predicted_class: int  # argmax of the (blended) probabilities: SELL 0, HOLD 1, BUY 2
    acted_class: int  # after the agreement rule
    signal: BaselineSignal
    decision: Decision


def load_members(
    folders: tuple[str, ...], bar_interval_ns: int, weights: dict[str, float] | None
) -> BaselineEnsemble:
    """The members as one BaselineEnsemble (a single model is an ensemble of one with weight 1). Refuses
    (ConfigError, every problem named) members that cannot be blended or fed by one FeatureActor."""
    members = {Path(folder): load_baseline_artifact(Path(folder)) for folder in folders}
    problems = []
    families = [artifact.manifest.baseline.family for artifact in members.values()]
    if len(set(families)) != len(families):
        problems.append(f"two members of one family {families}; the ensemble names members by family")
    for what, key in (
        ("fitted feature sets", lambda m: f"{m.feature_set.name} {m.feature_set.hash[:12]}..."),
        ("bar intervals", lambda m: m.window.interval),
        (
            "label definitions",
            lambda m: f"{m.baseline.label_horizon_bars} bars / {m.baseline.threshold_bps:g} bps",
        ),
    ):
        values = {str(folder): key(artifact.manifest) for folder, artifact in members.items()}
        if len(set(values.values())) > 1:
            listed = ", ".join(f"{folder}: {value}" for folder, value in values.items())
            problems.append(f"the members differ in {what} ({listed}); use models trained in one run")
    for folder, artifact in members.items():
        if interval_ns(artifact.manifest.window.interval) != bar_interval_ns:
            problems.append(
                f"{folder} was trained on {artifact.manifest.window.interval} bars, the strategy's bar type "
                f"closes every {bar_interval_ns // 1_000_000_000} s"
            )
    if problems:
        raise ConfigError("refusing the models:\n  - " + "\n  - ".join(problems))
    classifiers = {
        artifact.manifest.baseline.family: BaselineClassifier(artifact, threads=1)
        for artifact in members.values()
    }
    if len(classifiers) == 1:
        weights = dict.fromkeys(classifiers, 1.0)
    elif weights is None:
        missing = sorted(set(classifiers) - set(DEFAULT_ENSEMBLE_WEIGHTS))
        if missing:
            raise ConfigError(
                f"no default ensemble weight for {missing} (defaults: {DEFAULT_ENSEMBLE_WEIGHTS}); "
                f"set weights for every member: {sorted(classifiers)}"
            )
        weights = {name: DEFAULT_ENSEMBLE_WEIGHTS[name] for name in classifiers}
    elif set(weights) != set(classifiers):
        raise ConfigError(f"weights name {sorted(weights)} but the members are {sorted(classifiers)}")
    return BaselineEnsemble(classifiers, weights)


def describe(signal: BaselineSignal, ensemble: bool) -> str:
    """'xgboost BUY 0.52, lstm BUY 0.47 agree; p(SELL/HOLD/BUY)=0.21/0.29/0.50'."""
    members = ", ".join(
        f"{name} {CLASS_NAMES[int(np.argmax(p))]} {float(np.max(p)):.2f}"
        for name, p in signal.members.items()
    )
    agreement = (" agree" if signal.agreement else " disagree") if ensemble else ""
    blended = "/".join(f"{p:.2f}" for p in signal.probabilities)
    return f"{members}{agreement}; p({'/'.join(CLASS_NAMES)})={blended}"


def decide_from_signal(
    signal: BaselineSignal,
    require_agreement: bool,
    hold_policy: HoldPolicy,
    strong_probability: float,
    ensemble: bool,
) -> tuple[int, Decision]:
    """(the class acted on, the Decision) for one model output; see the module docstring."""
    reasoning = describe(signal, ensemble)
    acted = int(np.argmax(signal.probabilities))
    if require_agreement and not signal.agreement and acted != TradeClass.HOLD:
        acted = int(TradeClass.HOLD)
        reasoning += " -> HOLD"
    probability = float(signal.probabilities[acted])
    confidence_pct = min(100.0, max(0.0, 100.0 * probability))
    if acted == TradeClass.HOLD:
        target = 0.0 if hold_policy == "flat_on_hold" else None
        return acted, Decision(target, Signal.HOLD, confidence_pct, reasoning)
    strong = probability >= strong_probability
    if acted == TradeClass.BUY:
        return acted, Decision(1.0, Signal.STRONG_BUY if strong else Signal.BUY, confidence_pct, reasoning)
    return acted, Decision(-1.0, Signal.STRONG_SELL if strong else Signal.SELL, confidence_pct, reasoning)


class MLSignalStrategy(TargetPositionStrategy):
    def __init__(self, config: MLSignalStrategyConfig) -> None:
        super().__init__(config)
        self.ensemble: BaselineEnsemble | None = None
        self.feature_set_hash = ""
        self.config_errors: list[str] = []  # the backtest runner fails with these (ConfigError)
        self.history: list[MLSignalRecord] = []
        self._rows: deque[np.ndarray] = deque()
        self._last_row_ts: int | None = None
        self._vector_ts: int | None = None  # close time of the last vector of our feature set
        self._pending_bar: Bar | None = None
        self._vectors_seen = 0
        self._other_hashes: set[str] = set()
        self._bar_interval_ns = int(config.bar_type.spec.timedelta.total_seconds() * 1_000_000_000)

    def on_start(self) -> None:
        try:
            self.ensemble = load_members(self.config.models, self._bar_interval_ns, self.config.weights)
        except (ConfigError, DataError) as exc:
            message = f"MLSignalStrategy ({self.id}): {exc}"
            self.config_errors.append(message)
            self.log.error(message)
            stop_after_start(self, "models")
            return
        first = next(iter(self.ensemble.members.values()))
        self.feature_set_hash = first.manifest.feature_set.hash
        self._rows = deque(maxlen=self.ensemble.window_bars)
        metadata = {"instrument_id": self.config.instrument_id.value}
        subscribe_bus(self, DataType(FeatureVector, metadata=metadata))
        super().on_start()

    def on_data(self, data) -> None:
        if not isinstance(data, FeatureVector):
            return
        if data.feature_set_hash != self.feature_set_hash:
            self._other_hashes.add(data.feature_set_hash)
            return
        self._vectors_seen += 1
        self._append_row(data)
        self._vector_ts = data.ts_event
        self._decide_when_ready()

    def on_bar(self, bar: Bar) -> None:
        self._pending_bar = bar
        self._decide_when_ready()

    def _decide_when_ready(self) -> None:
        """Decide once the bar and our vector of the same close time are both in, whichever came first."""
        bar = self._pending_bar
        if bar is None or bar.ts_event != self._vector_ts:
            return
        self._pending_bar = None
        super().on_bar(bar)

    def _append_row(self, vector: FeatureVector) -> None:
        """The rolling window holds consecutive warm rows only: warm-up, a gap or a non-finite row
        restarts it (the streaming engine restarts its warm-up at gaps, as training split at them)."""
        values = vector.values
        contiguous = (
            self._last_row_ts is not None and vector.ts_event - self._last_row_ts == self._bar_interval_ns
        )
        if not contiguous:
            self._rows.clear()
        self._last_row_ts = vector.ts_event
        if not vector.warm:
            self._rows.clear()
            return
        if not np.all(np.isfinite(values)):
            self.log.warning(f"non-finite features at ts {vector.ts_event}: the window restarts")
            self._rows.clear()
            return
        self._rows.append(values)

    def decide(self, bar: Bar) -> Decision:
        ensemble = self.ensemble
        if len(self._rows) < ensemble.window_bars:
            return hold(f"warming up: {len(self._rows)}/{ensemble.window_bars} warm feature rows")
        started = time.perf_counter()
        signal = ensemble.predict(np.vstack(self._rows))  # (E, F) raw features, oldest first
        elapsed = time.perf_counter() - started
        self.msgbus.publish(topic=INFERENCE_TOPIC, msg=InferenceTime("ml_signal", elapsed))
        acted, decision = decide_from_signal(
            signal,
            self.config.require_agreement,
            self.config.hold_policy,
            self.config.strong_probability,
            ensemble=len(ensemble.members) > 1,
        )
        if self.config.keep_history:
            predicted = int(np.argmax(signal.probabilities))
            self.history.append(MLSignalRecord(bar.ts_event, predicted, acted, signal, decision))
        return decision

    def on_stop(self) -> None:
        super().on_stop()
        if self.ensemble is not None and self._vectors_seen == 0:
            others = ", ".join(sorted(h[:12] + "..." for h in self._other_hashes)) or "none"
            self.log.warning(
                f"no FeatureVector of the models' feature set {self.feature_set_hash[:12]}... arrived "
                f"(other sets seen: {others}); run a 'features' actor with artifact = one of "
                f"{list(self.config.models)}"
            )
