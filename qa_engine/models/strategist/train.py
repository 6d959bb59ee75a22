"""Training, export and out-of-sample evaluation of the Strategist (Decision Transformer).

`train_strategist` takes a feature table and the closes of the same bars, cuts it by one walk-forward
fold (train / validation / test by bar close time), builds behaviour trajectories inside each split
separately (so no episode, reward or return-to-go crosses a split boundary: the last bar of a split is
never a step, its close only settles the step before), standardises states with statistics of the
training split's rows only, trains with the shared `Trainer` (seeded, early stopping on the validation
split, checkpoint every epoch and exact resume, curves CSV + PNG, rich progress), exports the
inference wrapper to ONNX and checks torch-vs-onnxruntime parity, writes `manifest.json`, and, when
asked, rolls the exported policy out bar by bar over the test split (never seen in training or early
stopping) next to baselines measured on the same bars.

Objective: cross-entropy of the behaviour action at every step of every K-step window, i.e. plain
return-conditioned behaviour cloning (the Decision Transformer). `ReturnWeighting("exponential")`
optionally weighs each step by exp((G - G_max) / temperature) of its episode's total return G
(normalised to mean 1), which leans the cloning toward the better episodes (in the spirit of
filtered / advantage-weighted BC). The default is "none": the return conditioning alone is supposed
to separate good from bad behaviour, and weighting would bias the learnt action distribution toward
episodes that were lucky, which in a noisy market is most of what a high realised return means.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Any
from typing import Literal

import numpy as np
import polars as pl
import torch
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator
from torch import nn
from torch.nn import functional as F

from qa_engine.contract.policy_context import StateTransform
from qa_engine.contract.policy_context import action_positions
from qa_engine.contract.policy_context import state_transform_for
from qa_engine.contract.strategist import StrategistSection
from qa_engine.data.klines import interval_text
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.features.spec import FeatureSet
from qa_engine.inference.scaling import FeatureScaler
from qa_engine.inference.scaling import fit_feature_scaler
from qa_engine.logging import get_logger
from qa_engine.models.data import DatasetConfig
from qa_engine.models.data import FoldConfig
from qa_engine.models.data import iso
from qa_engine.models.data import to_ns
from qa_engine.models.export import OnnxExport
from qa_engine.models.export import code_record
from qa_engine.models.export import export_onnx
from qa_engine.models.export import feature_set_record
from qa_engine.models.export import onnx_session
from qa_engine.models.export import parity_max_abs_diff
from qa_engine.models.export import scaler_record
from qa_engine.models.strategist.network import INPUT_NAMES
from qa_engine.models.strategist.network import OUTPUT_NAME
from qa_engine.models.strategist.network import DecisionTransformer
from qa_engine.models.strategist.network import DecisionTransformerConfig
from qa_engine.models.strategist.network import DecisionTransformerPolicy
from qa_engine.models.strategist.network import count_parameters
from qa_engine.models.strategist.trajectories import TrajectoryConfig
from qa_engine.models.strategist.trajectories import TrajectorySet
from qa_engine.models.strategist.trajectories import build_trajectories
from qa_engine.models.training import Trainer
from qa_engine.models.training import TrainerConfig
from qa_engine.models.training import TrainingResult

log = get_logger("qa_engine.models.strategist.train")
ARTIFACT_FOLDER = "artifact"
PARITY_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ReturnWeighting:
    """Per-step loss weights from the episode's total return (see the module docstring)."""

    kind: Literal["none", "exponential"] = "none"
    temperature: float = 0.01  # in log-return units of an episode's total return

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    def weights(self, trajectories: TrajectorySet) -> np.ndarray:
        """(N,) float32 weights with mean 1 over the steps."""
        if self.kind == "none":
            return np.ones(len(trajectories), dtype=np.float32)
        totals = trajectories.episodes.get_column("return").to_numpy()  # (episodes,)
        per_step = np.exp((totals - totals.max()) / self.temperature)[trajectories.episode]  # (N,)
        return (per_step / per_step.mean()).astype(np.float32)


class StrategistWindows:
    """A `BatchSource` of K-step windows of one split: `batch(indices)` -> model inputs, targets, weights."""

    def __init__(
        self,
        trajectories: TrajectorySet,
        scaled_states: np.ndarray,
        context_length: int,
        weights: np.ndarray | None = None,
    ) -> None:
        self.trajectories = trajectories
        self.scaled_states = scaled_states.astype(np.float32)  # (R, S)
        self.starts = trajectories.window_starts(context_length)  # (M,)
        self.offsets = np.arange(context_length, dtype=np.int64)  # (K,)
        self.rtg = (trajectories.return_to_go / trajectories.config.rtg_scale).astype(np.float32)  # (N,)
        self.weights = (
            np.ones(len(trajectories), np.float32) if weights is None else weights.astype(np.float32)
        )

    def __len__(self) -> int:
        return len(self.starts)

    def steps(self, indices: np.ndarray) -> np.ndarray:
        return self.starts[indices][:, None] + self.offsets  # (B, K) step positions

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        steps = self.steps(indices)  # (B, K)
        trajectories = self.trajectories
        return {
            "returns_to_go": self.rtg[steps][..., None],  # (B, K, 1)
            "states": self.scaled_states[trajectories.row[steps]],  # (B, K, S)
            "actions": trajectories.action[steps],  # (B, K)
            "timesteps": trajectories.timestep[steps],  # (B, K)
            "weights": self.weights[steps],  # (B, K)
        }


def strategist_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Weighted cross-entropy of the behaviour action at every step: logits (B, K, A) vs actions (B, K)."""
    logits = model(batch["returns_to_go"], batch["states"], batch["actions"], batch["timesteps"])  # (B, K, A)
    losses = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), batch["actions"].reshape(-1), reduction="none"
    )
    return (losses * batch["weights"].reshape(-1)).mean()


@torch.no_grad()
def action_metrics(
    model: DecisionTransformer, source: StrategistWindows, batch_size: int = 512
) -> dict[str, float]:
    """Unweighted loss and accuracy over every window of `source`, at all steps and at the last step,
    next to two floors to beat: always the most frequent action, and "repeat the previous action"
    (behaviour policies mostly hold their position, so persistence alone is very accurate)."""
    model.eval()
    total_loss, correct, correct_last, count, windows = 0.0, 0, 0, 0, 0
    for start in range(0, len(source), batch_size):
        batch = {
            k: torch.from_numpy(v)
            for k, v in source.batch(np.arange(start, min(len(source), start + batch_size))).items()
        }
        logits = model(
            batch["returns_to_go"], batch["states"], batch["actions"], batch["timesteps"]
        )  # (B, K, A)
        predicted = logits.argmax(dim=-1)  # (B, K)
        total_loss += float(
            F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch["actions"].reshape(-1), reduction="sum"
            )
        )
        correct += int((predicted == batch["actions"]).sum())
        correct_last += int((predicted[:, -1] == batch["actions"][:, -1]).sum())
        count += predicted.numel()
        windows += predicted.shape[0]
    steps = source.steps(np.arange(len(source)))
    actions = source.trajectories.action[steps]  # (M, K)
    frequencies = np.bincount(actions.reshape(-1), minlength=model.config.n_actions)
    return {
        "loss": total_loss / max(count, 1),
        "accuracy": correct / max(count, 1),
        "accuracy_last_step": correct_last / max(windows, 1),
        "majority_accuracy": float(frequencies.max() / max(frequencies.sum(), 1)),
        "persistence_accuracy_last_step": float(
            np.mean(actions[:, -1] == source.trajectories.previous_action[steps[:, -1]])
        ),
        "windows": float(windows),
    }


# ---- manifest section ---------------------------------------------------------------------------


# StrategistSection lives in the torch-free qa_engine.contract.strategist (inference reads it).


# ---- the entry point ---------------------------------------------------------------------------


@dataclass
class StrategistResult:
    model: DecisionTransformer
    config: DecisionTransformerConfig
    training: TrainingResult
    scaler: FeatureScaler
    trajectories: dict[str, TrajectorySet]
    validation_metrics: dict[str, float]
    artifact_dir: Path | None
    parity_max_abs_diff: float | None
    target_returns: dict[str, float]
    out_of_sample: dict[str, Any] = field(default_factory=dict)


def split_rows(ts: np.ndarray, fold: FoldConfig) -> dict[str, np.ndarray]:
    """Row indices of each split: bar close time in [start, end) of the split."""
    rows = {}
    for split in ("train", "validation", "test"):
        start, end = fold.bounds_ns(split)  # type: ignore[arg-type]
        rows[split] = np.flatnonzero((ts >= start) & (ts < end))
    return rows


def _data_sha256(ts: np.ndarray, close: np.ndarray, features: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array, dtype in ((ts, "<i8"), (close, "<f8"), (features, "<f8")):
        digest.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return digest.hexdigest()


def train_strategist(
    feature_table: pl.DataFrame,
    closes: np.ndarray,
    config: DecisionTransformerConfig,
    *,
    fold: FoldConfig,
    run_dir: Path,
    feature_set: FeatureSet,
    interval_ns: int,
    trajectory_config: TrajectoryConfig | None = None,
    trainer_config: TrainerConfig | None = None,
    weighting: ReturnWeighting | None = None,
    state_clip: float = 8.0,
    target_quantiles: tuple[float, ...] = (0.5, 0.9, 0.99),
    default_target_quantile: float = 0.9,
    resume: bool = False,
    export: bool = True,
    evaluate_test: bool = False,
    source_label: str = "",
    declared_feature_set_hash: str | None = None,
) -> StrategistResult:
    """Train the Strategist on `fold`; see the module docstring. `feature_set` is the (resolved, fitted)
    set that produced `feature_table` (e.g. `FeatureTable.feature_set`); `closes` are the closes of the
    table's rows. `config.state_dim` and `.max_timestep` are derived from the data."""
    trajectory_config = trajectory_config or TrajectoryConfig(n_actions=config.n_actions)
    trainer_config = trainer_config or TrainerConfig()
    weighting = weighting or ReturnWeighting()
    if trajectory_config.n_actions != config.n_actions:
        raise ConfigError(
            f"model n_actions {config.n_actions} differs from the trajectories' {trajectory_config.n_actions}"
        )
    if default_target_quantile not in target_quantiles:
        raise ConfigError(
            f"default_target_quantile {default_target_quantile} must be one of {target_quantiles}"
        )
    names = tuple(c for c in feature_table.columns if c != "ts")
    if names != feature_set.names:
        raise DataError(f"feature table columns {names} are not the feature set's {feature_set.names}")
    closes = np.asarray(closes, dtype=np.float64)
    if len(closes) != feature_table.height:
        raise DataError(f"{len(closes)} closes for {feature_table.height} feature rows")
    transform = state_transform_for(feature_set)
    ts = feature_table.get_column("ts").cast(pl.Int64).to_numpy()
    rows = split_rows(ts, fold)
    splits: dict[str, TrajectorySet] = {}
    for split in ("train", "validation"):
        if len(rows[split]) == 0:
            start, end = fold.bounds_ns(split)  # type: ignore[arg-type]
            raise DataError(
                f"fold '{fold.name}': no feature rows in the {split} range [{iso(start)}, {iso(end)})"
            )
        part = rows[split]
        splits[split] = build_trajectories(
            feature_table[part], closes[part], interval_ns, trajectory_config, transform
        )

    train = splits["train"]
    used_rows = np.unique(train.row)
    scaler = fit_feature_scaler(train.states[used_rows], names, clip=state_clip)
    config = replace(config, state_dim=train.state_dim, max_timestep=trajectory_config.episode_bars)
    sources = {
        split: StrategistWindows(
            trajectories,
            scaler.transform(np.nan_to_num(trajectories.states)),
            config.context_length,
            weighting.weights(trajectories) if split == "train" else None,
        )
        for split, trajectories in splits.items()
    }
    for split, source in sources.items():
        if len(source) == 0:
            raise DataError(
                f"fold '{fold.name}': no {config.context_length}-step window in the {split} split"
            )
    totals = train.episodes.get_column("return").to_numpy()
    target_returns = {f"q{q:g}": float(np.quantile(totals, q)) for q in target_quantiles}
    log.info(
        "strategist_data",
        fold=fold.name,
        train_episodes=train.episodes.height,
        validation_episodes=splits["validation"].episodes.height,
        train_windows=len(sources["train"]),
        validation_windows=len(sources["validation"]),
        episode_return_median=round(float(np.median(totals)), 5),
    )

    torch.manual_seed(trainer_config.seed)
    model = DecisionTransformer(config)
    trainer = Trainer(
        model, strategist_loss, trainer_config, run_dir, asdict(config), description="strategist"
    )
    training = trainer.fit(sources["train"], sources["validation"], resume=resume)
    model.cpu().eval()  # the trainer moved it to its device and loaded the best weights
    metrics = {f"validation_{k}": v for k, v in action_metrics(model, sources["validation"]).items()}
    metrics["best_validation_loss"] = training.best_validation_loss
    metrics["secs_per_epoch"] = training.secs_per_epoch
    metrics["parameters"] = float(count_parameters(model))

    result = StrategistResult(
        model=model,
        config=config,
        training=training,
        scaler=scaler,
        trajectories=splits,
        validation_metrics=metrics,
        artifact_dir=None,
        parity_max_abs_diff=None,
        target_returns=target_returns,
    )
    if export:
        artifact = run_dir / ARTIFACT_FOLDER
        example = {
            k: v
            for k, v in sources["validation"].batch(np.arange(min(8, len(sources["validation"])))).items()
            if k in INPUT_NAMES
        }
        exported = export_strategist(model, artifact / "model.onnx", example)
        result.artifact_dir = artifact
        result.parity_max_abs_diff = parity_max_abs_diff(
            DecisionTransformerPolicy(model), exported.path, {name: example[name] for name in INPUT_NAMES}
        )
        if result.parity_max_abs_diff > PARITY_TOLERANCE:
            raise RuntimeError(
                f"ONNX parity {result.parity_max_abs_diff:.2e} > {PARITY_TOLERANCE}: export bug"
            )
        train_rows = rows["train"]
        raw = feature_table[train_rows].select(names).to_numpy()
        section = StrategistSection(
            context_length=config.context_length,
            action_positions=action_positions(config.n_actions).tolist(),
            episode_bars=trajectory_config.episode_bars,
            rtg_scale=trajectory_config.rtg_scale,
            taker_fee_rate=trajectory_config.taker_fee_rate,
            target_return=target_returns[f"q{default_target_quantile:g}"],
            target_return_choices=target_returns,
            state_transform=list(transform.kinds),
            behaviours=[b.name for b in trajectory_config.behaviours],
            behaviour_seed=trajectory_config.seed,
            return_weighting=asdict(weighting),
            training_episodes=train.episodes.height,
            training_data_sha256=_data_sha256(ts[train_rows], closes[train_rows], raw),
        )
        write_strategist_manifest(
            artifact,
            exported,
            section,
            feature_set=feature_set,
            declared_feature_set_hash=declared_feature_set_hash or feature_set.hash,
            scaler=scaler,
            fold=fold,
            config=config,
            trainer_config=trainer_config,
            metrics=metrics,
            interval_ns=interval_ns,
            train_ts=ts[train_rows],
            windows={split: len(source) for split, source in sources.items()},
            source_label=source_label,
        )
        (run_dir / "episodes_train.csv").parent.mkdir(parents=True, exist_ok=True)
        train.episodes.write_csv(run_dir / "episodes_train.csv")
        if evaluate_test:
            test_rows = rows["test"]
            if len(test_rows) == 0:
                raise DataError(f"fold '{fold.name}': no feature rows in the test range")
            result.out_of_sample = evaluate_out_of_sample(
                exported.path,
                feature_table[test_rows],
                closes[test_rows],
                interval_ns,
                transform,
                scaler,
                config,
                trajectory_config,
                target_returns,
            )
            (run_dir / "out_of_sample.json").write_text(json.dumps(result.out_of_sample, indent=2) + "\n")
    (run_dir / "validation_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return result


# ---- the run config (for `qa train strategist` / the pipeline's strategist stage) -----------------


class StrategistTrainConfig(BaseModel):
    """A Strategist run config (TOML). Uses `data.sources` (one symbol), `data.interval`,
    `data.feature_set`, `data.history_bars` (feature warm-up before the fold) and one fold of
    `data.folds`; `data.encoder_bars` / `horizon_bars` belong to window models and are not read
    (the context length is `model.context_length`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field("strategist", pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="names the run folder")
    description: str = ""
    data: DatasetConfig
    fold: str | None = Field(None, description="the fold to train on; None = the last of data.folds")
    model: DecisionTransformerConfig = DecisionTransformerConfig()
    trainer: TrainerConfig = TrainerConfig()
    episode_bars: int = Field(288, ge=1, description="episode length: timestep and R restart every episode")
    taker_fee_rate: float = Field(0.0006, ge=0, description="fee per unit of turnover in the rewards")
    rtg_scale: float = Field(0.01, gt=0, description="the model sees R / rtg_scale")
    behaviour_seed: int = Field(0, ge=0, description="seed of the behaviour policies' noise")
    return_weighting: Literal["none", "exponential"] = "none"
    weighting_temperature: float = Field(0.01, gt=0, description="episode-return temperature (log return)")
    evaluate_test: bool = Field(True, description="roll the exported policy out over the fold's test range")

    @model_validator(mode="after")
    def _check(self) -> StrategistTrainConfig:
        if len(self.data.sources) != 1:
            raise ValueError(f"the Strategist trains on one symbol; got {len(self.data.sources)} sources")
        names = [fold.name for fold in self.data.folds]
        if self.fold is not None and self.fold not in names:
            raise ValueError(f"fold '{self.fold}' is not one of the folds {names}")
        if self.model.state_dim != 0:
            raise ValueError("model.state_dim is derived from the feature set; leave it out")
        return self

    def chosen_fold(self) -> FoldConfig:
        return next(f for f in self.data.folds if f.name == self.fold) if self.fold else self.data.folds[-1]


def train_strategist_from_config(
    config: StrategistTrainConfig, run_dir: Path, resume: bool = False
) -> StrategistResult:
    """Bars -> features (FFD order fitted before the fold's validation start) -> `train_strategist`."""
    from qa_engine.features.build import build_feature_table
    from qa_engine.features.sets import get_feature_set
    from qa_engine.models.data import load_source_bars

    fold = config.chosen_fold()
    source = config.data.sources[0]
    step = config.data.step_ns
    start = to_ns(fold.train_start) - config.data.history_bars * step
    bars = load_source_bars(source, config.data.interval, start, to_ns(fold.test_end))
    declared = get_feature_set(config.data.feature_set)
    table = build_feature_table(bars, declared, step, train_end_ns=to_ns(fold.validation_start))
    closes = bars.join(table.table.select("ts"), on="ts", how="semi").get_column("close").to_numpy()
    return train_strategist(
        table.table,
        closes,
        config.model,
        fold=fold,
        run_dir=run_dir,
        feature_set=table.feature_set,
        interval_ns=step,
        trajectory_config=TrajectoryConfig(
            episode_bars=config.episode_bars,
            n_actions=config.model.n_actions,
            taker_fee_rate=config.taker_fee_rate,
            rtg_scale=config.rtg_scale,
            seed=config.behaviour_seed,
        ),
        trainer_config=config.trainer,
        weighting=ReturnWeighting(config.return_weighting, config.weighting_temperature),
        state_clip=config.data.feature_clip,
        resume=resume,
        evaluate_test=config.evaluate_test,
        source_label=f"{source.symbol}={source.describe()}",
        declared_feature_set_hash=declared.hash,
    )


# ---- export ------------------------------------------------------------------------------------


def export_strategist(model: DecisionTransformer, path: Path, example: dict[str, np.ndarray]) -> OnnxExport:
    """The inference wrapper (last-step logits) to ONNX with the shared exporter (opset 17, batch axis)."""
    policy = DecisionTransformerPolicy(model).eval()
    inputs = {name: torch.from_numpy(np.ascontiguousarray(example[name])) for name in INPUT_NAMES}
    return export_onnx(policy, inputs, [OUTPUT_NAME], path)


def write_strategist_manifest(
    artifact: Path,
    exported: OnnxExport,
    section: StrategistSection,
    *,
    feature_set: FeatureSet,
    declared_feature_set_hash: str,
    scaler: FeatureScaler,
    fold: FoldConfig,
    config: DecisionTransformerConfig,
    trainer_config: TrainerConfig,
    metrics: dict[str, float],
    interval_ns: int,
    train_ts: np.ndarray,
    windows: dict[str, int],
    source_label: str,
) -> Path:
    """manifest.json with the shared common records plus a `strategist` section. The shared
    file is assembled from the shared records (each validated); `read_manifest` reads it back as a
    StrategistArtifactManifest."""
    from qa_engine.contract.manifest import FoldRecord
    from qa_engine.contract.manifest import WindowRecord
    from qa_engine.contract.manifest import utc_now

    interval = interval_text(interval_ns)  # "5m", "1h": the names the feeds and the other manifests use
    records = {
        "schema_version": 1,
        "model_kind": "strategist",
        "model_name": "decision_transformer",
        "created_utc": utc_now(),
        "model_file": exported.path.name,
        "model_sha256": exported.sha256,
        "feature_set": feature_set_record(feature_set, declared_feature_set_hash, feature_set.names),
        "window": WindowRecord(interval=interval, encoder_bars=config.context_length, horizon_bars=0),
        "scaler": scaler_record(
            scaler, f"train split of fold {fold.name}, after the strategist's StateTransform"
        ),
        "inputs": exported.inputs,
        "outputs": exported.outputs,
        "training_data": {
            "sources": [source_label] if source_label else [],
            "first_bar_close": iso(int(train_ts[0])),
            "last_bar_close": iso(int(train_ts[-1])),
            "rows": len(train_ts),
            "sha256": section.training_data_sha256,
        },
        "folds": [
            FoldRecord(
                name=fold.name,
                train_start=fold.train_start.isoformat(),
                validation_start=fold.validation_start.isoformat(),
                test_start=fold.test_start.isoformat(),
                test_end=fold.test_end.isoformat(),
                embargo_bars=0,
                windows=windows,
            )
        ],
        "trained_on_fold": fold.name,
        "code": code_record(exported),
        "model_config_values": asdict(config),
        "trainer_config": asdict(trainer_config),
        "validation_metrics": {k: float(v) for k, v in metrics.items() if math.isfinite(v)},
        "strategist": section,
    }
    payload = {key: _jsonable(value) for key, value in records.items()}
    artifact.mkdir(parents=True, exist_ok=True)
    path = artifact / "manifest.json"
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


# ---- out-of-sample evaluation ------------------------------------------------------------------


def evaluate_out_of_sample(
    onnx_path: Path,
    feature_table: pl.DataFrame,
    closes: np.ndarray,
    interval_ns: int,
    transform: StateTransform,
    scaler: FeatureScaler,
    config: DecisionTransformerConfig,
    trajectory_config: TrajectoryConfig,
    target_returns: dict[str, float],
) -> dict[str, Any]:
    """Bar-by-bar rollouts over the given (test) rows with the exported ONNX policy (onnxruntime, one
    thread), per target return, next to flat, always-long, always-short and every behaviour policy on the
    same bars,
    with the same reward accounting (position * log return - fee * turnover). Episodes restart every
    `episode_bars` bars, each gap-free segment starts flat with an empty context."""
    from qa_engine.models.trinity_evaluation import strategist_rollouts

    session = onnx_session(onnx_path)

    def policy(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(None, inputs)[0]

    names = tuple(c for c in feature_table.columns if c != "ts")
    ts = feature_table.get_column("ts").cast(pl.Int64).to_numpy()
    raw = feature_table.select(names).cast(pl.Float64).fill_null(np.nan).to_numpy()
    states = scaler.transform(np.nan_to_num(transform.apply(raw, closes))).astype(np.float32)
    return strategist_rollouts(
        policy,
        states,
        closes,
        ts,
        interval_ns,
        context_length=config.context_length,
        state_dim=config.state_dim,
        n_actions=config.n_actions,
        episode_bars=trajectory_config.episode_bars,
        rtg_scale=trajectory_config.rtg_scale,
        taker_fee_rate=trajectory_config.taker_fee_rate,
        target_returns=target_returns,
        behaviours=list(enumerate(trajectory_config.behaviours)),
        behaviour_seed=trajectory_config.seed,
        valid=np.all(np.isfinite(raw), axis=1),
    )


# ---- the run report -----------------------------------------------------------------------------


def write_strategist_report(
    config: StrategistTrainConfig, result: StrategistResult, run_dir: Path, secs: float
) -> dict[str, Any]:
    """report.json and report.md of a Strategist run: training facts, validation action accuracy next
    to its floors, and the out-of-sample rollouts (test range) with their after-fee log returns."""
    fold = config.chosen_fold()
    metrics = result.validation_metrics
    history = result.training.history
    report: dict[str, Any] = {
        "id": config.id,
        "description": config.description,
        "source": f"{config.data.sources[0].symbol}={config.data.sources[0].describe()}",
        "fold": {
            "name": fold.name,
            "train": [iso(to_ns(fold.train_start)), iso(to_ns(fold.validation_start))],
            "validation": [iso(to_ns(fold.validation_start)), iso(to_ns(fold.test_start))],
            "test": [iso(to_ns(fold.test_start)), iso(to_ns(fold.test_end))],
        },
        "training": {
            "epochs": len(history),
            "best_epoch": result.training.best_epoch,
            "stopped_early": result.training.stopped_early,
            "secs_per_epoch": result.training.secs_per_epoch,
            "cpu_secs_per_epoch": result.training.cpu_secs_per_epoch,
            "train_episodes": result.trajectories["train"].episodes.height,
            "validation_episodes": result.trajectories["validation"].episodes.height,
        },
        "validation_metrics": metrics,
        "parity_max_abs_diff": result.parity_max_abs_diff,
        "target_returns": result.target_returns,
        "taker_fee_rate": config.taker_fee_rate,
        "out_of_sample": result.out_of_sample,
        "total_secs": secs,
    }
    finite = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}
    report["validation_metrics"] = finite
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"# Strategist run: {config.id}",
        "",
        config.description,
        "",
        f"Decision Transformer, {int(metrics['parameters']):,} parameters, context "
        f"{config.model.context_length} steps, {config.model.n_actions} actions, episodes of "
        f"{config.episode_bars} bars, taker fee {config.taker_fee_rate:.4%} per unit of turnover. "
        f"Data: {report['source']}. Fold {fold.name}: train "
        f"{report['fold']['train'][0]} .. {report['fold']['train'][1]}, validation (early stopping) .. "
        f"{report['fold']['validation'][1]}, test {report['fold']['test'][0]} .. {report['fold']['test'][1]} "
        "(bar close times, UTC).",
        "",
        f"Training: {len(history)} epochs (best {result.training.best_epoch}), "
        f"{result.training.secs_per_epoch:.1f} s per epoch wall "
        f"({result.training.cpu_secs_per_epoch:.1f} s CPU); "
        f"total run {secs / 60:.1f} min; torch vs onnxruntime max |diff| "
        + ("n/a" if result.parity_max_abs_diff is None else f"{result.parity_max_abs_diff:.1e}")
        + ".",
        "",
        "Validation (early-stopping range, not out of sample): action accuracy at the last step "
        f"{metrics['validation_accuracy_last_step']:.3f} vs 'repeat the previous action' "
        f"{metrics['validation_persistence_accuracy_last_step']:.3f} and 'most frequent action' "
        f"{metrics['validation_majority_accuracy']:.3f}.",
        "",
    ]
    oos = result.out_of_sample
    if oos:
        lines += [
            f"## Out of sample: {oos['range']['first_bar_close']} .. {oos['range']['last_bar_close']} "
            f"({oos['range']['rows']:,} bars, {oos['segments']} gap-free segment(s))",
            "",
            "Bar-by-bar rollouts of the exported ONNX policy (onnxruntime) and of fixed policies on the "
            "same bars, the same after-fee accounting (position * log return - fee * turnover), flat "
            "until the context holds its first K bars.",
            "",
            "| policy | log return after fees | simple return | fees (log units) | turnover | "
            "mean abs position | long share | short share |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, values in oos["policies"].items():
            lines.append(
                f"| {name} | {values['log_return']:+.4f} | {math.expm1(values['log_return']):+.2%} | "
                f"{values['fees']:.4f} | {values['turnover']:.0f} | {values['mean_abs_position']:.3f} | "
                f"{values['long_share']:.3f} | {values['short_share']:.3f} |"
            )
        lines.append("")
    (run_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
