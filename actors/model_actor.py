"""What the model actors (OracleActor, GuardianActor) share: load and check an artifact in `on_start`,
keep a rolling window of the model's feature vectors, run the model once per full window, publish.

Per bar, a model actor receives the FeatureVectors of its instrument (every FeatureActor of that
instrument publishes on the same topic), keeps only those of the artifact's fitted feature set (the
vector's hash), and holds the last `encoder_bars` consecutive warm vectors in a `FeatureWindow`. A gap
in the bars (a step other than the bar interval) or a vector that is not warm (or holds NaN/inf)
breaks the window: the model runs again only once the window has refilled, so a window never spans a
gap. A repeated bar (the same ts_event twice, e.g. two FeatureActors of one set) is ignored.

Misconfiguration is reported, not raised inside a callback: the message goes to `config_errors`
(the backtest runner turns it into one ConfigError, exit code 2) and the log, and the actor stops.
That covers an artifact that cannot be loaded, is of another model kind, was trained on other bars
or does not match the registered feature code; a run in which bars arrive but no vector of the
artifact's set does (no FeatureActor computes it); and vectors of the set that never come one bar
interval apart (the FeatureActor runs on other bars).

`features_from` (a model folder) shares one FeatureActor between models: the actor then takes the
vectors of THAT folder's fitted set and selects its own features from them, by column indices fixed
in `on_start` after checking that every spec of its own fitted set is in the source set with the same
canonical definition (a ConfigError names those that are missing or differ). One streaming engine
then computes each feature once per bar (Trinity: one FeatureActor for the Strategist's set, which
holds the Guardian's 20 features, instead of two). A selected row is "warm" when all its values are
finite: the streaming engine publishes NaN for a feature until its own warm-up is over, so this is
exactly the `warm` flag a FeatureActor of the model's own set would publish.

Each row is scaled (the manifest's scaler, `FeatureScaler.transform`, the function `OnnxRunner`
applies) once, when it enters the window, into a float32 ring beside the raw one, so a bar costs one
row of scaling and the model runs on a contiguous (1, E, F) view without copies.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.core.data import Data
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import DataType
from nautilus_trader.model.identifiers import InstrumentId

from qa_engine.errors import ConfigError
from qa_engine.features.io import interval_ns
from qa_engine.features.sets import get_feature_set
from qa_engine.features.spec import FeatureSet
from qa_engine.inference.artifact import Artifact
from qa_engine.inference.artifact import check_feature_set
from qa_engine.inference.artifact import load_artifact
from qa_engine.inference.runner import OnnxRunner
from qa_engine.inference.scaling import FeatureScaler
from qa_engine.lifecycle import stop_after_start
from qa_engine.signals import INFERENCE_TOPIC
from qa_engine.signals import FeatureVector
from qa_engine.signals import InferenceTime
from qa_engine.signals import subscribe_bus

INTERVAL_UNITS = {"SECOND": "s", "MINUTE": "m", "HOUR": "h", "DAY": "d"}


def bar_interval(bar_type: BarType) -> str:
    """'BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL' -> '5m' (the interval string of manifests)."""
    step, aggregation, _ = str(bar_type.spec).split("-")
    if aggregation not in INTERVAL_UNITS:
        raise ConfigError(
            f"bar type {bar_type} is not time-based ({aggregation}); model artifacts are trained on "
            f"{', '.join(INTERVAL_UNITS)} bars"
        )
    return f"{step}{INTERVAL_UNITS[aggregation]}"


class FeatureWindow:
    """The last `window_bars` consecutive warm feature vectors, oldest first, in one preallocated buffer.

    Hand-written because numpy has no ring buffer that hands out a contiguous window: every row is
    written twice, at `i` and `i + window_bars` of a (2 * window_bars, F) buffer, so the window that
    ends at row `i` is the contiguous view `[i + 1, i + 1 + window_bars)`: two row copies per bar, no
    roll, no list of arrays. The returned view is valid until the next `push`.

    With a `scaler`, each row is also scaled once on entry into a float32 ring laid out the same way;
    `scaled_window()` is then the model input of the last full window, (1, E, F), equal to
    `scaler.transform(window).astype(np.float32)` (the transform is per element).
    """

    def __init__(
        self, window_bars: int, n_features: int, step_ns: int, scaler: FeatureScaler | None = None
    ) -> None:
        if window_bars < 1 or n_features < 1 or step_ns <= 0:
            raise ValueError(
                f"need window_bars, n_features, step_ns > 0, got {window_bars}, {n_features}, {step_ns}"
            )
        self.window_bars = window_bars
        self.n_features = n_features
        self.step_ns = step_ns
        self.buffer = np.zeros((2 * window_bars, n_features), dtype=np.float64)  # (2E, F)
        self.scaler = scaler
        self.scaled = np.zeros((2 * window_bars, n_features), dtype=np.float32) if scaler else None
        self.row64 = np.zeros(n_features, dtype=np.float64)  # one row being scaled, reused
        self.next_row = 0  # where the next vector goes, in [0, window_bars)
        self.count = 0  # consecutive vectors held, at most window_bars
        self.last_ts: int | None = None
        self.windows_in_segment = 0  # full windows since the last break (1: first after a break)
        self.breaks = 0  # gaps, non-warm or non-finite vectors seen while holding vectors

    def reset(self) -> None:
        if self.count:
            self.breaks += 1
        self.count = 0
        self.last_ts = None
        self.windows_in_segment = 0

    def push(self, ts_ns: int, values: np.ndarray, warm: bool) -> np.ndarray | None:
        """Add the vector of the bar closing at ts_ns; the (window_bars, F) window once full, else None.

        A repeated ts_ns (the same bar twice) is ignored; an earlier one, a step other than the
        interval, a vector that is not warm or holds NaN/inf starts the window afresh.
        """
        if self.last_ts is not None and ts_ns == self.last_ts:
            return None
        if not warm or not np.isfinite(values).all():
            self.reset()
            return None
        if self.last_ts is not None and ts_ns - self.last_ts != self.step_ns:
            self.reset()
        row = self.next_row
        self.buffer[row] = values
        self.buffer[row + self.window_bars] = values
        if self.scaler is not None:
            self.scale_row(values, self.scaled[row])
            self.scaled[row + self.window_bars] = self.scaled[row]
        self.next_row = (row + 1) % self.window_bars
        self.count = min(self.count + 1, self.window_bars)
        self.last_ts = ts_ns
        if self.count < self.window_bars:
            return None
        self.windows_in_segment += 1
        return self.buffer[row + 1 : row + 1 + self.window_bars]  # (E, F), oldest first

    def scale_row(self, values: np.ndarray, out: np.ndarray) -> None:
        """`scaler.transform` of one finite row, written as float32 into `out`, without allocating:
        the same float64 operations in the same order ((x - mean) / std, clipped), then the cast that
        `astype(np.float32)` does. Hand-written in place because this runs once per bar and model;
        tests check it bitwise against `FeatureScaler.transform`."""
        scaler, row = self.scaler, self.row64
        np.subtract(values, scaler.mean, out=row)
        np.divide(row, scaler.std, out=row)
        np.maximum(row, -scaler.clip, out=row)  # = np.clip for finite values
        np.minimum(row, scaler.clip, out=row)
        out[:] = row

    def scaled_window(self) -> np.ndarray:
        """The scaled float32 model input (1, E, F) of the window the last `push` returned."""
        start = (self.next_row - 1) % self.window_bars + 1
        return self.scaled[None, start : start + self.window_bars]


class TimedSession:
    """Proxy of an onnxruntime InferenceSession that adds up the wall time of its `run` calls, so a
    benchmark can compare the streamed cost per bar with the bare onnxruntime cost."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.secs = 0.0
        self.calls = 0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.session.run(*args, **kwargs)
        finally:
            self.secs += time.perf_counter() - started
            self.calls += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def load_checked_artifact(folder: Path, model_kind: str, interval: str) -> Artifact:
    """Load `folder` for a model of `model_kind` fed `interval` bars, and refuse (ConfigError) an
    artifact whose fitted feature set does not rebuild to its recorded hash or whose registered
    feature set changed since training. Window and model-file checks are `load_artifact`'s."""
    artifact = load_artifact(folder, interval=interval)
    manifest = artifact.manifest
    if manifest.model_kind != model_kind:
        raise ConfigError(
            f"{folder} holds a '{manifest.model_kind}' model; this actor runs '{model_kind}' models"
        )
    check_feature_set(manifest, artifact.feature_set(), f"artifact {folder}")
    artifact.check_registered(get_feature_set(manifest.feature_set.name))
    return artifact


def source_columns(own: FeatureSet, source: FeatureSet, where: str) -> np.ndarray | None:
    """Indices of `own`'s features in `source`'s vectors (None: the same set, take every column).

    Refuses (ConfigError) unless every spec of `own` is in `source` under the same name with the same
    canonical definition (kind, parameters, inputs, warm-up, version, fallback): only then are the
    source's values the ones the model was trained on."""
    if own.hash == source.hash:
        return None
    positions = {spec.name: index for index, spec in enumerate(source.specs)}
    missing = [spec.name for spec in own.specs if spec.name not in positions]
    different = [
        spec.name
        for spec in own.specs
        if spec.name in positions and spec.canonical() != source.specs[positions[spec.name]].canonical()
    ]
    if missing or different:
        lines = [f"the missing features: {missing}"] if missing else []
        lines += [f"the features computed differently (canonical spec): {different}"] if different else []
        raise ConfigError(
            f"{where}: the feature set '{source.name}' (hash {source.hash[:12]}...) cannot feed the model's "
            f"'{own.name}' (hash {own.hash[:12]}...):\n  - " + "\n  - ".join(lines)
        )
    return np.asarray([positions[spec.name] for spec in own.specs], dtype=np.intp)


class ModelActorConfig(ActorConfig, frozen=True):
    """What every model actor's config holds; a subclass sets `artifact`'s default folder."""

    instrument_id: InstrumentId
    bar_type: BarType
    artifact: str  # model folder: model.onnx + manifest.json
    model_id: str = ""  # "" -> the manifest's model name and model.onnx sha256 prefix
    # A model folder whose fitted feature set a FeatureActor computes (e.g. "artifacts/strategist"):
    # take this model's features from those vectors (every one must be there, defined identically).
    features_from: str | None = None
    keep_history: bool = False  # keep every published message in memory (tests, research)

    def __post_init__(self) -> None:
        if self.bar_type.instrument_id != self.instrument_id:
            raise ValueError(f"bar_type {self.bar_type} is not a bar type of {self.instrument_id}")


class ModelActor(Actor):
    """Base of the actors that run one artifact over the FeatureVectors of one instrument.

    Subclasses set `role`, `model_kind` and `output_class`, and implement `build` (make the model
    from the checked artifact; return its OnnxRunner) and `evaluate` (the scaled model input of one
    full window -> the message to publish). Counters: `published`, `onnx_secs` (inside onnxruntime),
    `handler_secs` (the whole handler for vectors of this model's set), `history` when `keep_history`.
    """

    role = "Model"
    model_kind = ""
    output_class: type[Data] = Data

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        instrument = config.instrument_id.value
        self.input_type = DataType(FeatureVector, metadata={"instrument_id": instrument})
        self.output_type = DataType(self.output_class, metadata={"instrument_id": instrument})
        self.config_errors: list[str] = []  # the backtest runner fails with these (ConfigError)
        self.history: list[Data] = []
        self.artifact: Artifact | None = None
        self.window: FeatureWindow | None = None
        self.session: TimedSession | None = None
        self.feature_set_hash = ""  # of the vectors taken: the model's set, or `features_from`'s
        self.columns: np.ndarray | None = None  # the model's features in those vectors (None: all)
        self.source_set: FeatureSet | None = None  # the set of those vectors
        self.source_folder = Path(config.features_from or config.artifact)
        self.model_id = ""
        self.published = 0
        self.handler_secs = 0.0
        self.bars_seen = 0
        self.vectors_seen = 0  # of this model's feature set
        self.other_hashes: set[str] = set()  # feature sets of other FeatureActors of this instrument
        self.last_vector_ts: int | None = None
        self.steps_on_interval = 0  # vectors of this set that came one bar interval after the previous

    @property
    def onnx_secs(self) -> float:
        return 0.0 if self.session is None else self.session.secs

    def on_start(self) -> None:
        folder = Path(self.config.artifact)
        try:
            interval = bar_interval(self.config.bar_type)
            artifact = load_checked_artifact(folder, self.model_kind, interval)
            runner = self.build(artifact)
            runner.session = self.session = TimedSession(runner.session)  # times every predict
        except Exception as exc:  # a resource resolved in on_start: report, log and stop
            self.refuse(f"{self.role}Actor ({self.id}): cannot use the artifact '{folder}': {exc}")
            return
        source_set = artifact.feature_set()
        if self.config.features_from is not None:
            try:
                source = load_artifact(self.source_folder)
                source.check_registered(get_feature_set(source.manifest.feature_set.name))
                source_set = source.feature_set()
                self.columns = source_columns(
                    artifact.feature_set(), source_set, f"features_from = '{self.source_folder}'"
                )
            except Exception as exc:
                self.refuse(
                    f"{self.role}Actor ({self.id}): cannot take the features of '{folder}' from the "
                    f"feature set of '{self.source_folder}': {exc}"
                )
                return
        manifest = artifact.manifest
        self.artifact = artifact
        self.source_set = source_set
        self.feature_set_hash = source_set.hash
        self.model_id = self.config.model_id or f"{manifest.model_name}-{manifest.model_sha256[:12]}"
        self.window = FeatureWindow(
            manifest.window.encoder_bars,
            len(manifest.feature_set.names),
            interval_ns(interval),
            scaler=runner.scaler,
        )
        subscribe_bus(self, self.input_type)
        self.subscribe_bars(self.config.bar_type)  # the clock of the "no vectors of my set" check

    def build(self, artifact: Artifact) -> OnnxRunner:
        """Make the model from the checked artifact; return the OnnxRunner it predicts with."""
        raise NotImplementedError

    def evaluate(self, scaled: np.ndarray, vector: FeatureVector) -> Data:
        """The scaled float32 (1, E, F) model input of the full window ending at `vector`'s bar (what
        `OnnxRunner.predict` feeds onnxruntime for that raw window) -> the message to publish."""
        raise NotImplementedError

    def refuse(self, message: str) -> None:
        self.config_errors.append(message)
        self.log.error(message)
        stop_after_start(self, "artifact")

    def on_data(self, data: Data) -> None:
        if not isinstance(data, FeatureVector):
            return
        if data.feature_set_hash != self.feature_set_hash:
            self.other_hashes.add(data.feature_set_hash)
            return
        started = time.perf_counter()
        self.vectors_seen += 1
        if self.steps_on_interval == 0 and not self.check_vector_step(data.ts_event):
            return
        if self.columns is None:
            window = self.window.push(data.ts_event, data.values, data.warm)
        else:  # not warm <=> a selected value is NaN (the engine's warm-up), which the push checks
            window = self.window.push(data.ts_event, data.values[self.columns], True)
        if window is not None:
            inference_started = time.perf_counter()
            message = self.evaluate(self.window.scaled_window(), data)
            elapsed = time.perf_counter() - inference_started
            self.msgbus.publish(topic=INFERENCE_TOPIC, msg=InferenceTime(self.model_id, elapsed))
            self.publish_data(self.output_type, message)
            self.published += 1
            if self.config.keep_history:
                self.history.append(message)
        self.handler_secs += time.perf_counter() - started

    def check_vector_step(self, ts_ns: int) -> bool:
        """Until two vectors of this set have come one bar interval apart: refuse (and return False)
        once more than `window_bars` vectors arrived without such a step (a FeatureActor on other bars)."""
        previous, self.last_vector_ts = self.last_vector_ts, ts_ns
        if previous is not None and ts_ns - previous == self.window.step_ns:
            self.steps_on_interval += 1
        elif self.vectors_seen > self.window.window_bars:
            self.refuse(
                f"{self.role}Actor ({self.id}): {self.vectors_seen} FeatureVectors of the model's feature "
                f"set arrived, none {self.window.step_ns / 1e9:g} s (one {self.config.bar_type} bar) after "
                f"the previous one (the last step: {(ts_ns - previous) / 1e9:g} s): the FeatureActor "
                f'computing them runs on other bars; give it bar_type = "{self.config.bar_type}"'
            )
            return False
        return True

    def on_bar(self, bar: Bar) -> None:
        self.bars_seen += 1
        if self.vectors_seen == 0 and self.bars_seen > self.window.window_bars:
            self.refuse(self.missing_features_message())

    def missing_features_message(self) -> str:
        record = self.artifact.manifest.feature_set
        source = self.source_set
        seen = (
            f"only FeatureVectors of other feature sets arrived (hashes "
            f"{', '.join(sorted(h[:12] + '...' for h in self.other_hashes))})"
            if self.other_hashes
            else "no FeatureVector arrived"
        )
        if record.declared_hash in self.other_hashes:
            seen += f", {record.declared_hash[:12]}... being the registered set before fitting"
        needs = f"its fitted feature set '{record.name}' (hash {record.hash[:12]}...)"
        if self.columns is not None:
            needs = (
                f"the fitted feature set '{source.name}' of features_from = '{self.source_folder}' (hash "
                f"{source.hash[:12]}...)"
            )
        return (
            f"{self.role}Actor ({self.id}): {self.bars_seen} bars of {self.config.instrument_id} "
            f"arrived, but {seen}; the model needs {needs}: add to `actors` "
            f'{{name = "features", params = {{instrument_id = "{self.config.instrument_id}", bar_type = '
            f'"{self.config.bar_type}", artifact = "{self.source_folder}"}}}}'
        )

    def on_stop(self) -> None:
        """Nothing to release: the onnxruntime session is freed with the actor."""
