"""Train, evaluate and export the Oracle (TFT quantile forecaster) from one run config.

    config (TOML) -> bars -> for each walk-forward fold: features, windows, scaler -> train (Trainer)
      -> test-split forecasts of the TFT and the naive baselines
    -> export the last fold's model (model.onnx + manifest.json) -> report (Markdown, JSON, plots)

Run folder:
    config.toml                  the resolved config
    model.onnx, manifest.json    the artifact (the last fold's model: trained on the most recent data)
    report.md, report.json, plots/
    folds/<name>/curves.csv, curves.png, checkpoints/{last,best}.pt
"""

from __future__ import annotations

import time
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from qa_engine.contract.manifest import ArtifactManifest
from qa_engine.contract.manifest import DataRecord
from qa_engine.contract.manifest import OracleSection
from qa_engine.contract.manifest import WindowRecord
from qa_engine.contract.manifest import utc_now
from qa_engine.contract.manifest import write_manifest
from qa_engine.logging import get_logger
from qa_engine.models.data import FoldData
from qa_engine.models.data import WalkForwardRunConfig
from qa_engine.models.data import WindowedDataset
from qa_engine.models.data import build_fold
from qa_engine.models.data import check_no_overlap
from qa_engine.models.data import fold_summary
from qa_engine.models.data import iso
from qa_engine.models.data import load_bars
from qa_engine.models.evaluation import FoldEvaluation
from qa_engine.models.evaluation import baseline_forecasts
from qa_engine.models.evaluation import evaluate_folds
from qa_engine.models.evaluation import realised_returns
from qa_engine.models.evaluation import summarise
from qa_engine.models.evaluation import write_report
from qa_engine.models.export import OnnxExport
from qa_engine.models.export import code_record
from qa_engine.models.export import export_onnx
from qa_engine.models.export import feature_set_record
from qa_engine.models.export import fold_record
from qa_engine.models.export import parity_max_abs_diff
from qa_engine.models.export import scaler_record
from qa_engine.models.oracle.network import ForecastShape
from qa_engine.models.oracle.network import TemporalFusionTransformer
from qa_engine.models.oracle.network import TFTConfig
from qa_engine.models.oracle.network import count_parameters
from qa_engine.models.oracle.network import quantile_loss
from qa_engine.models.training import Trainer
from qa_engine.models.training import TrainerConfig
from qa_engine.models.training import TrainingResult
from qa_engine.models.training import seed_everything

log = get_logger("qa_engine.models.oracle.train")
PARITY_TOLERANCE = 1e-5


class OracleTrainConfig(WalkForwardRunConfig):
    """A run config for `qa train oracle` (configs/train/oracle.toml)."""

    id: str = Field("oracle", pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="names the run folder")
    model: TFTConfig = TFTConfig()
    trainer: TrainerConfig = TrainerConfig()


def build_model(config: TFTConfig, data: FoldData) -> TemporalFusionTransformer:
    """The TFT with input sizes read from the fold's metadata."""
    meta = data.meta
    return TemporalFusionTransformer(
        config, ForecastShape(meta.n_features, meta.encoder_bars, meta.horizon_bars)
    )


def oracle_loss(quantiles: tuple[float, ...]):
    """loss_fn for the Trainer: mean pinball loss over quantiles, batch and horizon (scaled targets)."""
    levels = torch.tensor(quantiles, dtype=torch.float32)

    def loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        prediction = model(batch["x"])  # (B, H, Q)
        return quantile_loss(prediction, batch["y"], levels.to(prediction.device)).mean()

    return loss


@torch.no_grad()
def predict(
    model: TemporalFusionTransformer,
    dataset: WindowedDataset,
    target_scale: np.ndarray,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, Q) log-return quantiles for every window of `dataset`, and (F,) mean variable weights."""
    model.eval()
    device = next(model.parameters()).device
    outputs, weights = [], np.zeros(dataset.meta.n_features)
    for start in range(0, len(dataset), batch_size):
        indices = np.arange(start, min(start + batch_size, len(dataset)))
        x = torch.from_numpy(dataset.batch(indices)["x"]).to(device)
        result = model.forward_with_weights(x)
        outputs.append(result["quantiles"].cpu().numpy().astype(np.float64))
        weights += result["variable_weights"].sum(dim=(0, 1)).cpu().numpy()
    forecast = np.concatenate(outputs) * target_scale[None, :, None]
    return forecast, weights / (len(dataset) * dataset.meta.encoder_bars)


@dataclass
class FoldRun:
    data: FoldData
    model: TemporalFusionTransformer
    training: TrainingResult
    evaluation: FoldEvaluation
    validation_metrics: dict[str, Any]


def train_fold(config: OracleTrainConfig, data: FoldData, run_dir: Path, resume: bool) -> FoldRun:
    check_no_overlap(data)
    seed_everything(config.trainer.seed)  # the weights' initialisation is part of the run
    model = build_model(config.model, data)
    train = data.splits["train"]
    model.head.initialise(np.quantile(train.labels[train.ends], config.model.quantiles).tolist())
    trainer = Trainer(
        model,
        oracle_loss(config.model.quantiles),
        config.trainer,
        run_dir,
        model_config=asdict(config.model),
        description=f"oracle fold {data.fold.name}",
    )
    resume_here = resume and (run_dir / "checkpoints" / "last.pt").is_file()
    log.info("fold_start", parameters=count_parameters(model), resume=resume_here, **fold_summary(data))
    result = trainer.fit(data.splits["train"], data.splits["validation"], resume=resume_here)
    quantiles = config.model.quantiles
    horizon = data.meta.horizon_bars
    validation = data.splits["validation"]
    validation_forecast, _ = predict(model, validation, data.target_scale)
    validation_metrics = summarise(validation_forecast, realised_returns(validation), quantiles, horizon)
    test = data.splits["test"]
    forecast, weights = predict(model, test, data.target_scale)
    forecasts = {"tft": forecast, **baseline_forecasts(data.splits["train"], test, quantiles)}
    test_ts = test.ts[test.ends]
    evaluation = FoldEvaluation(
        fold=data.fold.name,
        test_range=(iso(int(test_ts[0])), iso(int(test_ts[-1]))),
        forecasts=forecasts,
        realised=realised_returns(test),
        ts=test_ts,
        variable_importance=dict(zip(data.meta.feature_names, weights.tolist(), strict=True)),
        training={
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "secs_per_epoch": result.secs_per_epoch,
            "cpu_secs_per_epoch": result.cpu_secs_per_epoch,
            "train_secs": result.secs,
            "best_validation_loss": result.best_validation_loss,
            "parameters": count_parameters(model),
            "windows": data.window_counts(),
        },
    )
    return FoldRun(data, model, result, evaluation, validation_metrics)


def validation_record(run: FoldRun) -> dict[str, float]:
    """The manifest's validation metrics of a trained fold (validation split, natural units)."""
    validation = run.validation_metrics
    return {
        "validation_loss_scaled": run.training.best_validation_loss,
        "pinball_mean": validation["pinball_mean"],
        **{f"pinball_q{key}": value for key, value in validation["pinball_by_quantile"].items()},
        "coverage": validation["coverage"],
        "direction_accuracy_h1": validation["directional"][0]["accuracy"],
        "windows": float(validation["windows"]),
    }


def oracle_manifest(
    config: OracleTrainConfig,
    data: FoldData,
    folds: list[FoldData],
    export: OnnxExport,
    validation_metrics: dict[str, float],
) -> ArtifactManifest:
    """The manifest of the Oracle trained on `data` (one of `folds`), exported as `export`."""
    sources = [f"{source.symbol}={source.describe()}" for source in config.data.sources]
    return ArtifactManifest(
        model_kind="oracle",
        model_name="temporal_fusion_transformer",
        created_utc=utc_now(),
        model_sha256=export.sha256,
        feature_set=feature_set_record(
            data.feature_set, data.declared_feature_set_hash, data.meta.feature_names
        ),
        window=WindowRecord(
            interval=data.meta.interval,
            encoder_bars=data.meta.encoder_bars,
            horizon_bars=data.meta.horizon_bars,
        ),
        scaler=scaler_record(data.scaler, f"train split of fold {data.fold.name}"),
        inputs=export.inputs,
        outputs=export.outputs,
        training_data=DataRecord(sources=sources, **data.training_bars),  # type: ignore[arg-type]
        folds=[fold_record(other.fold, config.data.embargo, other.window_counts()) for other in folds],
        trained_on_fold=data.fold.name,
        code=code_record(export),
        model_config_values=asdict(config.model),
        trainer_config=asdict(config.trainer),
        validation_metrics=validation_metrics,
        oracle=OracleSection(quantiles=list(config.model.quantiles), target_scale=data.target_scale.tolist()),
    )


def export_oracle(model: TemporalFusionTransformer, data: FoldData, folder: Path) -> tuple[OnnxExport, float]:
    """model.onnx in `folder` and the torch-vs-onnxruntime max |diff| on 256 real test windows;
    refuses (RuntimeError) to ship a graph that disagrees by more than PARITY_TOLERANCE."""
    model = model.to("cpu").eval()
    test = data.splits["test"]
    example = torch.from_numpy(test.batch(np.arange(1))["x"])  # (1, E, F)
    export = export_onnx(model, {"features": example}, ["quantiles"], folder / "model.onnx")
    sample = test.batch(np.linspace(0, len(test) - 1, min(256, len(test))).round().astype(np.int64))["x"]
    parity = parity_max_abs_diff(model, export.path, {"features": sample})
    if parity > PARITY_TOLERANCE:
        raise RuntimeError(
            f"torch and onnxruntime disagree by {parity:.2e} (> {PARITY_TOLERANCE:g}); not shipping"
        )
    return export, parity


@dataclass
class OracleOutcome:
    run_dir: Path
    report: dict[str, Any]
    manifest: ArtifactManifest
    parity_max_abs_diff: float
    secs: float


def train_oracle(config: OracleTrainConfig, run_dir: Path, resume: bool = False) -> OracleOutcome:
    """Every fold, then the artifact of `export_fold` (default: the last) and the report."""
    began = time.perf_counter()
    bars = load_bars(config.data)
    runs: list[FoldRun] = []
    for fold in config.data.folds:
        data = build_fold(config.data, fold, bars)
        runs.append(train_fold(config, data, run_dir / "folds" / fold.name, resume))
    chosen = (
        next((run for run in runs if run.data.fold.name == config.export_fold), runs[-1])
        if config.export_fold
        else runs[-1]
    )
    model = chosen.model.to("cpu").eval()
    meta = chosen.data.meta
    export, parity = export_oracle(model, chosen.data, run_dir)
    manifest = oracle_manifest(
        config, chosen.data, [run.data for run in runs], export, validation_record(chosen)
    )
    write_manifest(manifest, run_dir)
    report = evaluate_folds([run.evaluation for run in runs], config.model.quantiles, meta.horizon_bars)
    secs = time.perf_counter() - began
    header = (
        f"# Oracle evaluation: {config.id}\n\n"
        f"{config.description}\n\n"
        f"Temporal Fusion Transformer, {count_parameters(model):,} parameters, encoder {meta.encoder_bars} x "
        f"{meta.n_features} features, horizon {meta.horizon_bars} bars of {meta.interval}, quantiles "
        f"{', '.join(f'{q:g}' for q in config.model.quantiles)}. Data: "
        + ", ".join(f"{source.symbol} ({source.describe()})" for source in config.data.sources)
        + f". {len(runs)} walk-forward fold(s); every number below is on test windows the fold's model never "
        f"saw in training or model selection. Artifact: fold {chosen.data.fold.name}. "
        f"Total run time {secs / 60:.1f} min; torch vs onnxruntime max |diff| {parity:.1e}."
    )
    write_report(
        report,
        [run.evaluation for run in runs],
        run_dir,
        header,
        {"artifact_fold": chosen.data.fold.name, "parity_max_abs_diff": parity, "total_secs": secs},
    )
    return OracleOutcome(run_dir, report, manifest, parity, secs)
