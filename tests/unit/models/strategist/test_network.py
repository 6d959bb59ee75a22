"""The Strategist's network: shapes, causal masking, the action token not feeding its own prediction,
overfitting a tiny batch of real trajectories, ONNX parity, and train_strategist's resume and artifact."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from qa_engine.models.data import FoldConfig
from qa_engine.models.export import onnx_session
from qa_engine.models.export import parity_max_abs_diff
from qa_engine.models.strategist.network import DecisionTransformer
from qa_engine.models.strategist.network import DecisionTransformerConfig
from qa_engine.models.strategist.network import DecisionTransformerPolicy
from qa_engine.models.strategist.network import count_parameters
from qa_engine.models.strategist.train import StrategistTrainConfig
from qa_engine.models.strategist.train import StrategistWindows
from qa_engine.models.strategist.train import export_strategist
from qa_engine.models.strategist.train import strategist_loss
from qa_engine.models.strategist.train import train_strategist
from qa_engine.models.strategist.train import train_strategist_from_config
from qa_engine.models.strategist.trajectories import TrajectoryConfig
from tests.unit.models.strategist.strategist_data import BYBIT_BTC_5M
from tests.unit.models.strategist.strategist_data import STEP_NS
from tests.unit.models.strategist.strategist_data import real_features
from tests.unit.models.strategist.strategist_data import real_trajectories
from tests.unit.models.strategist.strategist_data import scaled_states


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors: one intra-op thread is faster than two on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CONFIG = DecisionTransformerConfig(
    state_dim=7, context_length=6, max_timestep=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0
)


def random_inputs(
    config: DecisionTransformerConfig, batch: int = 3, seed: int = 0
) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    steps = config.context_length
    return {
        "returns_to_go": torch.randn(batch, steps, 1, generator=generator),
        "states": torch.randn(batch, steps, config.state_dim, generator=generator),
        "actions": torch.randint(0, config.n_actions, (batch, steps), generator=generator),
        "timesteps": torch.randint(0, config.max_timestep, (batch, steps), generator=generator),
    }


def sensitive_model(seed: int) -> DecisionTransformer:
    """A model with large random weights (std 0.3 instead of GPT's 0.02): every input visibly moves
    the outputs it may reach, so a masking test cannot pass because effects are tiny."""
    torch.manual_seed(seed)
    model = DecisionTransformer(CONFIG).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    return model


def real_windows(count: int, config: DecisionTransformerConfig) -> dict[str, np.ndarray]:
    trajectories = real_trajectories()
    source = StrategistWindows(trajectories, scaled_states(trajectories), config.context_length)
    picks = np.linspace(0, len(source) - 1, count).round().astype(np.int64)
    return source.batch(picks)


def test_forward_shapes_and_policy_is_the_last_step() -> None:
    torch.manual_seed(0)
    model = DecisionTransformer(CONFIG).eval()
    inputs = random_inputs(CONFIG, batch=4)

    logits = model(**inputs)
    last = DecisionTransformerPolicy(model)(**inputs)

    placeholder = {**inputs, "actions": inputs["actions"].clone()}
    placeholder["actions"][:, -1] = (placeholder["actions"][:, -1] + 1) % CONFIG.n_actions

    assert logits.shape == (4, CONFIG.context_length, CONFIG.n_actions)
    assert last.shape == (4, CONFIG.n_actions)
    torch.testing.assert_close(last, logits[:, -1], rtol=0, atol=1e-6)  # the shortcut computes the same
    torch.testing.assert_close(DecisionTransformerPolicy(model)(**placeholder), last, rtol=0, atol=0)


def test_config_rejects_underived_state_dim_and_bad_heads() -> None:
    with pytest.raises(ValueError, match="state_dim"):
        DecisionTransformer(DecisionTransformerConfig())
    with pytest.raises(ValueError, match="multiple of n_head"):
        DecisionTransformerConfig(state_dim=4, n_embd=30, n_head=4)


@pytest.mark.parametrize("t", [0, 2, 3])
@pytest.mark.parametrize("name", ["returns_to_go", "states", "actions", "timesteps"])
def test_perturbing_steps_after_t_leaves_logits_up_to_t_unchanged(t: int, name: str) -> None:
    model = sensitive_model(1)
    inputs = random_inputs(CONFIG)
    perturbed = {k: v.clone() for k, v in inputs.items()}
    if name in ("actions", "timesteps"):
        upper = CONFIG.n_actions if name == "actions" else CONFIG.max_timestep
        perturbed[name][:, t + 1 :] = (perturbed[name][:, t + 1 :] + 1) % upper
    else:
        perturbed[name][:, t + 1 :] += 3.0

    with torch.no_grad():
        before, after = model(**inputs), model(**perturbed)

    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], rtol=0, atol=1e-6)
    visible = t + 2 if name == "actions" else t + 1  # a_{t+1} first reaches the prediction of a_{t+2}
    assert (after[:, visible] - before[:, visible]).abs().max() > 1e-3  # so this test can fail


@pytest.mark.parametrize("t", [0, 3, 5])
def test_action_token_at_t_does_not_feed_the_prediction_at_t(t: int) -> None:
    model = sensitive_model(2)
    inputs = random_inputs(CONFIG)
    perturbed = {k: v.clone() for k, v in inputs.items()}
    perturbed["actions"][:, t] = (perturbed["actions"][:, t] + 1) % CONFIG.n_actions

    with torch.no_grad():
        before, after = model(**inputs), model(**perturbed)

    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], rtol=0, atol=1e-6)
    if t + 1 < CONFIG.context_length:
        assert (after[:, t + 1] - before[:, t + 1]).abs().max() > 1e-3


def test_tiny_model_overfits_a_tiny_batch_of_real_trajectories() -> None:
    trajectories = real_trajectories()
    config = DecisionTransformerConfig(
        state_dim=trajectories.state_dim,
        context_length=8,
        max_timestep=trajectories.episode_bars,
        n_embd=32,
        dropout=0.0,
    )
    batch = {k: torch.from_numpy(v) for k, v in real_windows(16, config).items()}
    # Random actions as targets: memorising them needs the states and returns, not persistence.
    batch["actions"] = torch.randint(
        0, config.n_actions, batch["actions"].shape, generator=torch.Generator().manual_seed(0)
    )
    torch.manual_seed(3)
    model = DecisionTransformer(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    steps = 150
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1.0 - step / steps)  # linear to 0

    with torch.no_grad():
        first = float(strategist_loss(model, batch))
    for _ in range(steps):
        loss = strategist_loss(model, batch)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        last = float(strategist_loss(model, batch))

    assert last < 0.1 * first, f"loss fell from {first:.3f} to {last:.3f} only"


def test_onnx_export_matches_torch_within_1e5_on_real_windows(tmp_path: Path) -> None:
    trajectories = real_trajectories()
    config = DecisionTransformerConfig(
        state_dim=trajectories.state_dim, max_timestep=trajectories.episode_bars
    )
    torch.manual_seed(4)
    model = DecisionTransformer(config).eval()
    windows = real_windows(32, config)

    exported = export_strategist(model, tmp_path / "model.onnx", windows)
    inputs = {name: windows[name] for name in ("returns_to_go", "states", "actions", "timesteps")}
    policy = DecisionTransformerPolicy(model)
    difference = parity_max_abs_diff(policy, exported.path, inputs)  # int64 actions/timesteps stay int64
    single = {k: v[:1] for k, v in inputs.items()}
    single_difference = parity_max_abs_diff(policy, exported.path, single)
    logits = onnx_session(exported.path).run(
        None, {k: single[k] for k in ("returns_to_go", "states", "actions", "timesteps")}
    )[0]

    assert difference <= 1e-5 and single_difference <= 1e-5
    assert logits.shape == (1, config.n_actions)
    assert [r.name for r in exported.inputs] == ["returns_to_go", "states", "actions", "timesteps"]
    assert [r.dtype for r in exported.inputs] == ["float32", "float32", "int64", "int64"]
    assert exported.inputs[1].shape == ["batch", config.context_length, trajectories.state_dim]
    assert 20_000 < count_parameters(model) < 75_000  # the latency budget's size


def _fold() -> FoldConfig:
    table, _ = real_features()
    ts = table.table.get_column("ts").to_numpy()

    def moment(index: int) -> datetime:
        return datetime.fromtimestamp(int(ts[index]) / 1e9, tz=UTC).replace(tzinfo=None)

    return FoldConfig(
        name="tiny",
        train_start=moment(0),
        validation_start=moment(1_600),
        test_start=moment(2_200),
        test_end=moment(len(ts) - 1),
    )


def _train(run_dir: Path, max_epochs: int, resume: bool):
    from qa_engine.models.training import TrainerConfig

    table, closes = real_features()
    return train_strategist(
        table.table,
        closes,
        DecisionTransformerConfig(context_length=8, n_embd=16, n_head=2, n_layer=1),
        fold=_fold(),
        run_dir=run_dir,
        feature_set=table.feature_set,
        interval_ns=STEP_NS,
        trajectory_config=TrajectoryConfig(episode_bars=64),
        trainer_config=TrainerConfig(
            max_epochs=max_epochs,
            batch_size=64,
            train_windows_per_epoch=256,
            validation_windows=256,
            warmup_steps=2,
            threads=1,
        ),
        resume=resume,
        export=False,
    )


class Interrupted(Exception):
    pass


def test_train_strategist_resumes_to_the_same_weights_as_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qa_engine.models.training as training

    straight = _train(tmp_path / "straight", max_epochs=2, resume=False)

    def interrupt(*args: object, **kwargs: object) -> None:
        raise Interrupted  # after epoch 1's checkpoint is written: a kill between epochs

    with monkeypatch.context() as patch:
        patch.setattr(training, "write_curves", interrupt)
        with pytest.raises(Interrupted):
            _train(tmp_path / "interrupted", max_epochs=2, resume=False)
    resumed = _train(tmp_path / "interrupted", max_epochs=2, resume=True)

    assert resumed.training.resumed_from_epoch == 1
    assert [r.epoch for r in resumed.training.history] == [1, 2]
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0)


def test_a_run_config_trains_exports_and_evaluates_on_the_later_test_range(tmp_path: Path) -> None:
    fold = _fold()
    config = StrategistTrainConfig.model_validate(
        {
            "data": {
                "sources": [{"symbol": "BTCUSDT", "klines": str(BYBIT_BTC_5M)}],
                "interval": "5m",
                "history_bars": 400,
                "folds": [fold.model_dump()],
            },
            "model": {"context_length": 8, "n_embd": 16, "n_head": 2, "n_layer": 1},
            "trainer": {"max_epochs": 1, "batch_size": 64, "train_windows_per_epoch": 256, "threads": 1},
            "episode_bars": 64,
        }
    )

    result = train_strategist_from_config(config, tmp_path)

    manifest = json.loads((tmp_path / "artifact" / "manifest.json").read_text())
    names = manifest["feature_set"]["names"]
    assert result.parity_max_abs_diff is not None and result.parity_max_abs_diff <= 1e-5
    assert manifest["model_kind"] == "strategist"
    from qa_engine.contract.manifest import read_manifest

    parsed = read_manifest(tmp_path / "artifact")  # the shared reader knows the kind
    assert parsed.strategist.context_length == 8 and parsed.window.encoder_bars == 8
    assert names == list(result.trajectories["train"].feature_names) and len(names) == result.config.state_dim
    assert len(manifest["scaler"]["mean"]) == result.config.state_dim
    assert manifest["strategist"]["context_length"] == 8 and manifest["strategist"]["episode_bars"] == 64
    assert manifest["strategist"]["action_positions"] == [-1.0, 0.0, 1.0]
    assert manifest["strategist"]["state_transform"][names.index("sma_5")] == "level"
    assert manifest["training_data"]["last_bar_close"] < fold.validation_start.isoformat() + "Z"
    assert (tmp_path / "curves.csv").exists() and (tmp_path / "curves.png").exists()
    test_range = result.out_of_sample["range"]
    assert test_range["first_bar_close"] >= fold.test_start.isoformat() + "Z"  # evaluated after training
    assert {"flat", "always_long", "always_short"} <= set(result.out_of_sample["policies"])
    assert result.out_of_sample["policies"]["flat"]["log_return"] == 0.0
