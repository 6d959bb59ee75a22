"""What the Strategist's policy sees at inference, shared by training and trading (numpy only).

The action space (`action_positions`: evenly spaced target positions in [-1, 1]), the causal state
transform (`StateTransform`, `state_transform_for`: price-denominated features made scale-free with the
same bar's close; the manifest's `strategist.state_transform` records the kind of every column), and
`StrategistContext`, the last K (return-to-go, state, action, timestep) steps with the reward
accounting that training's rollouts (`qa_engine.models.strategist.trajectories.rollout`) and trading
(`qa_engine.inference.strategist.StrategistPolicy`) both run. The Timing contract is the one of
qa_engine/models/README.md, section "Strategist": r_{t-1} = position held over bar t * ln(close_t /
close_{t-1}) - taker_fee_rate * |change of position made at t-1|; the return-to-go restarts at the
target every `episode_bars` bars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from qa_engine.features.spec import FeatureSet

# ---- the action space ----------------------------------------------------------------------------


def action_positions(n_actions: int) -> np.ndarray:
    """Target positions (fraction of the allowed size, signed) of the action indices: evenly spaced in
    [-1, 1]; 3 -> [-1, 0, 1] (short, flat, long), 5 -> [-1, -0.5, 0, 0.5, 1]."""
    if n_actions < 2:
        raise ValueError(f"n_actions must be >= 2, got {n_actions}")
    return np.linspace(-1.0, 1.0, n_actions)


def nearest_actions(positions: np.ndarray, n_actions: int) -> np.ndarray:
    """Target positions in [-1, 1] -> the index of the nearest action level (ties: the lower index)."""
    levels = action_positions(n_actions)
    return np.abs(np.asarray(positions)[:, None] - levels[None, :]).argmin(axis=1).astype(np.int64)


def flat_action(n_actions: int) -> int:
    """The action closest to no position (flat for odd counts)."""
    return int(np.abs(action_positions(n_actions)).argmin())


# ---- states ------------------------------------------------------------------------------------

ColumnTransform = Literal["raw", "level", "difference"]


@dataclass(frozen=True)
class StateTransform:
    """Makes price-denominated features scale-free with the same bar's close (causal):
    level (a price, e.g. SMA, Bollinger band, POC): x / close - 1; difference (a price difference,
    e.g. MACD, ATR): x / close; raw: unchanged. The shared `FeatureScaler` standardises afterwards."""

    names: tuple[str, ...]
    kinds: tuple[ColumnTransform, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.kinds):
            raise ValueError(f"{len(self.names)} names but {len(self.kinds)} transforms")

    def apply(self, features: np.ndarray, close: np.ndarray) -> np.ndarray:
        """(..., S) features and (...,) closes of the same bars -> (..., S) float64."""
        values = np.array(features, dtype=np.float64)
        close = np.asarray(close, dtype=np.float64)[..., None]
        kinds = np.array(self.kinds)
        level, difference = kinds == "level", kinds == "difference"
        values[..., level] = values[..., level] / close - 1.0
        values[..., difference] = values[..., difference] / close
        return values


_PRICE_LEVEL_OUTPUTS = {
    "bollinger": {"upper", "lower"},
    "volume_profile": {"poc", "vah", "val"},
    "wavelet": {"level"},
}


def state_transform_for(feature_set: FeatureSet, names: tuple[str, ...] | None = None) -> StateTransform:
    """Which columns of `feature_set` are price levels or price differences (by kind and params)."""
    specs = {spec.name: spec for spec in feature_set.specs}
    names = tuple(names) if names is not None else feature_set.names
    kinds: list[ColumnTransform] = []
    for name in names:
        spec = specs.get(name)
        kind: ColumnTransform = "raw"
        if spec is not None:
            parameters = dict(spec.params)
            output = parameters.get("output")
            moving_average = spec.kind in ("sma", "ema") and parameters.get("source", "close") == "close"
            if moving_average or output in _PRICE_LEVEL_OUTPUTS.get(spec.kind, set()):
                kind = "level"
            elif spec.kind == "macd" or (spec.kind == "atr" and output == "atr"):
                kind = "difference"
        kinds.append(kind)
    return StateTransform(names, tuple(kinds))


# ---- inference: the live context and offline rollouts ------------------------------------------


class StrategistContext:
    """The last K (R, s, a, timestep) steps the policy sees at inference, with the reward accounting.

    Per bar, at its close: `observe(state, close)` realises the reward of the position held over this
    bar (r_{t-1}: previous position * ln(close_t / close_{t-1}) - fee on the change made at t-1),
    lowers the return-to-go by it (or restarts it at `target_return` when a new episode begins every
    `episode_bars` bars), appends the step, and returns the model inputs, or None until K states exist;
    then `commit(action)` records the chosen action (the position filled at this close). States are
    expected transformed and scaled (`StateTransform` then the manifest's scaler).
    """

    def __init__(
        self,
        context_length: int,
        state_dim: int,
        n_actions: int,
        episode_bars: int,
        target_return: float,
        rtg_scale: float,
        taker_fee_rate: float,
    ) -> None:
        self.context_length = context_length
        self.episode_bars = episode_bars
        self.target_return = target_return
        self.rtg_scale = rtg_scale
        self.taker_fee_rate = taker_fee_rate
        self.levels = action_positions(n_actions)
        self.returns = np.zeros((context_length, 1), dtype=np.float32)
        self.states = np.zeros((context_length, state_dim), dtype=np.float32)
        self.actions = np.zeros(context_length, dtype=np.int64)
        self.timesteps = np.zeros(context_length, dtype=np.int64)
        self.seen = 0
        self.rtg = target_return
        self.position = 0.0  # held over the coming bar
        self.previous_position = 0.0  # held before the last decision (for its fee)
        self.last_close: float | None = None
        self.realised: list[float] = []

    def observe(self, state: np.ndarray, close: float) -> dict[str, np.ndarray] | None:
        timestep = self._account(close)
        for buffer in (self.returns, self.states, self.actions, self.timesteps):
            buffer[:-1] = buffer[1:]  # shift one step left in place (numpy copies overlapping slices safely)
        self.returns[-1, 0] = self.rtg / self.rtg_scale
        self.states[-1] = state
        self.actions[-1] = 0  # placeholder: a_t is what is being chosen, the model never reads it for a_t
        self.timesteps[-1] = timestep
        self.seen += 1
        self.last_close = close
        if self.seen < self.context_length:
            return None
        return {  # views of the buffers: use them before the next observe()
            "returns_to_go": self.returns[None],  # (1, K, 1)
            "states": self.states[None],  # (1, K, S)
            "actions": self.actions[None],  # (1, K)
            "timesteps": self.timesteps[None],  # (1, K)
        }

    def advance(self, close: float, action: int) -> None:
        """observe() then commit(action) of a step that is shifted out of the window before the model
        next reads it: the same reward and return-to-go accounting, without writing the buffers (every
        row it would have written is overwritten by the `context_length` steps that follow it)."""
        self._account(close)
        self.seen += 1
        self.last_close = close
        self.previous_position = self.position
        self.position = float(self.levels[action])

    def _account(self, close: float) -> int:
        """The reward of the position held over this bar, the return-to-go; returns the step's timestep."""
        if self.last_close is not None:
            reward = self.position * math.log(close / self.last_close) - self.taker_fee_rate * abs(
                self.position - self.previous_position
            )
            self.realised.append(reward)
            self.rtg -= reward
        timestep = self.seen % self.episode_bars
        if timestep == 0:
            self.rtg = self.target_return
        return timestep

    def commit(self, action: int) -> None:
        self.actions[-1] = action
        self.previous_position = self.position
        self.position = float(self.levels[action])
