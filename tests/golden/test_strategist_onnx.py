"""Golden checks of the Strategist's ONNX path.

1. torch and onnxruntime agree within 1e-5 (the shared `parity_max_abs_diff`, int64 actions and
   timesteps fed as int64) for the default-size Decision Transformer on real default-feature states,
   batch 1 and a batch of 32.
2. The committed artifact (artifacts/strategist) loads through the shared loader against its fitted
   feature set and, replayed bar by bar on real bars up to a fixed time (states from the manifest's
   transform and scaler, the manifest's default target return), still takes the reviewed actions and
   gives the reviewed last logits in tests/golden/strategist_artifact_actions.json (regenerate after
   retraining the artifact: pytest tests/golden --regen-golden).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from qa_engine.contract.policy_context import StateTransform
from qa_engine.contract.policy_context import StrategistContext
from qa_engine.features.build import build_feature_table
from qa_engine.features.sets import default_feature_set
from qa_engine.inference.artifact import load_artifact
from qa_engine.inference.scaling import FeatureScaler
from tests.unit.models.oracle_data import STEP_NS
from tests.unit.models.oracle_data import bars_from

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = REPO_ROOT / "artifacts" / "strategist"
GOLDEN = Path(__file__).with_name("strategist_artifact_actions.json")
GOLDEN_END = "2026-02-01T00:00:00"  # bar close time of the last replayed bar (UTC)
REPLAYED_BARS = 288  # one episode


def test_default_size_strategist_torch_and_onnxruntime_agree_within_1e_5(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from qa_engine.contract.policy_context import state_transform_for
    from qa_engine.models.export import parity_max_abs_diff
    from qa_engine.models.strategist.network import DecisionTransformer
    from qa_engine.models.strategist.network import DecisionTransformerConfig
    from qa_engine.models.strategist.network import DecisionTransformerPolicy
    from qa_engine.models.strategist.train import export_strategist

    bars = bars_from("2025-06-01T00:00:00", 1_500)
    table = build_feature_table(bars, default_feature_set(), STEP_NS)
    closes = bars.join(table.table.select("ts"), on="ts", how="semi").get_column("close").to_numpy()
    raw = table.table.select(table.feature_set.names).to_numpy()
    states = state_transform_for(table.feature_set).apply(raw, closes)
    states = (
        (states - states.mean(axis=0)) / np.where(states.std(axis=0) > 0, states.std(axis=0), 1.0)
    ).clip(-8, 8)
    config = DecisionTransformerConfig(state_dim=states.shape[1])
    steps = config.context_length
    rng = np.random.default_rng(1)
    starts = np.linspace(0, len(states) - steps, 32).round().astype(np.int64)
    inputs = {
        "returns_to_go": rng.normal(0.0, 1.0, (32, steps, 1)).astype(np.float32),
        "states": states[starts[:, None] + np.arange(steps)].astype(np.float32),  # (32, K, 52) real states
        "actions": rng.integers(0, config.n_actions, (32, steps)),  # int64
        "timesteps": (starts[:, None] + np.arange(steps)) % config.max_timestep,  # int64
    }
    torch.manual_seed(6)
    model = DecisionTransformer(config).eval()

    exported = export_strategist(model, tmp_path / "s.onnx", {k: v[:1] for k, v in inputs.items()})
    policy = DecisionTransformerPolicy(model)

    assert [r.dtype for r in exported.inputs] == ["float32", "float32", "int64", "int64"]
    assert parity_max_abs_diff(policy, exported.path, {k: v[:1] for k, v in inputs.items()}) <= 1e-5
    assert parity_max_abs_diff(policy, exported.path, inputs) <= 1e-5


def test_committed_artifact_still_takes_the_reviewed_actions(regen_golden: bool) -> None:
    if not (ARTIFACT / "manifest.json").exists():
        pytest.skip("no committed Strategist artifact")
    from qa_engine.models.trinity_evaluation import ort_session

    inspected = load_artifact(ARTIFACT, interval="5m")
    inspected.check_registered(default_feature_set())
    artifact = load_artifact(ARTIFACT, expected_feature_set=inspected.feature_set(), window_bars=20)
    manifest = artifact.manifest
    section = manifest.strategist
    names = tuple(manifest.feature_set.names)
    bars = bars_from("2026-01-20T00:00:00", 3_500)
    bars = bars.filter(pl.col("ts") <= int(np.datetime64(GOLDEN_END, "ns").astype(np.int64)))
    table = build_feature_table(bars, artifact.feature_set(), STEP_NS)
    assert table.feature_set.hash == manifest.feature_set.hash
    closes = bars.join(table.table.select("ts"), on="ts", how="semi").get_column("close").to_numpy()
    raw = table.table.select(list(names)).to_numpy()
    scaler = FeatureScaler(
        names, np.asarray(manifest.scaler.mean), np.asarray(manifest.scaler.std), manifest.scaler.clip
    )
    states = scaler.transform(
        StateTransform(names, tuple(section.state_transform)).apply(raw, closes)
    ).astype(np.float32)
    session = ort_session(artifact.model_path, threads=1)

    def replay(target: float) -> tuple[list[int], np.ndarray | None]:
        """The policy bar by bar over the last REPLAYED_BARS bars, from an empty context."""
        context = StrategistContext(
            section.context_length,
            states.shape[1],
            len(section.action_positions),
            section.episode_bars,
            target,
            section.rtg_scale,
            section.taker_fee_rate,
        )
        actions, logits = [], None
        for t in range(len(states) - REPLAYED_BARS, len(states)):
            inputs = context.observe(states[t], float(closes[t]))
            logits = None if inputs is None else session.run(None, inputs)[0][0]
            action = 1 if logits is None else int(np.argmax(logits))
            context.commit(action)
            actions.append(action)
        return actions, logits

    replays = {label: replay(target) for label, target in section.target_return_choices.items()}
    actions, logits = replay(section.target_return)

    assert logits is not None and logits.shape == (len(section.action_positions),)
    record = {
        "model_sha256": manifest.model_sha256,
        "end": GOLDEN_END,
        "actions": actions,
        "last_logits": np.asarray(logits).round(6).tolist(),
        "actions_by_target": {label: replayed for label, (replayed, _) in replays.items()},
    }
    if regen_golden:
        GOLDEN.write_text(json.dumps(record, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert golden["model_sha256"] == record["model_sha256"], "artifact retrained: run pytest --regen-golden"
    assert actions == golden["actions"]
    assert record["actions_by_target"] == golden["actions_by_target"]
    np.testing.assert_allclose(logits, golden["last_logits"], rtol=0, atol=1e-5)
