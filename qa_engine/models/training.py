"""A reusable trainer: seeded, AdamW, warm-up + cosine LR (a pure function), early stopping on validation
loss, a checkpoint every epoch that carries its config, optimiser, epoch and RNG state, exact resume,
rich progress, and training curves (CSV + PNG).

Any model plugs in through two things:

- a `BatchSource` per split: `len(source)` windows and `source.batch(indices) -> {name: np.ndarray}`
  (`qa_engine.models.data.WindowedDataset` is one);
- a loss function `loss_fn(model, batch) -> scalar tensor`, with the batch already on the device.

Determinism: the order of training windows in epoch e is a permutation drawn from
numpy's generator seeded with (seed, e), independent of anything that happened before, and dropout
draws from torch's generator, whose state is saved at the end of every epoch. Resuming from the
checkpoint of epoch e therefore replays epochs e+1.. exactly: same batches, same dropout masks, same
weights as an uninterrupted run (tests/unit/models/test_training.py checks it bit for bit on CPU).
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Literal
from typing import Protocol

import numpy as np
import torch
from torch import nn

from qa_engine.errors import ConfigError
from qa_engine.logging import get_logger

CHECKPOINT_FORMAT = 1
log = get_logger("qa_engine.models.training")


class BatchSource(Protocol):
    def __len__(self) -> int: ...

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]: ...


LossFunction = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class TrainerConfig:
    """How to train; what to train is the model's own config."""

    max_epochs: int = 12
    batch_size: int = 256
    learning_rate: float = 3e-3
    min_learning_rate: float = 3e-4  # the cosine schedule ends here
    warmup_steps: int = 50
    weight_decay: float = 1e-4
    grad_clip_norm: float = 1.0  # 0 disables clipping
    patience_epochs: int = 3  # stop after this many epochs without a better validation loss
    train_windows_per_epoch: int | None = 16_384  # a fresh random subset each epoch; None = all
    validation_windows: int | None = 8_192  # a fixed, evenly spaced subset; None = all
    seed: int = 7
    device: Literal["cpu", "cuda"] = "cpu"
    threads: int | None = None  # torch intra-op threads on CPU; None = torch's default

    def __post_init__(self) -> None:
        positive = {
            "max_epochs": self.max_epochs,
            "batch_size": self.batch_size,
            "patience_epochs": self.patience_epochs,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0 < self.min_learning_rate <= self.learning_rate:
            raise ValueError(
                f"need 0 < min_learning_rate ({self.min_learning_rate}) <= learning_rate "
                f"({self.learning_rate})"
            )
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip_norm < 0:
            raise ValueError("warmup_steps, weight_decay and grad_clip_norm must be >= 0")
        for name in ("train_windows_per_epoch", "validation_windows"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")


def learning_rate_at(step: int, total_steps: int, config: TrainerConfig) -> float:
    """Linear warm-up to `learning_rate`, then cosine decay to `min_learning_rate` at `total_steps`."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    decay_steps = max(1, total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_learning_rate + cosine * (config.learning_rate - config.min_learning_rate)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    validation_loss: float
    learning_rate: float
    train_windows: int
    secs: float  # wall time of the epoch (training + validation)
    cpu_secs: float = float(
        "nan"
    )  # CPU time of the process in the epoch (all threads): robust to a busy machine


@dataclass
class TrainingResult:
    history: list[EpochRecord]
    best_epoch: int
    best_validation_loss: float
    stopped_early: bool
    resumed_from_epoch: int
    secs: float  # wall time of this call (a resumed run counts only what it ran)
    checkpoint_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def secs_per_epoch(self) -> float:
        ran = [record.secs for record in self.history if record.epoch > self.resumed_from_epoch]
        return float(np.mean(ran)) if ran else float("nan")

    @property
    def cpu_secs_per_epoch(self) -> float:
        ran = [record.cpu_secs for record in self.history if record.epoch > self.resumed_from_epoch]
        return float(np.mean(ran)) if ran else float("nan")


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: torch sees no CUDA device here (the CPU wheel has none); use cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(payload: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(payload, partial)
    os.replace(partial, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path}; train without --resume first")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"{path}: checkpoint format {checkpoint.get('format')}, expected {CHECKPOINT_FORMAT}"
        )
    return checkpoint


class Trainer:
    """Trains `model` with `loss_fn` on BatchSources; checkpoints and curves go to `run_dir`.

    `model_config` (any JSON-able dict, typically `dataclasses.asdict(config)`) is stored in every
    checkpoint; resuming refuses a checkpoint whose model or trainer config differs.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFunction,
        config: TrainerConfig,
        run_dir: Path,
        model_config: dict[str, Any],
        description: str = "training",
    ) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.run_dir = run_dir
        self.model_config = model_config
        self.description = description
        self.checkpoint_dir = run_dir / "checkpoints"
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or n.endswith("bias")]
        decay = [p for n, p in model.named_parameters() if not (p.ndim < 2 or n.endswith("bias"))]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": config.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=config.learning_rate,
        )

    # ---- batches ---------------------------------------------------------------------------

    def _to_device(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for name, v in batch.items()}

    def epoch_indices(self, epoch: int, count: int) -> np.ndarray:
        """Window positions of epoch `epoch` (1-based): a permutation seeded by (seed, epoch)."""
        order = np.random.default_rng([self.config.seed, epoch]).permutation(count)
        limit = self.config.train_windows_per_epoch
        return order if limit is None else order[:limit]

    def validation_indices(self, count: int) -> np.ndarray:
        limit = self.config.validation_windows
        if limit is None or limit >= count:
            return np.arange(count)
        return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))

    @torch.no_grad()
    def evaluate(self, source: BatchSource, indices: np.ndarray | None = None) -> float:
        """Mean loss over `indices` (default: the validation subset), in eval mode, window-weighted."""
        self.model.eval()
        indices = self.validation_indices(len(source)) if indices is None else indices
        total, count = 0.0, 0
        for start in range(0, len(indices), self.config.batch_size):
            chunk = indices[start : start + self.config.batch_size]
            loss = self.loss_fn(self.model, self._to_device(source.batch(chunk)))
            total += float(loss) * len(chunk)
            count += len(chunk)
        return total / max(count, 1)

    # ---- checkpoints -----------------------------------------------------------------------

    def _checkpoint(
        self, epoch: int, step: int, history: list[EpochRecord], best: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch,
            "step": step,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "rng_state": _rng_state(),
            "history": [asdict(record) for record in history],
            "best": best,
            "trainer_config": asdict(self.config),
            "model_config": self.model_config,
        }

    def _restore(self, checkpoint: dict[str, Any]) -> tuple[int, int, list[EpochRecord], dict[str, Any]]:
        differences = []
        saved_trainer = dict(checkpoint["trainer_config"])
        current_trainer = asdict(self.config)
        for key in sorted(set(saved_trainer) | set(current_trainer)):
            if key != "device" and saved_trainer.get(key) != current_trainer.get(key):
                differences.append(
                    f"trainer.{key}: checkpoint {saved_trainer.get(key)!r}, now {current_trainer.get(key)!r}"
                )
        if checkpoint["model_config"] != self.model_config:
            differences.append(
                f"model config: checkpoint {checkpoint['model_config']}, now {self.model_config}"
            )
        if differences:
            raise ConfigError(
                "cannot resume: the checkpoint was made with a different config:\n  - "
                + "\n  - ".join(differences)
            )
        self.model.load_state_dict(checkpoint["model_state"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        _set_rng_state(checkpoint["rng_state"])
        history = [EpochRecord(**record) for record in checkpoint["history"]]
        return int(checkpoint["epoch"]), int(checkpoint["step"]), history, dict(checkpoint["best"])

    # ---- the loop --------------------------------------------------------------------------

    def fit(self, train: BatchSource, validation: BatchSource, resume: bool = False) -> TrainingResult:
        """Train until max_epochs or early stop; the model ends holding the best validation weights."""
        from qa_engine.cli.console import progress

        config = self.config
        if config.threads is not None and self.device.type == "cpu":
            torch.set_num_threads(config.threads)
        began = time.perf_counter()
        per_epoch = (
            len(train)
            if config.train_windows_per_epoch is None
            else min(len(train), config.train_windows_per_epoch)
        )
        steps_per_epoch = math.ceil(per_epoch / config.batch_size)
        total_steps = steps_per_epoch * config.max_epochs
        epoch, step = 0, 0
        history: list[EpochRecord] = []
        best: dict[str, Any] = {"epoch": 0, "validation_loss": math.inf, "stale_epochs": 0}
        if resume:
            epoch, step, history, best = self._restore(load_checkpoint(self.checkpoint_dir / "last.pt"))
            log.info("training_resumed", run=self.description, from_epoch=epoch, best_epoch=best["epoch"])
        else:
            seed_everything(config.seed)
        resumed_from = epoch
        stopped_early = best["stale_epochs"] >= config.patience_epochs
        with progress(transient=False) as bar:
            task = bar.add_task(self.description, total=steps_per_epoch * max(0, config.max_epochs - epoch))
            while epoch < config.max_epochs and not stopped_early:
                epoch += 1
                started, started_cpu = time.perf_counter(), time.process_time()
                self.model.train()
                indices = self.epoch_indices(epoch, len(train))
                total, count = 0.0, 0
                for start in range(0, len(indices), config.batch_size):
                    chunk = indices[start : start + config.batch_size]
                    rate = learning_rate_at(step, total_steps, config)
                    for group in self.optimizer.param_groups:
                        group["lr"] = rate
                    loss = self.loss_fn(self.model, self._to_device(train.batch(chunk)))
                    if not torch.isfinite(loss):
                        raise RuntimeError(
                            f"{self.description}: loss became {float(loss)} at epoch {epoch}, step {step}"
                        )
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.grad_clip_norm > 0:
                        nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip_norm)
                    self.optimizer.step()
                    step += 1
                    total += float(loss.detach()) * len(chunk)
                    count += len(chunk)
                    bar.update(
                        task, advance=1, description=f"{self.description} epoch {epoch}/{config.max_epochs}"
                    )
                validation_loss = self.evaluate(validation)
                record = EpochRecord(
                    epoch,
                    total / count,
                    validation_loss,
                    rate,
                    count,
                    time.perf_counter() - started,
                    time.process_time() - started_cpu,
                )
                history.append(record)
                if validation_loss < best["validation_loss"]:
                    best = {"epoch": epoch, "validation_loss": validation_loss, "stale_epochs": 0}
                    _atomic_save(
                        {
                            "format": CHECKPOINT_FORMAT,
                            "epoch": epoch,
                            "model_state": self.model.state_dict(),
                            "model_config": self.model_config,
                        },
                        self.checkpoint_dir / "best.pt",
                    )
                else:
                    best["stale_epochs"] += 1
                stopped_early = best["stale_epochs"] >= config.patience_epochs
                _atomic_save(self._checkpoint(epoch, step, history, best), self.checkpoint_dir / "last.pt")
                write_curves(history, self.run_dir, self.description)
                log.info(
                    "epoch_done",
                    run=self.description,
                    epoch=epoch,
                    train_loss=round(record.train_loss, 6),
                    validation_loss=round(validation_loss, 6),
                    best_epoch=best["epoch"],
                    secs=round(record.secs, 1),
                )
        if best["epoch"] > 0:
            self.model.load_state_dict(load_checkpoint(self.checkpoint_dir / "best.pt")["model_state"])
        return TrainingResult(
            history=history,
            best_epoch=int(best["epoch"]),
            best_validation_loss=float(best["validation_loss"]),
            stopped_early=stopped_early and epoch < config.max_epochs,
            resumed_from_epoch=resumed_from,
            secs=time.perf_counter() - began,
            checkpoint_dir=self.checkpoint_dir,
        )


def write_curves(history: list[EpochRecord], run_dir: Path, title: str) -> None:
    """curves.csv (one row per epoch) and curves.png (train/validation loss, learning rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir.mkdir(parents=True, exist_ok=True)
    names = [f for f in EpochRecord.__dataclass_fields__]
    with (run_dir / "curves.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for record in history:
            writer.writerow([getattr(record, name) for name in names])
    epochs = [r.epoch for r in history]
    figure, loss_axis = plt.subplots(figsize=(7, 4))
    loss_axis.plot(epochs, [r.train_loss for r in history], marker="o", label="train")
    loss_axis.plot(epochs, [r.validation_loss for r in history], marker="o", label="validation")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss")
    loss_axis.set_title(title)
    rate_axis = loss_axis.twinx()
    rate_axis.plot(
        epochs, [r.learning_rate for r in history], color="grey", linestyle=":", label="learning rate"
    )
    rate_axis.set_ylabel("learning rate (end of epoch)")
    loss_axis.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(run_dir / "curves.png", dpi=80)
    plt.close(figure)
