"""Strategist trajectories on real bars: state transform, gaps in real data, epsilon noise, the training
windows, and the inference context reproducing the training reward and return-to-go accounting."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import numpy as np
import polars as pl

from qa_engine.contract.policy_context import StrategistContext
from qa_engine.contract.policy_context import action_positions
from qa_engine.contract.policy_context import state_transform_for
from qa_engine.features.build import build_feature_table
from qa_engine.features.families.returns import log_return_spec
from qa_engine.features.families.technical import sma_spec
from qa_engine.features.spec import FeatureSet
from qa_engine.models.strategist.train import StrategistWindows
from qa_engine.models.strategist.trajectories import Behaviour
from qa_engine.models.strategist.trajectories import RandomPersistentPolicy
from qa_engine.models.strategist.trajectories import TrajectoryConfig
from qa_engine.models.strategist.trajectories import behaviour_uniforms
from qa_engine.models.strategist.trajectories import build_trajectories
from qa_engine.models.strategist.trajectories import rollout
from tests.unit.models.strategist.strategist_data import STEP_NS
from tests.unit.models.strategist.strategist_data import real_bars
from tests.unit.models.strategist.strategist_data import real_features
from tests.unit.models.strategist.strategist_data import real_trajectories
from tests.unit.models.strategist.strategist_data import scaled_states


def test_state_transform_makes_price_columns_relative_to_the_same_close() -> None:
    table, closes = real_features()
    transform = state_transform_for(table.feature_set)
    raw = table.table.select(table.feature_set.names).to_numpy()
    names = list(table.feature_set.names)

    states = transform.apply(raw, closes)

    sma, macd, rsi = names.index("sma_5"), names.index("macd"), names.index("rsi_14")
    np.testing.assert_allclose(states[:, sma], raw[:, sma] / closes - 1.0, rtol=1e-12)
    np.testing.assert_allclose(states[:, macd], raw[:, macd] / closes, rtol=1e-12)
    np.testing.assert_array_equal(states[:, rsi], raw[:, rsi])
    assert np.abs(states[:, sma]).max() < 0.05  # BTC 5m: SMA5 within 5% of the close
    assert {"level", "difference", "raw"} == set(transform.kinds)


def test_real_bars_with_a_gap_give_episodes_that_never_cross_it() -> None:
    # Binance spot ETHUSDT 5m has no bars 2023-03-24 12:35 .. 14:00 (the spot trading halt).
    bars = real_bars("binance_spot_ETHUSDT_5m", rows=1_250, start="2023-03-22T10:40")  # from 600 bars before
    gap_ns = int(datetime(2023, 3, 24, 12, 40, tzinfo=UTC).timestamp() * 1e9)
    around = bars.filter((pl.col("ts") > gap_ns - 600 * STEP_NS) & (pl.col("ts") < gap_ns + 600 * STEP_NS))
    features = FeatureSet("gap_test", 1, (sma_spec(5), log_return_spec(1)))
    table = build_feature_table(around, features, STEP_NS)
    closes = around.join(table.table.select("ts"), on="ts", how="semi").get_column("close").to_numpy()

    trajectories = build_trajectories(
        table.table, closes, STEP_NS, TrajectoryConfig(episode_bars=48), state_transform_for(features)
    )

    ts, row = trajectories.ts, trajectories.row
    assert table.segments == 2 and len(trajectories.segments) == 2
    assert np.all(ts[row + 1] - ts[row] == STEP_NS)
    starts = trajectories.window_starts(20)
    assert np.all(ts[row[starts + 19]] - ts[row[starts]] == 19 * STEP_NS)
    assert trajectories.run.max() + 1 == 2 * len(
        TrajectoryConfig().behaviours
    )  # each behaviour, each segment


def test_epsilon_noise_replaces_about_epsilon_of_the_actions() -> None:
    close = real_bars()["close"].to_numpy()
    quiet, noisy = Behaviour(RandomPersistentPolicy(0.0), 0.0), Behaviour(RandomPersistentPolicy(0.0), 0.2)
    uniforms = behaviour_uniforms(0, 0, 0, len(close))

    assert np.all(quiet.actions(close, uniforms, 3) == 1)  # never switches: flat throughout
    changed = np.mean(noisy.actions(close, uniforms, 3) != 1)
    assert abs(changed - 0.2 * 2 / 3) < 0.03  # a noisy draw lands on flat 1/3 of the time


def test_training_windows_gather_the_steps_in_order() -> None:
    trajectories = real_trajectories()
    scaled = scaled_states(trajectories)
    windows = StrategistWindows(trajectories, scaled, context_length=10)
    picks = np.array([0, len(windows) // 2, len(windows) - 1])

    batch = windows.batch(picks)

    steps = windows.starts[picks][:, None] + np.arange(10)
    np.testing.assert_array_equal(batch["states"], scaled[trajectories.row[steps]].astype(np.float32))
    np.testing.assert_array_equal(batch["actions"], trajectories.action[steps])
    np.testing.assert_array_equal(batch["timesteps"], trajectories.timestep[steps])
    np.testing.assert_allclose(
        batch["returns_to_go"][..., 0], trajectories.return_to_go[steps] / 0.01, rtol=1e-6
    )
    assert np.all(np.diff(trajectories.row[steps], axis=1) == 1)


def test_inference_context_reproduces_the_training_rewards_and_returns_to_go() -> None:
    trajectories = real_trajectories()
    config = trajectories.config
    run = np.flatnonzero(trajectories.run == 2)  # one behaviour over the whole segment
    episodes = trajectories.episodes.filter(pl.col("run") == 2).get_column("return").to_numpy()
    context = StrategistContext(
        4, trajectories.state_dim, 3, config.episode_bars, 0.0, config.rtg_scale, config.taker_fee_rate
    )
    seen_rtg = []

    for k, step in enumerate(run):
        if k % config.episode_bars == 0:  # condition each episode on what it will realise
            context.target_return = episodes[k // config.episode_bars]
        context.observe(np.zeros(trajectories.state_dim), float(trajectories.close[trajectories.row[step]]))
        seen_rtg.append(context.returns[-1, 0] * config.rtg_scale)
        context.commit(int(trajectories.action[step]))

    np.testing.assert_allclose(context.realised, trajectories.reward[run][:-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(seen_rtg, trajectories.return_to_go[run], rtol=0, atol=1e-6)


def test_rollout_of_fixed_actions_scores_them_like_the_trajectories() -> None:
    trajectories = real_trajectories()
    config = trajectories.config
    rows = np.arange(200, 800)
    levels = action_positions(3)
    actions = np.tile([2, 2, 1, 0, 0, 1], 100)

    outcome = rollout(
        None,
        np.zeros((len(rows), trajectories.state_dim)),
        trajectories.close[rows],
        trajectories.ts[rows],
        STEP_NS,
        StrategistContext(
            1, trajectories.state_dim, 3, config.episode_bars, 0.0, config.rtg_scale, config.taker_fee_rate
        ),
        fixed_actions=actions,
    )

    close = trajectories.close[rows]
    positions = levels[actions][:-1]
    previous = np.concatenate([[0.0], positions[:-1]])
    expected = positions * np.diff(np.log(close)) - config.taker_fee_rate * np.abs(positions - previous)
    assert np.isclose(outcome["log_return"], expected.sum(), rtol=0, atol=1e-12)
    assert outcome["turnover"] == np.abs(positions - previous).sum()
