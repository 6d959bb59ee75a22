"""The torch-free Strategist runner acts exactly as training's rollout on real bars, and refuses
artifacts it cannot serve."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from qa_engine.errors import ConfigError
from qa_engine.inference.strategist import StrategistPolicy
from tests.unit.inference.strategist_artifact import CONTEXT_LENGTH
from tests.unit.inference.strategist_artifact import strategist_train_config
from tests.unit.inference.strategist_artifact import tiny_strategist_artifact
from tests.unit.inference.strategist_artifact import tiny_strategist_run


@cache
def held_out_rows() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """ts, closes and raw features of the fold's test range, built as training builds them
    (train_strategist_from_config): bars with warm-up history, FFD fitted before validation_start."""
    from qa_engine.features.build import build_feature_table
    from qa_engine.features.sets import get_feature_set
    from qa_engine.models.data import load_source_bars
    from qa_engine.models.data import to_ns

    config = strategist_train_config()
    fold = config.chosen_fold()
    step = config.data.step_ns
    start = to_ns(fold.train_start) - config.data.history_bars * step
    bars = load_source_bars(config.data.sources[0], "5m", start, to_ns(fold.test_end))
    table = build_feature_table(
        bars, get_feature_set("default"), step, train_end_ns=to_ns(fold.validation_start)
    )
    closes = bars.join(table.table.select("ts"), on="ts", how="semi").get_column("close").to_numpy()
    test_start, test_end = fold.bounds_ns("test")
    ts = table.table.get_column("ts").cast(pl.Int64).to_numpy()
    rows = np.flatnonzero((ts >= test_start) & (ts < test_end))
    raw = table.table.select(table.feature_set.names).to_numpy()
    return ts[rows], closes[rows], raw[rows], table.feature_set.hash


def run_policy(policy: StrategistPolicy, ts, closes, raw, target=None) -> tuple[np.ndarray, list]:
    """Bar by bar as a trading process would: observe, act when ready, commit the action (flat until
    the context is full, as rollout does)."""
    actions, probabilities = [], []
    for t in range(len(ts)):
        if policy.observe(raw[t], float(closes[t]), int(ts[t])):
            proposal = policy.act(target)
            action = proposal.action_index
            probabilities.append(proposal.probabilities)
        else:
            action = policy.flat_action
        policy.commit(action)
        actions.append(action)
    return np.asarray(actions), probabilities


def test_runner_loads_without_torch_and_exposes_the_fitted_feature_set():
    folder = tiny_strategist_artifact()
    _, _, _, fitted_hash = held_out_rows()
    policy = StrategistPolicy(folder, interval="5m")
    assert policy.feature_set().hash == fitted_hash == policy.feature_set_hash
    assert policy.context_length == CONTEXT_LENGTH and policy.n_actions == 3
    assert policy.action_positions.tolist() == [-1.0, 0.0, 1.0] and policy.flat_action == 1
    probe = "import sys, qa_engine.inference.strategist, strategies.trinity; print('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[3]
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=root
    )
    assert imported.stdout.strip() == "False"  # trading code never imports torch


@pytest.mark.parametrize("label", ["q0.5", "q0.9", "q0.99"])
def test_runner_realises_the_same_after_fee_return_as_training_evaluate_out_of_sample(label):
    """evaluate_out_of_sample (training side, run by train_strategist) rolled the exported policy over
    the test range; the runner fed the same raw rows bar by bar must realise the same returns."""
    out_of_sample = json.loads((tiny_strategist_run() / "out_of_sample.json").read_text())
    key = next(k for k in out_of_sample["policies"] if k.startswith(f"decision_transformer_target_{label}="))
    expected = out_of_sample["policies"][key]
    assert out_of_sample["segments"] == 1  # the test range is one gap-free run of valid rows
    ts, closes, raw, _ = held_out_rows()
    policy = StrategistPolicy(tiny_strategist_artifact(), target_return=label)

    actions, _ = run_policy(policy, ts, closes, raw)

    realised = np.asarray(policy.context.realised)
    positions = policy.action_positions[actions]
    assert len(realised) == expected["bars"] == len(ts) - 1
    assert realised.sum() == pytest.approx(expected["log_return"], rel=0, abs=1e-12)
    assert np.abs(np.diff(np.concatenate([[0.0], positions[:-1]]))).sum() == expected["turnover"]
    assert np.mean(positions[:-1] > 0) == pytest.approx(expected["long_share"], abs=1e-12)
    assert policy.calls == len(ts) - (CONTEXT_LENGTH - 1)


def test_runner_actions_and_probabilities_equal_trajectories_rollout_bar_by_bar():
    """trajectories.rollout with the exported graph (training's session) on states transformed and
    scaled in one batch, recording every action; the runner builds each state from its raw row."""
    from qa_engine.contract.policy_context import StateTransform
    from qa_engine.contract.policy_context import StrategistContext
    from qa_engine.models.export import onnx_session
    from qa_engine.models.strategist.trajectories import rollout

    ts, closes, raw, _ = held_out_rows()
    policy = StrategistPolicy(tiny_strategist_artifact())
    section, scaler = policy.section, policy.scaler
    transform = StateTransform(policy.feature_names, tuple(section.state_transform))
    states = scaler.transform(np.nan_to_num(transform.apply(raw, closes))).astype(np.float32)
    session = onnx_session(policy.artifact.model_path)
    logits_seen = []

    def recording(inputs):
        logits = session.run(None, inputs)[0]
        logits_seen.append(logits[0].copy())
        return logits

    context = StrategistContext(
        section.context_length,
        len(policy.feature_names),
        len(section.action_positions),
        section.episode_bars,
        section.target_return,
        section.rtg_scale,
        section.taker_fee_rate,
    )
    outcome = rollout(recording, states, closes, ts, policy.interval_ns, context)
    expected_actions = np.concatenate(
        [np.full(CONTEXT_LENGTH - 1, policy.flat_action), np.argmax(np.asarray(logits_seen), axis=1)]
    )

    actions, probabilities = run_policy(policy, ts, closes, raw)

    per_bar = np.stack([policy.state(raw[t], float(closes[t])) for t in range(len(ts))])
    assert np.array_equal(per_bar, states)  # the runner's s_t, bit for bit
    assert np.array_equal(actions, expected_actions)
    assert len(set(actions.tolist())) == 3  # the comparison covers short, flat and long
    logits = np.asarray(logits_seen, dtype=np.float64)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    assert np.allclose(np.asarray(probabilities), softmax, rtol=0, atol=1e-12)
    assert sum(policy.context.realised) == pytest.approx(outcome["log_return"], rel=0, abs=1e-12)


def test_act_with_another_target_equals_a_context_that_started_at_that_target():
    ts, closes, raw, _ = held_out_rows()
    target = 0.05
    shifted = StrategistPolicy(tiny_strategist_artifact())  # default target, asked for 0.05 per call
    native = StrategistPolicy(tiny_strategist_artifact(), target_return=target)
    assert shifted.target_return != target
    for t in range(120):
        ready = shifted.observe(raw[t], float(closes[t]), int(ts[t]))
        assert native.observe(raw[t], float(closes[t]), int(ts[t])) == ready
        action = shifted.flat_action
        if ready:
            a, b = shifted.act(target), native.act()
            assert a.action_index == b.action_index
            assert np.allclose(a.probabilities, b.probabilities, rtol=0, atol=1e-6)
            action = b.action_index
        shifted.commit(action)
        native.commit(action)


def test_a_gap_or_a_warm_up_row_resets_the_context():
    ts, closes, raw, _ = held_out_rows()
    policy = StrategistPolicy(tiny_strategist_artifact())
    for t in range(CONTEXT_LENGTH):
        ready = policy.observe(raw[t], float(closes[t]), int(ts[t]))
        policy.commit(policy.nearest_action(1.0))
    assert ready and policy.position == 1.0

    gap = CONTEXT_LENGTH + 3  # skip three bars: the next observe starts a fresh, flat context
    assert not policy.observe(raw[gap], float(closes[gap]), int(ts[gap]))
    assert policy.position == 0.0 and policy.context.seen == 1
    policy.commit(policy.flat_action)
    assert not policy.observe(np.full(len(policy.feature_names), np.nan), float(closes[gap + 1]))
    assert policy.context.seen == 0
    for t in range(gap + 2, gap + 2 + CONTEXT_LENGTH - 1):
        assert not policy.observe(raw[t], float(closes[t]), int(ts[t]))
        policy.commit(policy.flat_action)
    assert policy.observe(raw[gap + 1 + CONTEXT_LENGTH], float(closes[gap + 1 + CONTEXT_LENGTH]))
    with pytest.raises(RuntimeError, match="observe"):
        StrategistPolicy(tiny_strategist_artifact()).act()


def test_refuses_another_feature_set_interval_or_model_kind(repo_root, tmp_path):
    from qa_engine.features.sets import default_feature_set

    folder = tiny_strategist_artifact()
    with pytest.raises(ConfigError, match="registered set before fitting"):
        StrategistPolicy(folder, expected_feature_set=default_feature_set())
    with pytest.raises(ConfigError, match="trained on 5m bars"):
        StrategistPolicy(folder, interval="1m")
    with pytest.raises(ConfigError, match="not 'strategist'"):
        StrategistPolicy(repo_root / "artifacts" / "oracle")
    with pytest.raises(ConfigError, match="not one of the artifact's choices"):
        StrategistPolicy(folder, target_return="q0.42")
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "model.onnx").write_bytes((broken / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(ConfigError, match="sha256"):
        StrategistPolicy(broken)


@pytest.mark.parametrize(
    "label",
    [pytest.param("q0.5", marks=pytest.mark.slow), "q0.9", pytest.param("q0.99", marks=pytest.mark.slow)],
)
def test_runner_reproduces_the_committed_strategist_out_of_sample_rollouts(label, repo_root):
    """The committed artifacts/strategist: its config.toml rebuilt into features exactly as
    train_strategist_from_config does, the runner fed bar by bar over the test range (14,316 bars of
    2026) realises the returns its out_of_sample.json records (5-10 s per target; the default target
    q0.9 runs in the default suite)."""
    from qa_engine.config.loader import load_config
    from qa_engine.features.build import build_feature_table
    from qa_engine.features.sets import get_feature_set
    from qa_engine.models.data import load_source_bars
    from qa_engine.models.data import to_ns
    from qa_engine.models.strategist.train import StrategistTrainConfig

    folder = repo_root / "artifacts" / "strategist"
    config = load_config(StrategistTrainConfig, folder / "config.toml")
    fold = config.chosen_fold()
    step = config.data.step_ns
    source = config.data.sources[0].model_copy(
        update={"klines": (repo_root / config.data.sources[0].klines).resolve()}
    )
    start = to_ns(fold.train_start) - config.data.history_bars * step
    bars = load_source_bars(source, config.data.interval, start, to_ns(fold.test_end))
    table = build_feature_table(
        bars, get_feature_set(config.data.feature_set), step, train_end_ns=to_ns(fold.validation_start)
    )
    policy = StrategistPolicy(folder, expected_feature_set=table.feature_set, target_return=label)
    closes = bars.join(table.table.select("ts"), on="ts", how="semi").get_column("close").to_numpy()
    ts = table.table.get_column("ts").cast(pl.Int64).to_numpy()
    rows = np.flatnonzero((ts >= fold.bounds_ns("test")[0]) & (ts < fold.bounds_ns("test")[1]))
    raw = table.table.select(table.feature_set.names).to_numpy()

    actions, _ = run_policy(policy, ts[rows], closes[rows], raw[rows])

    recorded = json.loads((folder / "out_of_sample.json").read_text())["policies"]
    expected = next(v for k, v in recorded.items() if k.startswith(f"decision_transformer_target_{label}="))
    positions = policy.action_positions[actions]
    assert sum(policy.context.realised) == pytest.approx(expected["log_return"], rel=0, abs=1e-9)
    assert np.abs(np.diff(np.concatenate([[0.0], positions[:-1]]))).sum() == expected["turnover"]
    assert np.mean(positions[:-1] < 0) == pytest.approx(expected["short_share"], abs=1e-12)


def test_a_sparse_act_reads_the_context_every_bar_would_have_built():
    """observe() defers the state and buffer work to act(): at every act(), after any number of bars
    without one (committed long, short or flat), the model inputs, the realised rewards and the
    return-to-go equal those of a context fed eagerly bar by bar (the pre-deferral behaviour)."""
    from qa_engine.contract.policy_context import StrategistContext

    ts, closes, raw, _ = held_out_rows()
    policy = StrategistPolicy(tiny_strategist_artifact())
    section = policy.section
    eager = StrategistContext(
        section.context_length,
        len(policy.feature_names),
        policy.n_actions,
        section.episode_bars,
        policy.target_return,
        section.rtg_scale,
        section.taker_fee_rate,
    )
    rng = np.random.default_rng(19)
    gaps = iter(rng.integers(0, 3 * CONTEXT_LENGTH, size=len(ts)))  # bars between two act() calls
    next_act, acted = CONTEXT_LENGTH + next(gaps), 0
    for t in range(min(len(ts), 12 * CONTEXT_LENGTH)):
        ready = policy.observe(raw[t], float(closes[t]), int(ts[t]))
        inputs = eager.observe(policy.state(raw[t], float(closes[t])), float(closes[t]))
        assert ready == (inputs is not None)
        if ready and t >= next_act:
            policy.act()
            for name, expected in inputs.items():
                np.testing.assert_array_equal(policy._inputs[name], expected, err_msg=f"{name} at bar {t}")
            next_act, acted = t + 1 + next(gaps), acted + 1
        action = int(rng.integers(policy.n_actions))
        policy.commit(action)
        eager.commit(action)
        assert policy.position == eager.position
    assert acted >= 5
    assert policy.context.realised == eager.realised and policy.context.rtg == eager.rtg
    assert policy.context.seen == eager.seen
