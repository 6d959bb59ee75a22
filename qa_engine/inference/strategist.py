"""The Strategist (Decision Transformer) at trading time: onnxruntime + numpy only, never torch.

`StrategistPolicy` loads a strategist artifact folder (model.onnx + manifest.json) with the same checks
as `load_artifact` (model sha256, graph inputs/outputs vs the manifest, the fitted feature set's hash,
the bar interval) and runs the policy bar by bar exactly as training's rollout does
(`qa_engine.models.strategist.trajectories.rollout`, used by
`qa_engine.models.strategist.train.evaluate_out_of_sample`):

    per bar t, at its close:
      ready = policy.observe(raw_feature_row, close, ts_ns)   # s_t = scaler(StateTransform(row, close))
      if ready:                                                # K states in the context
          action_index, target_position, probabilities = policy.act()
      policy.commit(action_index)                              # the position actually taken at t

`observe` realises the reward of the position held over bar t (the committed position times the log
return, minus the fee on the change made at t-1), lowers the return-to-go by it (restarting at the
target every `episode_bars` bars) and appends the step: the manifest's `StateTransform` and scaler are
applied by the very functions training used. A caller that trades commits what it actually holds
(a gate may veto the model's proposal; a stop may close the position), so the context records the
real positions. `reset()` starts a fresh context: on a gap in the bars (`observe` does it itself when
given `ts_ns`), or on a feature row with NaN (warm-up), as training never crosses a gap.

The Timing contract is the one of qa_engine/models/README.md, section "Strategist".
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import NamedTuple

import numpy as np

from qa_engine.contract.policy_context import StateTransform
from qa_engine.contract.policy_context import StrategistContext
from qa_engine.contract.strategist import StrategistArtifactManifest
from qa_engine.contract.strategist import StrategistSection
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.features.io import interval_ns as interval_to_ns
from qa_engine.features.spec import FeatureSet
from qa_engine.inference.artifact import Artifact
from qa_engine.inference.artifact import cpu_session
from qa_engine.inference.artifact import load_artifact
from qa_engine.inference.scaling import FeatureScaler

# The graph's inputs in order and its output (qa_engine.models.strategist.network.INPUT_NAMES /
# OUTPUT_NAME; that module imports torch, so the names are repeated here and checked at load).
INPUT_NAMES = ("returns_to_go", "states", "actions", "timesteps")
OUTPUT_NAME = "action_logits"


class PolicyAction(NamedTuple):
    """What the policy proposes at this bar: the argmax action, its target position, the softmax."""

    action_index: int
    target_position: float  # in [-1, 1]: fraction of the maximum position (signed)
    probabilities: np.ndarray  # (A,) float64, softmax of the logits


def load_strategist(
    folder: Path | str,
    expected_feature_set: FeatureSet | None = None,
    interval: str | None = None,
) -> Artifact:
    """`load_artifact` plus the strategist-only checks (kind, input and output names)."""
    artifact = load_artifact(Path(folder), expected_feature_set=expected_feature_set, interval=interval)
    manifest = artifact.manifest
    where = f"artifact {artifact.folder}"
    if not isinstance(manifest, StrategistArtifactManifest):
        raise ConfigError(
            f"{where}: model_kind is '{manifest.model_kind}', not 'strategist'; give a Strategist "
            "(Decision Transformer) artifact folder"
        )
    inputs = tuple(record.name for record in manifest.inputs)
    outputs = tuple(record.name for record in manifest.outputs)
    if inputs != INPUT_NAMES or outputs != (OUTPUT_NAME,):
        raise ConfigError(
            f"{where}: a strategist graph takes {INPUT_NAMES} and returns ({OUTPUT_NAME!r},); "
            f"this one takes {inputs} and returns {outputs}"
        )
    return artifact


class StrategistPolicy:
    """A Strategist artifact and its live context; see the module docstring for the per-bar calls.

    target_return: R at every episode start (log-return units): None = the manifest's default, a key
    of the manifest's `target_return_choices` (e.g. "q0.99") or a number. Counters: `calls` (ONNX
    runs) and `inference_secs` (wall time inside them).
    """

    def __init__(
        self,
        folder: Path | str,
        *,
        expected_feature_set: FeatureSet | None = None,
        interval: str | None = None,
        target_return: float | str | None = None,
        threads: int = 1,
    ) -> None:
        self.artifact = load_strategist(folder, expected_feature_set, interval)
        manifest = self.artifact.manifest
        assert isinstance(manifest, StrategistArtifactManifest)
        self.manifest = manifest
        self.section: StrategistSection = manifest.strategist
        self.feature_names = tuple(manifest.feature_set.names)
        self.interval_ns = interval_to_ns(manifest.window.interval)
        self.transform = StateTransform(self.feature_names, tuple(self.section.state_transform))
        self.scaler = FeatureScaler(
            self.feature_names,
            np.asarray(manifest.scaler.mean, dtype=np.float64),
            np.asarray(manifest.scaler.std, dtype=np.float64),
            manifest.scaler.clip,
        )
        self.action_positions = np.asarray(self.section.action_positions, dtype=np.float64)  # (A,)
        # The transform and the scaler as precomputed masks and vectors: the same float64 operations,
        # in the same order, as StateTransform.apply and FeatureScaler.transform (about 2x faster per bar).
        kinds = np.asarray(self.section.state_transform)
        self._level = np.flatnonzero(kinds == "level")
        self._difference = np.flatnonzero(kinds == "difference")
        self._mean, self._std, self._clip = self.scaler.mean, self.scaler.std, self.scaler.clip
        self.flat_action = int(np.abs(self.action_positions).argmin())
        self._action_of_level = {float(level): index for index, level in enumerate(self.action_positions)}
        self.feature_set_hash: str = manifest.feature_set.hash
        self.target_return = self._target(target_return)

        self.session = cpu_session(self.artifact.model_path, threads)
        self.calls = 0
        self.inference_secs = 0.0
        self._context = self._new_context()
        # Bars observed but not yet written into the context's buffers: [raw row, close, action index or
        # None while uncommitted], at most `context_length` of them (see `observe`).
        self._pending: deque[list] = deque()
        self._ready = False
        self._position = 0.0
        self._inputs: dict[str, np.ndarray] | None = None
        self._last_ts: int | None = None
        self._uncommitted = False

    # --- what the feed must provide -----------------------------------------------------------

    def feature_set(self) -> FeatureSet:
        """The fitted feature set the model was trained on: what the FeatureActor must compute."""
        return self.artifact.feature_set()

    @property
    def n_actions(self) -> int:
        return len(self.action_positions)

    @property
    def context_length(self) -> int:
        return self.section.context_length

    @property
    def ready(self) -> bool:
        """True after an observe() that filled the context (act() may be called)."""
        return self._ready

    @property
    def context(self) -> StrategistContext:
        """The context, every observed bar in it (what act() reads)."""
        self._flush()
        return self._context

    @property
    def awaiting_commit(self) -> bool:
        """True between an observe() that took a state and its commit()."""
        return self._uncommitted

    @property
    def position(self) -> float:
        """The position last committed (held over the coming bar), as a fraction in [-1, 1]."""
        return self._position

    # --- per bar ------------------------------------------------------------------------------

    def reset(self) -> None:
        """A fresh context (flat, empty): the next K bars only fill it."""
        self._context = self._new_context()
        self._pending.clear()
        self._ready = False
        self._position = 0.0
        self._inputs = None
        self._last_ts = None
        self._uncommitted = False

    def observe(self, raw_feature_row: np.ndarray, close: float, ts_ns: int | None = None) -> bool:
        """Bar t's raw features (manifest order) and close -> whether the context is full (act() may run).

        With `ts_ns`, a step that is not exactly one interval after the last observed bar resets the
        context first. A row with NaN/inf (warm-up) resets it and returns False. An observe() not
        followed by commit() is committed as "keep the position" before the next bar.

        The bar's state (transform, scaler) and its step in the context's buffers are computed when
        act() (or `context`) next needs them, not here: of the bars observed since, only the last
        `context_length` can reach the model, so older ones only go through the reward and return-to-go
        accounting (`StrategistContext.advance`). The context act() reads is the same, value for value,
        as if every bar had been written at once; a run that skips most Strategist calls (flat, no
        entry possible) no longer pays the state of every bar.
        """
        row = np.asarray(raw_feature_row, dtype=np.float64)
        if row.shape != (len(self.feature_names),):
            raise DataError(
                f"expected a feature row of {len(self.feature_names)} values (manifest order), "
                f"got shape {row.shape}"
            )
        if self._uncommitted:
            self.commit(self.nearest_action(self._position))
        if ts_ns is not None and self._last_ts is not None and ts_ns - self._last_ts != self.interval_ns:
            self.reset()
        if not (math.isfinite(close) and close > 0 and np.isfinite(row).all()):
            self.reset()
            return False
        pending = self._pending
        if len(pending) == self.section.context_length:  # shifted out of the window before any act()
            _, old_close, old_action = pending.popleft()
            self._context.advance(old_close, old_action)
        pending.append([row.copy(), float(close), None])
        self._inputs = None
        self._ready = self._context.seen + len(pending) >= self.section.context_length
        self._last_ts = ts_ns
        self._uncommitted = True
        return self._ready

    def _flush(self) -> None:
        """Write the pending bars into the context (state, buffers; the committed actions)."""
        pending, context = self._pending, self._context
        while pending:
            row, close, action = pending.popleft()
            self._inputs = context.observe(self.state(row, close), close)
            if action is not None:
                context.commit(action)

    def state(self, raw_feature_row: np.ndarray, close: float) -> np.ndarray:
        """s_t as training builds it: scaler(StateTransform(row, close)), float32 (S,)."""
        values = np.array(raw_feature_row, dtype=np.float64)  # a copy
        close = np.float64(close)
        values[self._level] = values[self._level] / close - 1.0
        values[self._difference] = values[self._difference] / close
        return np.clip((values - self._mean) / self._std, -self._clip, self._clip).astype(np.float32)

    def act(self, target_return: float | str | None = None) -> PolicyAction:
        """The policy's proposal for the bar last observed. `target_return` (None: the policy's own)
        asks what the model would do had every episode started at that target instead: the
        return-to-go tokens shift by the difference (R_t = target - rewards realised in the episode)."""
        if not self._ready:
            raise RuntimeError("act() needs a full context: call observe() until it returns True")
        self._flush()
        inputs = self._inputs
        if target_return is not None:
            shift = (self._target(target_return) - self._context.target_return) / self._context.rtg_scale
            inputs = {**inputs, "returns_to_go": (inputs["returns_to_go"] + np.float32(shift))}
        started = time.perf_counter()
        logits = self.session.run([OUTPUT_NAME], inputs)[0][0]  # (A,)
        self.inference_secs += time.perf_counter() - started
        self.calls += 1
        action = int(np.argmax(logits))  # as rollout(): argmax of the logits
        weights = np.exp(logits.astype(np.float64) - float(logits[action]))
        probabilities = weights / weights.sum()
        return PolicyAction(action, float(self.action_positions[action]), probabilities)

    def commit(self, action_index: int) -> None:
        """Record the action taken at the bar last observed (the position filled at its close)."""
        if not 0 <= action_index < self.n_actions:
            raise ValueError(f"action_index must be in [0, {self.n_actions}), got {action_index}")
        if not self._uncommitted:
            raise RuntimeError("commit() must follow an observe() (once per bar)")
        if self._pending:
            self._pending[-1][2] = int(action_index)
        else:  # act() wrote the bar into the context already
            self._context.commit(int(action_index))
        self._position = float(self._context.levels[action_index])
        self._uncommitted = False

    def nearest_action(self, position: float) -> int:
        """The action whose target position is closest to `position` (a fraction in [-1, 1])."""
        index = self._action_of_level.get(position)
        return index if index is not None else int(np.abs(self.action_positions - position).argmin())

    # --- helpers ------------------------------------------------------------------------------

    def _target(self, target_return: float | str | None) -> float:
        if target_return is None:
            return float(self.section.target_return)
        if isinstance(target_return, str):
            choices = self.section.target_return_choices
            if target_return not in choices:
                raise ConfigError(
                    f"target_return '{target_return}' is not one of the artifact's choices "
                    f"{sorted(choices)} (or give a number, in log-return units)"
                )
            return float(choices[target_return])
        if not math.isfinite(target_return):
            raise ConfigError(f"target_return must be finite, got {target_return}")
        return float(target_return)

    def _new_context(self) -> StrategistContext:
        section = self.section
        return StrategistContext(
            section.context_length,
            len(self.feature_names),
            len(self.action_positions),
            section.episode_bars,
            self.target_return,
            section.rtg_scale,
            section.taker_fee_rate,
        )
