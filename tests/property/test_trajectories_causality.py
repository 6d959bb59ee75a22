"""Property tests (hypothesis) for the Strategist's offline trajectories: nothing from bar t+1 or later
reaches a state or a behaviour action at step <= t; r_t reads bars t and t+1 and the position change
only; R_t is the suffix sum of rewards within the episode; no step, episode or window crosses a gap.

Data: synthetic random-walk bars (property tests only; the data-driven tests use real bars) with a
small feature set of short warm-ups that has price-level (made relative to close) and raw columns.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from qa_engine.contract.policy_context import action_positions
from qa_engine.contract.policy_context import state_transform_for
from qa_engine.errors import DataError
from qa_engine.features.batch import compute_features_batch
from qa_engine.features.families.returns import log_return_spec
from qa_engine.features.families.returns import realised_volatility_spec
from qa_engine.features.families.returns import zscore_spec
from qa_engine.features.families.technical import bollinger_spec
from qa_engine.features.families.technical import sma_spec
from qa_engine.features.families.technical import williams_r_spec
from qa_engine.features.spec import FeatureSet
from qa_engine.models.strategist.train import StrategistWindows
from qa_engine.models.strategist.trajectories import DEFAULT_BEHAVIOURS
from qa_engine.models.strategist.trajectories import TrajectoryConfig
from qa_engine.models.strategist.trajectories import TrajectorySet
from qa_engine.models.strategist.trajectories import behaviour_uniforms
from qa_engine.models.strategist.trajectories import build_trajectories
from qa_engine.models.strategist.trajectories import gap_free_segments
from qa_engine.models.strategist.trajectories import step_rewards

STEP_NS = 300_000_000_000
START_NS = 1_735_689_600_000_000_000  # 2025-01-01
FEATURES = FeatureSet(
    name="strategist_property",
    version=1,
    specs=(
        sma_spec(5),
        bollinger_spec("upper"),
        log_return_spec(1),
        log_return_spec(5),
        zscore_spec("close", 20),
        williams_r_spec(14),
        realised_volatility_spec(20),
    ),
)
TRANSFORM = state_transform_for(FEATURES)
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def walk(seed: int, count: int, volatility: float) -> pl.DataFrame:
    """Synthetic OHLCV random walk stamped every 5 minutes (bar close times)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, volatility, count)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, volatility / 2, count)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, volatility / 2, count)))
    return pl.DataFrame(
        {
            "ts": START_NS + STEP_NS * np.arange(1, count + 1, dtype=np.int64),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(1.0, 100.0, count),
        }
    )


def perturb_after(bars: pl.DataFrame, t: int, seed: int) -> pl.DataFrame:
    """The same bars up to row t; later rows get other prices and volumes (OHLC kept consistent)."""
    rng = np.random.default_rng(seed)
    later = np.arange(bars.height) > t
    factor = np.where(later, np.exp(rng.normal(0.0, 0.02, bars.height)), 1.0)
    volume = np.where(later, rng.uniform(1.0, 100.0, bars.height), bars.get_column("volume").to_numpy())
    scaled = {c: bars.get_column(c).to_numpy() * factor for c in ("open", "high", "low", "close")}
    scaled["high"] = np.maximum.reduce([scaled["high"], scaled["open"], scaled["close"]])
    scaled["low"] = np.minimum.reduce([scaled["low"], scaled["open"], scaled["close"]])
    return bars.with_columns([pl.Series(c, v) for c, v in {**scaled, "volume": volume}.items()])


def trajectories_of(bars: pl.DataFrame, config: TrajectoryConfig) -> TrajectorySet:
    table = compute_features_batch(bars, FEATURES, STEP_NS)
    return build_trajectories(table, bars.get_column("close").to_numpy(), STEP_NS, config, TRANSFORM)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[pl.DataFrame, TrajectoryConfig, int]:
    count = draw(st.integers(120, 360))
    bars = walk(draw(st.integers(0, 2**31)), count, draw(st.sampled_from([5e-4, 3e-3, 2e-2])))
    config = TrajectoryConfig(
        episode_bars=draw(st.integers(3, 40)),
        taker_fee_rate=draw(st.sampled_from([0.0, 0.0006, 0.002])),
        seed=draw(st.integers(0, 1000)),
    )
    return bars, config, draw(st.integers(25, count - 2))


@SETTINGS
@given(case=scenario(), perturbation_seed=st.integers(0, 2**31))
def test_bars_after_t_leave_states_actions_and_earlier_rewards_unchanged(
    case: tuple[pl.DataFrame, TrajectoryConfig, int], perturbation_seed: int
) -> None:
    bars, config, t = case
    original = trajectories_of(bars, config)
    changed = trajectories_of(perturb_after(bars, t, perturbation_seed), config)

    # The layout (steps, episodes, timesteps) depends on timestamps and warm-up only.
    for name in ("row", "timestep", "episode", "run"):
        np.testing.assert_array_equal(getattr(changed, name), getattr(original, name))
    upto = original.row <= t
    np.testing.assert_array_equal(changed.states[: t + 1], original.states[: t + 1])  # s_0..s_t
    np.testing.assert_array_equal(changed.action[upto], original.action[upto])  # a_0..a_t
    np.testing.assert_array_equal(changed.previous_action[upto], original.previous_action[upto])
    before = original.row < t  # r_{t'} for t' < t reads bars <= t only; r_t reads bar t+1
    np.testing.assert_array_equal(changed.reward[before], original.reward[before])
    # The training windows gather the same inputs for every window that ends at a bar <= t (their
    # returns_to_go differ by design: R_t is the hindsight target, replaced by a chosen one at inference).
    context = 4
    windows = [StrategistWindows(x, np.nan_to_num(x.states), context) for x in (original, changed)]
    np.testing.assert_array_equal(windows[0].starts, windows[1].starts)
    early = np.flatnonzero(original.row[windows[0].starts + context - 1] <= t)
    if len(early):
        first, second = windows[0].batch(early), windows[1].batch(early)
        for name in ("states", "actions", "timesteps"):
            np.testing.assert_array_equal(second[name], first[name])
    # ...and the perturbation is real: some later state differs.
    valid = np.all(np.isfinite(original.states[t + 1 :]), axis=1)
    assert not np.array_equal(changed.states[t + 1 :][valid], original.states[t + 1 :][valid])


@SETTINGS
@given(case=scenario())
def test_behaviour_actions_on_bars_cut_at_t_equal_those_on_the_full_bars(
    case: tuple[pl.DataFrame, TrajectoryConfig, int],
) -> None:
    bars, config, t = case
    close = bars.get_column("close").to_numpy()
    first_ts = int(bars.get_column("ts")[0])
    for index, behaviour in enumerate(DEFAULT_BEHAVIOURS):
        full = behaviour.actions(
            close, behaviour_uniforms(config.seed, index, first_ts, len(close)), config.n_actions
        )
        cut = behaviour.actions(
            close[: t + 1], behaviour_uniforms(config.seed, index, first_ts, t + 1), config.n_actions
        )
        np.testing.assert_array_equal(cut, full[: t + 1], err_msg=behaviour.name)
    cut_table = compute_features_batch(bars.head(t + 1), FEATURES, STEP_NS)
    full_table = compute_features_batch(bars, FEATURES, STEP_NS)
    cut_states = TRANSFORM.apply(cut_table.drop("ts").fill_null(np.nan).to_numpy(), close[: t + 1])
    full_states = TRANSFORM.apply(full_table.drop("ts").fill_null(np.nan).to_numpy()[: t + 1], close[: t + 1])
    np.testing.assert_array_equal(cut_states, full_states)


@SETTINGS
@given(
    seed=st.integers(0, 2**31),
    count=st.integers(3, 60),
    fee=st.sampled_from([0.0, 0.0006, 0.01]),
    initial=st.sampled_from([-1.0, 0.0, 1.0]),
    data=st.data(),
)
def test_reward_reads_bars_t_and_t_plus_1_and_the_position_change_only(
    seed: int, count: int, fee: float, initial: float, data: st.DataObject
) -> None:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, count + 1)))
    positions = action_positions(3)[rng.integers(0, 3, count)]
    t = data.draw(st.integers(0, count - 1))
    others = [j for j in range(count + 1) if j not in (t, t + 1)]

    rewards = step_rewards(close, positions, initial, fee)
    previous = initial if t == 0 else positions[t - 1]
    expected = positions[t] * np.log(close[t + 1] / close[t]) - fee * abs(positions[t] - previous)

    assert np.isclose(rewards[t], expected, rtol=0, atol=1e-15)
    if others:
        moved = close.copy()
        moved[data.draw(st.sampled_from(others))] *= 1.5
        assert step_rewards(moved, positions, initial, fee)[t] == rewards[t]


@SETTINGS
@given(case=scenario(), gaps=st.lists(st.integers(1, 300), max_size=4, unique=True))
def test_rewards_returns_to_go_and_windows_follow_the_definitions_and_never_cross_a_gap(
    case: tuple[pl.DataFrame, TrajectoryConfig, int], gaps: list[int]
) -> None:
    bars, config, _ = case
    keep = np.ones(bars.height, dtype=bool)
    keep[[g for g in gaps if g < bars.height]] = False  # a missing bar is a gap
    gappy = bars.filter(pl.Series(keep))
    try:
        trajectories = trajectories_of(gappy, config)
    except DataError:  # legitimate only if no gap-free run of valid rows holds one episode plus its next bar
        table = compute_features_batch(gappy, FEATURES, STEP_NS)
        valid = np.all(np.isfinite(table.drop("ts").fill_null(np.nan).to_numpy()), axis=1)
        runs = gap_free_segments(table.get_column("ts").to_numpy(), valid, STEP_NS)
        assert all(end - start <= config.episode_bars for start, end in runs)
        return
    ts, close, levels = trajectories.ts, trajectories.close, action_positions(config.n_actions)
    row = trajectories.row
    assert np.all(ts[row + 1] - ts[row] == STEP_NS)  # the bar that settles r_t is the next bar
    position, previous = levels[trajectories.action], levels[trajectories.previous_action]
    expected = position * np.log(close[row + 1] / close[row]) - config.taker_fee_rate * np.abs(
        position - previous
    )
    np.testing.assert_allclose(trajectories.reward, expected, rtol=0, atol=1e-15)
    for episode in np.unique(trajectories.episode):
        steps = np.flatnonzero(trajectories.episode == episode)
        assert len(steps) == config.episode_bars
        assert np.all(np.diff(ts[row[steps]]) == STEP_NS)  # an episode is consecutive bars
        np.testing.assert_array_equal(trajectories.timestep[steps], np.arange(config.episode_bars))
        suffix = np.array([trajectories.reward[steps[k:]].sum() for k in range(len(steps))])
        np.testing.assert_allclose(trajectories.return_to_go[steps], suffix, rtol=0, atol=1e-12)
    for start in trajectories.window_starts(5):
        assert np.all(np.diff(ts[row[start : start + 5]]) == STEP_NS)  # a context window never crosses a gap
