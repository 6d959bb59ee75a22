"""The shared trainer: LR schedule, checkpoints, exact resume, early stopping, curves."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from qa_engine.errors import ConfigError  # noqa: E402
from qa_engine.models.oracle.train import oracle_loss  # noqa: E402
from qa_engine.models.training import Trainer  # noqa: E402
from qa_engine.models.training import TrainerConfig  # noqa: E402
from qa_engine.models.training import learning_rate_at  # noqa: E402
from qa_engine.models.training import load_checkpoint  # noqa: E402
from tests.unit.models.oracle_data import tiny_fold  # noqa: E402
from tests.unit.models.oracle_data import tiny_model  # noqa: E402

QUICK = {
    "max_epochs": 4,
    "batch_size": 32,
    "train_windows_per_epoch": 96,
    "validation_windows": 64,
    "warmup_steps": 3,
    "patience_epochs": 10,
    "seed": 11,
}


class Interrupted(Exception):
    pass


def make_trainer(run_dir: Path, model_seed: int = 0, fail_at_step: int | None = None, **overrides) -> Trainer:
    data = tiny_fold()
    model, model_config = tiny_model(data, seed=model_seed)
    loss = oracle_loss(model.config.quantiles)
    calls = {"train": 0}

    def loss_fn(module, batch):
        if module.training:
            calls["train"] += 1
            if fail_at_step is not None and calls["train"] == fail_at_step:
                raise Interrupted  # a crash in the middle of an epoch
        return loss(module, batch)

    return Trainer(model, loss_fn, TrainerConfig(**{**QUICK, **overrides}), run_dir, model_config, "test")


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    config = TrainerConfig(learning_rate=1e-2, min_learning_rate=1e-3, warmup_steps=10)
    rates = [learning_rate_at(step, 110, config) for step in range(111)]

    assert rates[0] == pytest.approx(1e-3)
    assert rates[9] == pytest.approx(1e-2)
    assert rates[110] == pytest.approx(1e-3)
    assert all(later <= earlier + 1e-15 for earlier, later in itertools.pairwise(rates[9:]))


def test_resume_after_a_crash_gives_the_same_weights_as_an_uninterrupted_run(tmp_path: Path) -> None:
    data = tiny_fold()
    straight = make_trainer(tmp_path / "straight")
    straight.fit(data.splits["train"], data.splits["validation"])
    crashed = make_trainer(tmp_path / "resumed", fail_at_step=2 * 3 + 2)  # 3 steps/epoch: inside epoch 3
    with pytest.raises(Interrupted):
        crashed.fit(data.splits["train"], data.splits["validation"])
    assert load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["epoch"] == 2

    resumed = make_trainer(tmp_path / "resumed", model_seed=99)  # fresh weights: all must come from disk
    result = resumed.fit(data.splits["train"], data.splits["validation"], resume=True)

    assert result.resumed_from_epoch == 2
    last_straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    last_resumed = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert last_resumed["epoch"] == last_straight["epoch"] == 4
    for name, tensor in last_straight["model_state"].items():
        assert torch.equal(tensor, last_resumed["model_state"][name]), name
    assert [r["validation_loss"] for r in last_resumed["history"]] == [
        r["validation_loss"] for r in last_straight["history"]
    ]
    for name, tensor in straight.model.state_dict().items():  # both end on the same best weights
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name


def test_checkpoint_carries_config_optimiser_epoch_and_rng_state(tmp_path: Path) -> None:
    data = tiny_fold()
    trainer = make_trainer(tmp_path, max_epochs=1)
    trainer.fit(data.splits["train"], data.splits["validation"])

    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.pt")

    assert checkpoint["epoch"] == 1
    assert checkpoint["trainer_config"]["max_epochs"] == 1
    assert checkpoint["model_config"]["hidden_size"] == 8
    assert checkpoint["optimizer_state"]["state"]  # AdamW moments are saved
    assert set(checkpoint["rng_state"]) >= {"torch", "python"}


def test_resume_refuses_a_checkpoint_made_with_another_config(tmp_path: Path) -> None:
    data = tiny_fold()
    make_trainer(tmp_path, max_epochs=1).fit(data.splits["train"], data.splits["validation"])

    other = make_trainer(tmp_path, max_epochs=1, learning_rate=1e-2)
    with pytest.raises(
        ConfigError, match=r"cannot resume(.|\n)*trainer.learning_rate: checkpoint 0.003, now 0.01"
    ):
        other.fit(data.splits["train"], data.splits["validation"], resume=True)


def test_resume_without_a_checkpoint_says_what_to_do(tmp_path: Path) -> None:
    data = tiny_fold()
    with pytest.raises(ConfigError, match="no checkpoint at .*last.pt; train without --resume first"):
        make_trainer(tmp_path).fit(data.splits["train"], data.splits["validation"], resume=True)


def test_early_stopping_keeps_the_best_epoch(tmp_path: Path) -> None:
    data = tiny_fold()
    model, model_config = tiny_model(data)
    loss = oracle_loss(model.config.quantiles)
    evaluations = {"count": 0}

    def worsening_validation(module, batch):
        if module.training:
            return loss(module, batch)
        evaluations["count"] += 1
        return torch.tensor(float(evaluations["count"]))  # validation loss rises every epoch

    config = TrainerConfig(**{**QUICK, "max_epochs": 8, "patience_epochs": 2})
    trainer = Trainer(model, worsening_validation, config, tmp_path, model_config, "test")

    result = trainer.fit(data.splits["train"], data.splits["validation"])

    assert result.best_epoch == 1
    assert len(result.history) == 3  # epoch 1 best, then two epochs without improvement
    assert result.stopped_early
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")["model_state"]
    for name, tensor in trainer.model.state_dict().items():  # the model ends on epoch 1's weights
        assert torch.equal(tensor, best[name]), name


def test_curves_are_written_every_epoch(tmp_path: Path) -> None:
    data = tiny_fold()
    make_trainer(tmp_path, max_epochs=2).fit(data.splits["train"], data.splits["validation"])

    rows = list(csv.DictReader((tmp_path / "curves.csv").open()))

    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert all(float(row["train_loss"]) > 0 and float(row["validation_loss"]) > 0 for row in rows)
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_cuda_without_a_gpu_is_a_config_error(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="--device cuda: torch sees no CUDA device"):
        make_trainer(tmp_path, device="cuda")


def test_trainer_config_rejects_a_floor_above_the_peak() -> None:
    with pytest.raises(ValueError, match=r"min_learning_rate \(0.1\) <= learning_rate \(0.01\)"):
        TrainerConfig(learning_rate=0.01, min_learning_rate=0.1)
