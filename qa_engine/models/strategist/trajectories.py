"""Offline trajectories for the Strategist (Decision Transformer): behaviour policies, rewards after fees,
returns-to-go, and offline rollouts (numpy only, no torch). The action space, the state transform and the
inference-side context that does the same accounting live are the contract, in
`qa_engine.contract.policy_context`.

Timing, the same as `qa_engine.models.strategist.network` and the backtest (a market order fills at the
close of the bar whose on_bar decided it; bars are stamped at their close):

- step t is bar t. The state s_t is the feature row of bar t, computed on bars <= t, made price-relative
  with close[t] (`StateTransform`) and then standardised with statistics of the training split only.
- the behaviour action a_t is chosen at bar t's close from closes[<= t] (and the policy's own random
  stream, drawn in a fixed amount per bar, so it never depends on later data); the position it names
  is held over bar t+1.
- r_t = position_t * ln(close[t+1] / close[t]) - taker_fee_rate * |position_t - position_{t-1}|:
  it reads bars t and t+1 and the position change, nothing else (`step_rewards`). position_{-1} is
  flat at the start of a gap-free segment; at the start of a later episode it is the position held.
- R_t = r_t + r_{t+1} + ... + r_{end of episode} (log-return units; the model sees R_t / rtg_scale).

Episodes (the "trajectories") are fixed-length runs of `episode_bars` consecutive steps of one
behaviour, laid back to back inside one gap-free segment of bars (a segment is a run of rows whose
close times are exactly one interval apart; nothing crosses a gap). A segment's last bar has no next
close, so it is never a step, and a remainder shorter than one episode at the segment's end is
dropped. A behaviour runs continuously over its segment, so consecutive episodes are contiguous in time
and a context window of K steps may span an episode boundary: the timestep token (step index within
the episode, 0 .. episode_bars-1) and the return-to-go restart there, exactly what `StrategistContext`
does at inference, where a new episode (and a fresh target return) starts every `episode_bars` bars.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Protocol
from typing import cast

import numpy as np
import polars as pl

from qa_engine.contract.policy_context import ColumnTransform
from qa_engine.contract.policy_context import StateTransform
from qa_engine.contract.policy_context import StrategistContext
from qa_engine.contract.policy_context import action_positions
from qa_engine.contract.policy_context import flat_action
from qa_engine.contract.policy_context import nearest_actions
from qa_engine.errors import DataError

RANDOM_COLUMNS = 4  # uniforms per bar: 2 for the policy, 2 for the epsilon noise (a fixed draw per bar)


# ---- causal indicators for the behaviour policies ------------------------------------------------


def ema(values: np.ndarray, period_bars: int) -> np.ndarray:
    """y_0 = x_0, y_t = y_{t-1} + (x_t - y_{t-1}) * 2 / (period + 1): a causal IIR filter."""
    if len(values) == 0:
        return np.asarray(values, dtype=np.float64)
    alpha = 2.0 / (period_bars + 1.0)
    initial = [(1.0 - alpha) * float(values[0])]
    from scipy.signal import lfilter  # lazy: scipy.signal takes ~3 s to import; trading never needs it

    filtered, _ = lfilter([alpha], [1.0, alpha - 1.0], np.asarray(values, dtype=np.float64), zi=initial)
    return filtered


def wilder_rsi(close: np.ndarray, period_bars: int) -> np.ndarray:
    """RSI 0..100 with Wilder smoothing (alpha = 1/period), seeded at the first change; 50 with no moves."""
    change = np.diff(np.asarray(close, dtype=np.float64), prepend=close[:1])
    alpha = 1.0 / period_bars
    from scipy.signal import lfilter  # lazy, see ema()

    gains = lfilter([alpha], [1.0, alpha - 1.0], np.maximum(change, 0.0), zi=[0.0])[0]
    losses = lfilter([alpha], [1.0, alpha - 1.0], np.maximum(-change, 0.0), zi=[0.0])[0]
    total = gains + losses
    return np.where(total > 0, 100.0 * gains / np.where(total > 0, total, 1.0), 50.0)


# ---- behaviour policies ------------------------------------------------------------------------


class BehaviourPolicy(Protocol):
    """A causal rule: target positions in [-1, 1] per bar from closes[<= t] and uniforms[<= t]."""

    @property
    def name(self) -> str: ...

    def target_positions(self, close: np.ndarray, uniforms: np.ndarray, n_actions: int) -> np.ndarray: ...


@dataclass(frozen=True)
class EmaCrossPolicy:
    """Trend follower: long while EMA(fast) > EMA(slow), short while below, flat when equal."""

    fast_bars: int = 12
    slow_bars: int = 26

    @property
    def name(self) -> str:
        return f"ema_cross_{self.fast_bars}_{self.slow_bars}"

    def target_positions(self, close: np.ndarray, uniforms: np.ndarray, n_actions: int) -> np.ndarray:
        return np.sign(ema(close, self.fast_bars) - ema(close, self.slow_bars))


@dataclass(frozen=True)
class RsiReversionPolicy:
    """Mean reversion: go long when RSI < lower, short when RSI > upper, back to flat when RSI crosses
    `exit_level`; otherwise keep the position (a state machine over bars <= t)."""

    period_bars: int = 14
    lower: float = 30.0
    upper: float = 70.0
    exit_level: float = 50.0

    @property
    def name(self) -> str:
        return f"rsi_reversion_{self.period_bars}_{self.lower:g}_{self.upper:g}"

    def target_positions(self, close: np.ndarray, uniforms: np.ndarray, n_actions: int) -> np.ndarray:
        rsi = wilder_rsi(close, self.period_bars)
        positions = np.zeros(len(close))
        held = 0.0
        for t, value in enumerate(rsi):
            if value < self.lower:
                held = 1.0
            elif value > self.upper:
                held = -1.0
            elif (held > 0 and value >= self.exit_level) or (held < 0 and value <= self.exit_level):
                held = 0.0
            positions[t] = held
        return positions


@dataclass(frozen=True)
class MomentumPolicy:
    """Time-series momentum: long when ln(close[t] / close[t - lookback]) > threshold, short when below
    -threshold, flat in between (and flat until `lookback_bars` bars of the segment exist)."""

    lookback_bars: int = 48
    threshold: float = 0.004

    @property
    def name(self) -> str:
        return f"momentum_{self.lookback_bars}_{self.threshold:g}"

    def target_positions(self, close: np.ndarray, uniforms: np.ndarray, n_actions: int) -> np.ndarray:
        log_close = np.log(np.asarray(close, dtype=np.float64))
        past = np.full(len(close), np.nan)
        if len(close) > self.lookback_bars:
            past[self.lookback_bars :] = log_close[self.lookback_bars :] - log_close[: -self.lookback_bars]
        positions = np.where(past > self.threshold, 1.0, np.where(past < -self.threshold, -1.0, 0.0))
        return np.where(np.isnan(past), 0.0, positions)


@dataclass(frozen=True)
class RandomPersistentPolicy:
    """Random positions that persist: each bar, with probability `switch_probability`, jump to an action
    drawn uniformly (flat at the start). Covers the action space, including long flat stretches."""

    switch_probability: float = 0.01

    @property
    def name(self) -> str:
        return f"random_persistent_{self.switch_probability:g}"

    def target_positions(self, close: np.ndarray, uniforms: np.ndarray, n_actions: int) -> np.ndarray:
        levels = action_positions(n_actions)
        positions = np.zeros(len(close))
        held = levels[flat_action(n_actions)]
        for t in range(len(close)):
            if uniforms[t, 0] < self.switch_probability:
                held = levels[min(int(uniforms[t, 1] * n_actions), n_actions - 1)]
            positions[t] = held
        return positions


@dataclass(frozen=True)
class Behaviour:
    """A policy plus epsilon noise: each bar, with probability epsilon, a uniformly random action
    replaces the policy's (the policy's own state goes on unchanged)."""

    policy: EmaCrossPolicy | RsiReversionPolicy | MomentumPolicy | RandomPersistentPolicy
    epsilon: float = 0.02

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")

    @property
    def name(self) -> str:
        return f"{self.policy.name}+eps{self.epsilon:g}"

    def actions(self, close: np.ndarray, uniforms: np.ndarray, n_actions: int) -> np.ndarray:
        """(N,) action indices for bars 0..N-1 of one segment; uniforms (N, RANDOM_COLUMNS)."""
        chosen = nearest_actions(self.policy.target_positions(close, uniforms[:, :2], n_actions), n_actions)
        noisy = uniforms[:, 2] < self.epsilon
        random_actions = np.minimum((uniforms[:, 3] * n_actions).astype(np.int64), n_actions - 1)
        return np.where(noisy, random_actions, chosen)


DEFAULT_BEHAVIOURS: tuple[Behaviour, ...] = (
    Behaviour(EmaCrossPolicy(12, 26), 0.02),
    Behaviour(EmaCrossPolicy(48, 192), 0.02),
    Behaviour(RsiReversionPolicy(14, 30.0, 70.0), 0.02),
    Behaviour(MomentumPolicy(48, 0.004), 0.02),
    Behaviour(RandomPersistentPolicy(0.01), 0.0),
)


def behaviour_uniforms(seed: int, behaviour_index: int, first_ts_ns: int, count: int) -> np.ndarray:
    """(count, RANDOM_COLUMNS) uniforms of one behaviour on one segment. Seeded by where the segment
    starts, not by its length, and drawn row by row: row t is the same whatever follows bar t."""
    rng = np.random.default_rng([seed, behaviour_index, int(first_ts_ns) % 2**63])
    return rng.random((count, RANDOM_COLUMNS))


# ---- rewards and returns-to-go -----------------------------------------------------------------


def step_rewards(
    close: np.ndarray, positions: np.ndarray, initial_position: float, taker_fee_rate: float
) -> np.ndarray:
    """r_t = p_t * ln(close[t+1] / close[t]) - fee * |p_t - p_{t-1}| for t = 0..N-1.

    close: (N+1,) the closes of bars 0..N; positions: (N,) held over bar t+1; p_{-1} = initial_position.
    """
    if len(close) != len(positions) + 1:
        raise ValueError(
            f"need one more close than positions, got {len(close)} closes, {len(positions)} positions"
        )
    log_close = np.log(np.asarray(close, dtype=np.float64))
    previous = np.concatenate([[initial_position], positions[:-1]])
    return positions * np.diff(log_close) - taker_fee_rate * np.abs(positions - previous)


def returns_to_go(rewards: np.ndarray, episode_bars: int) -> np.ndarray:
    """R_t = sum of the rewards from t to the end of t's episode (back-to-back episodes of episode_bars)."""
    if len(rewards) % episode_bars:
        raise ValueError(f"{len(rewards)} rewards are not whole episodes of {episode_bars}")
    per_episode = np.asarray(rewards, dtype=np.float64).reshape(-1, episode_bars)
    return np.cumsum(per_episode[:, ::-1], axis=1)[:, ::-1].reshape(-1)


# ---- trajectories ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrajectoryConfig:
    """How behaviour data is generated from bars. `rtg_scale` is recorded in the manifest: the model sees
    R_t / rtg_scale (0.01: one unit = 1% log return)."""

    episode_bars: int = 288
    n_actions: int = 3
    taker_fee_rate: float = 0.0006  # per unit of turnover (notional / equity); 0.06% taker
    rtg_scale: float = 0.01
    behaviours: tuple[Behaviour, ...] = DEFAULT_BEHAVIOURS
    seed: int = 0

    def __post_init__(self) -> None:
        if self.episode_bars < 1:
            raise ValueError(f"episode_bars must be >= 1, got {self.episode_bars}")
        action_positions(self.n_actions)
        if self.taker_fee_rate < 0 or self.rtg_scale <= 0:
            raise ValueError("taker_fee_rate must be >= 0 and rtg_scale > 0")
        if not self.behaviours:
            raise ValueError("at least one behaviour is needed")


@dataclass
class TrajectorySet:
    """Steps of every (behaviour, segment) run, concatenated; a run's steps are consecutive bars.

    Per bar (rows of the input table): ts (R,), close (R,), states (R, S) = StateTransform(features),
    not yet standardised. Per step (N,): row (the bar t of the step: s_t = states[row]), action,
    previous_action (held over bar t, before the decision), reward, return_to_go, timestep (in the
    episode), episode, run. `episodes` holds one row of metadata per episode.
    """

    config: TrajectoryConfig
    feature_names: tuple[str, ...]
    transform: StateTransform
    interval_ns: int
    ts: np.ndarray
    close: np.ndarray
    states: np.ndarray
    row: np.ndarray
    action: np.ndarray
    previous_action: np.ndarray
    reward: np.ndarray
    return_to_go: np.ndarray
    timestep: np.ndarray
    episode: np.ndarray
    run: np.ndarray
    episodes: pl.DataFrame
    segments: list[tuple[int, int]] = field(default_factory=list)

    @property
    def state_dim(self) -> int:
        return self.states.shape[1]

    @property
    def episode_bars(self) -> int:
        return self.config.episode_bars

    def __len__(self) -> int:
        return len(self.row)

    def window_starts(self, context_length: int) -> np.ndarray:
        """Step positions i where steps i .. i+K-1 belong to one run (consecutive bars)."""
        count = len(self.row) - context_length + 1
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        first = np.arange(count)
        return first[self.run[first] == self.run[first + context_length - 1]].astype(np.int64)


def gap_free_segments(ts: np.ndarray, valid: np.ndarray, interval_ns: int) -> list[tuple[int, int]]:
    """[start, end) row ranges of valid rows whose close times are exactly one interval apart."""
    bounds, start = [], None
    for t in range(len(ts)):
        if not valid[t]:
            if start is not None:
                bounds.append((start, t))
            start = None
            continue
        if start is None:
            start = t
        elif ts[t] - ts[t - 1] != interval_ns:
            bounds.append((start, t))
            start = t
    if start is not None:
        bounds.append((start, len(ts)))
    return bounds


def build_trajectories(
    feature_table: pl.DataFrame,
    closes: np.ndarray,
    interval_ns: int,
    config: TrajectoryConfig,
    transform: StateTransform | None = None,
) -> TrajectorySet:
    """Behaviour trajectories over a feature table (`ts` = bar close + feature columns) and the closes of
    the same rows. Rows with a null/NaN feature are not states; steps never cross a gap in `ts`."""
    if "ts" not in feature_table.columns:
        raise DataError(f"feature table has no ts column; columns are {feature_table.columns}")
    names = tuple(c for c in feature_table.columns if c != "ts")
    closes = np.asarray(closes, dtype=np.float64)
    if len(closes) != feature_table.height:
        raise DataError(
            f"{len(closes)} closes for {feature_table.height} feature rows: pass the closes of the same bars"
        )
    if not np.all(np.isfinite(closes)) or np.any(closes <= 0):
        raise DataError("closes must be finite and positive")
    raw_kinds = cast(tuple[ColumnTransform, ...], ("raw",) * len(names))
    transform = transform or StateTransform(names, raw_kinds)
    if transform.names != names:
        raise DataError(f"state transform is for columns {transform.names}, the table has {names}")
    ts = feature_table.get_column("ts").cast(pl.Int64).to_numpy()
    if len(ts) > 1 and np.any(np.diff(ts) <= 0):
        raise DataError("feature table ts must be strictly increasing")
    raw = feature_table.select(names).cast(pl.Float64).fill_null(np.nan).to_numpy()
    valid = np.all(np.isfinite(raw), axis=1)
    states = transform.apply(raw, closes)
    segments = gap_free_segments(ts, valid, interval_ns)

    length = config.episode_bars
    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("row", "action", "previous", "reward", "rtg", "time", "episode", "run")
    }
    episode_rows: list[dict[str, object]] = []
    levels = action_positions(config.n_actions)
    run_id = 0
    for start, end in segments:
        episodes = (end - start - 1) // length  # the last bar has no next close
        if episodes == 0:
            continue
        steps = episodes * length
        segment_close = closes[start:end]
        for index, behaviour in enumerate(config.behaviours):
            uniforms = behaviour_uniforms(config.seed, index, ts[start], end - start)
            actions = behaviour.actions(segment_close, uniforms, config.n_actions)[:steps]
            positions = levels[actions]
            rewards = step_rewards(segment_close[: steps + 1], positions, 0.0, config.taker_fee_rate)
            previous = np.concatenate([[flat_action(config.n_actions)], actions[:-1]])
            episode_ids = len(episode_rows) + np.arange(steps) // length
            columns["row"].append(np.arange(start, start + steps))
            columns["action"].append(actions)
            columns["previous"].append(previous)
            columns["reward"].append(rewards)
            columns["rtg"].append(returns_to_go(rewards, length))
            columns["time"].append(np.tile(np.arange(length), episodes))
            columns["episode"].append(episode_ids)
            columns["run"].append(np.full(steps, run_id))
            for k in range(episodes):
                first = k * length
                held = positions[first : first + length]
                before = np.concatenate([[levels[previous[first]]], held[:-1]])
                episode_rows.append(
                    {
                        "episode": len(episode_rows),
                        "run": run_id,
                        "behaviour": behaviour.name,
                        "epsilon": behaviour.epsilon,
                        "first_ts": int(ts[start + first]),
                        "last_ts": int(ts[start + first + length]),  # the close that settles the last step
                        "return": float(rewards[first : first + length].sum()),
                        "fees": float(config.taker_fee_rate * np.abs(held - before).sum()),
                        "turnover": float(np.abs(held - before).sum()),
                        "mean_abs_position": float(np.abs(held).mean()),
                        "buy_and_hold": float(math.log(segment_close[first + length] / segment_close[first])),
                    }
                )
            run_id += 1
    if not episode_rows:
        raise DataError(
            f"no complete episode of {length} steps fits in any gap-free run of valid rows "
            f"({len(segments)} segment(s), longest {max((e - s for s, e in segments), default=0)} rows)"
        )

    def joined(key: str, dtype: type) -> np.ndarray:
        return np.concatenate(columns[key]).astype(dtype)

    return TrajectorySet(
        config=config,
        feature_names=names,
        transform=transform,
        interval_ns=interval_ns,
        ts=ts,
        close=closes,
        states=states,
        row=joined("row", np.int64),
        action=joined("action", np.int64),
        previous_action=joined("previous", np.int64),
        reward=joined("reward", np.float64),
        return_to_go=joined("rtg", np.float64),
        timestep=joined("time", np.int64),
        episode=joined("episode", np.int64),
        run=joined("run", np.int64),
        episodes=pl.DataFrame(episode_rows),
        segments=segments,
    )


PolicyFunction = Callable[[dict[str, np.ndarray]], np.ndarray]  # model inputs (batch 1) -> logits (1, A)


def rollout(
    policy: PolicyFunction | None,
    states: np.ndarray,
    close: np.ndarray,
    ts: np.ndarray,
    interval_ns: int,
    context: StrategistContext,
    fixed_actions: np.ndarray | None = None,
) -> dict[str, float]:
    """Run a policy bar by bar over one gap-free stretch (scaled states (N, S), closes and ts (N,)) and
    return its realised after-fee log return. `policy` maps model inputs to logits (argmax is taken);
    `fixed_actions` (N,) replays given actions instead (baselines). Every policy, baselines included,
    stays flat until the context holds K bars, so all are scored on the same positions-held bars."""
    if np.any(np.diff(ts) != interval_ns):
        raise DataError("rollout needs a gap-free stretch of bars")
    flat = flat_action(len(context.levels))
    actions = np.empty(len(close), dtype=np.int64)
    for t in range(len(close)):
        inputs = context.observe(states[t], float(close[t]))
        if inputs is None:
            action = flat
        elif fixed_actions is not None:
            action = int(fixed_actions[t])
        elif policy is None:
            action = flat
        else:
            action = int(np.argmax(policy(inputs)[0]))
        context.commit(action)
        actions[t] = action
    positions = context.levels[actions]
    changes = np.abs(np.diff(np.concatenate([[0.0], positions[:-1]])))
    realised = np.asarray(context.realised)  # rewards of bars 1..N-1 (the last position is never settled)
    return {
        "log_return": float(realised.sum()),
        "bars": len(realised),
        "turnover": float(changes.sum()),
        "fees": float(context.taker_fee_rate * changes.sum()),
        "mean_abs_position": float(np.abs(positions[:-1]).mean()) if len(positions) > 1 else 0.0,
        "long_share": float(np.mean(positions[:-1] > 0)) if len(positions) > 1 else 0.0,
        "short_share": float(np.mean(positions[:-1] < 0)) if len(positions) > 1 else 0.0,
    }
