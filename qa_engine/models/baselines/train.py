"""Train and evaluate the baselines (XGBoost, LSTM, MLP, their ensemble and the naive forecasters) on fixed
walk-forward folds, export the artifacts, write the out-of-sample report.

    config (TOML) -> bars -> per fold: features (FFD order and scaler fitted on the training split),
      20-bar windows that never cross a gap, SELL/HOLD/BUY labels (N-bar forward return vs a threshold),
      class weights from the training split
      -> XGBoost (features at t), LSTM and MLP (20-bar windows): early stopping on the validation split
      -> TEST split: probabilities of every model and naive forecaster, classification metrics,
         after-fee vectorised backtest vs buy-and-hold
    -> artifacts of `export_fold` (default: the last): xgboost/, lstm/, mlp/ (model.onnx + manifest.json),
       parity torch/xgboost vs onnxruntime <= 1e-5
    -> report.md, report.json, equity_test.png (pooled over the folds' test splits)

Run folder:
    config.toml, report.md, report.json, equity_test.png
    models/{xgboost,lstm,mlp}/model.onnx + manifest.json
    folds/<name>/{lstm,mlp}/curves.csv, curves.png, checkpoints/{last,best}.pt
    folds/<name>/xgboost/booster.json, fit.json   (xgboost's own format; resume and benchmarks read it)
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

from qa_engine.contract.baseline import BaselineArtifactManifest
from qa_engine.contract.baseline import BaselineFamily
from qa_engine.contract.baseline import BaselineSection
from qa_engine.contract.baseline import agreement_classes
from qa_engine.contract.baseline import ensemble_probabilities
from qa_engine.contract.labels import NO_LABEL
from qa_engine.contract.labels import class_balance
from qa_engine.contract.labels import class_weights
from qa_engine.contract.labels import forward_return_bps
from qa_engine.contract.labels import triple_class_labels
from qa_engine.contract.manifest import DataRecord
from qa_engine.contract.manifest import WindowRecord
from qa_engine.contract.manifest import utc_now
from qa_engine.contract.manifest import write_manifest
from qa_engine.errors import DataError
from qa_engine.logging import get_logger
from qa_engine.models.baselines.evaluate import LEAKAGE_SUSPICION_ACCURACY
from qa_engine.models.baselines.evaluate import BacktestCurve
from qa_engine.models.baselines.evaluate import backtest_metrics
from qa_engine.models.baselines.evaluate import classification_metrics
from qa_engine.models.baselines.evaluate import concatenate_curves
from qa_engine.models.baselines.evaluate import vectorised_backtest
from qa_engine.models.baselines.network import ClassifierShape
from qa_engine.models.baselines.network import LSTMClassifier
from qa_engine.models.baselines.network import LSTMClassifierConfig
from qa_engine.models.baselines.network import MLPClassifier
from qa_engine.models.baselines.network import MLPClassifierConfig
from qa_engine.models.baselines.network import ProbabilityHead
from qa_engine.models.baselines.network import XGBoostConfig
from qa_engine.models.baselines.network import XGBoostFit
from qa_engine.models.baselines.network import export_classifier_onnx
from qa_engine.models.baselines.network import export_xgboost_onnx
from qa_engine.models.baselines.network import load_xgboost_fit
from qa_engine.models.baselines.network import predict_probabilities
from qa_engine.models.baselines.network import save_xgboost_fit
from qa_engine.models.baselines.network import train_xgboost
from qa_engine.models.baselines.network import weighted_cross_entropy
from qa_engine.models.baselines.signals import PositionPolicy
from qa_engine.models.baselines.signals import class_prior_forecast
from qa_engine.models.baselines.signals import one_hot
from qa_engine.models.baselines.signals import persistence_forecast
from qa_engine.models.baselines.signals import positions_from_classes
from qa_engine.models.baselines.signals import stratified_random_forecast
from qa_engine.models.baselines.signals import zero_return_forecast
from qa_engine.models.data import FoldData
from qa_engine.models.data import WalkForwardRunConfig
from qa_engine.models.data import WindowedDataset
from qa_engine.models.data import build_fold
from qa_engine.models.data import check_no_overlap
from qa_engine.models.data import fold_summary
from qa_engine.models.data import iso
from qa_engine.models.data import load_bars
from qa_engine.models.export import OnnxExport
from qa_engine.models.export import code_record
from qa_engine.models.export import feature_set_record
from qa_engine.models.export import fold_record
from qa_engine.models.export import onnx_session
from qa_engine.models.export import parity_max_abs_diff
from qa_engine.models.export import scaler_record
from qa_engine.models.training import Trainer
from qa_engine.models.training import TrainerConfig

log = get_logger("qa_engine.models.baselines.train")
PARITY_TOLERANCE = 1e-5
MODELS: tuple[BaselineFamily, ...] = ("xgboost", "lstm", "mlp")
DETERMINISTIC = frozenset({"ensemble_agree", "zero_return", "persistence", "stratified_random"})


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelSettings(_Section):
    threshold_bps: float = Field(
        gt=0, description="|N-bar forward return| above this is BUY/SELL; chosen on a training range only"
    )


class EnsembleSettings(_Section):
    xgboost_weight: float = Field(0.6, gt=0)
    lstm_weight: float = Field(0.4, gt=0)

    @property
    def weights(self) -> dict[str, float]:
        return {"xgboost": self.xgboost_weight, "lstm": self.lstm_weight}


class BacktestSettings(_Section):
    fee_rate: float = Field(0.00055, ge=0, lt=0.01, description="taker fee per unit of turnover (0.055%)")
    position_policy: PositionPolicy = Field(
        "flat_on_hold", description="HOLD -> flat, or keep the previous position ('hold_previous')"
    )


class BaselinesTrainConfig(WalkForwardRunConfig):
    """A run config for `qa train baselines` (configs/train/baselines.toml)."""

    id: str = Field("baselines", pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="names the run folder")
    labels: LabelSettings
    xgboost: XGBoostConfig = XGBoostConfig()
    lstm: LSTMClassifierConfig = LSTMClassifierConfig()
    mlp: MLPClassifierConfig = MLPClassifierConfig()
    trainer: TrainerConfig = TrainerConfig()
    ensemble: EnsembleSettings = EnsembleSettings()
    backtest: BacktestSettings = BacktestSettings()
    seed: int = Field(7, description="seed of the stratified random forecaster")


# ---- labels on the fold's rows ------------------------------------------------------------------


@dataclass(frozen=True)
class RowLabels:
    """Per row of a fold (every series stacked, as in FoldData): class, forward and past N-bar return."""

    classes: np.ndarray  # (N,) int8, NO_LABEL where undefined
    forward_bps: np.ndarray  # (N,) (close[t+H] / close[t] - 1) * 1e4
    past_bps: np.ndarray  # (N,) (close[t] / close[t-H] - 1) * 1e4, the persistence forecast's input


def fold_row_labels(
    data: FoldData, bars_by_symbol: dict[str, pl.DataFrame], threshold_bps: float, step_ns: int
) -> RowLabels:
    """Labels from each symbol's bar closes (gap-aware), mapped onto the fold's feature rows."""
    any_split = data.splits["train"]
    horizon = data.meta.horizon_bars
    count = len(any_split.ts)
    classes = np.full(count, NO_LABEL, dtype=np.int8)
    forward = np.full(count, np.nan)
    past = np.full(count, np.nan)
    for series, symbol in enumerate(data.symbols):
        bars = bars_by_symbol[symbol]
        bar_ts = bars.get_column("ts").to_numpy().astype(np.int64)
        close = bars.get_column("close").to_numpy()
        bar_forward = forward_return_bps(close, horizon, bar_ts, step_ns)
        bar_classes = triple_class_labels(close, horizon, threshold_bps, bar_ts, step_ns)
        bar_past = np.full(len(close), np.nan)
        bar_past[horizon:] = bar_forward[:-horizon]  # close[t] / close[t-H] - 1: bar t-H's forward return
        mask = any_split.series_id == series
        rows = np.searchsorted(bar_ts, any_split.ts[mask])
        if not np.array_equal(bar_ts[rows], any_split.ts[mask]):
            raise DataError(f"fold '{data.fold.name}': feature rows of {symbol} are not a subset of its bars")
        classes[mask] = bar_classes[rows]
        forward[mask] = bar_forward[rows]
        past[mask] = bar_past[rows]
    for split, dataset in data.splits.items():
        undefined = int(np.sum(classes[dataset.ends] == NO_LABEL))
        if undefined:
            raise DataError(
                f"fold '{data.fold.name}': {undefined} {split} windows have no label; this is a bug"
            )
    return RowLabels(classes, forward, past)


@dataclass
class ClassWindowSource:
    """A BatchSource for the Trainer: {"x": (B, E, F) float32 windows, "y": (B,) int64 classes}."""

    dataset: WindowedDataset
    classes: np.ndarray  # (N,) per fold row

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        ends = self.dataset.ends[indices]  # (B,)
        return {
            "x": self.dataset.features[self.dataset.rows(indices)],
            "y": self.classes[ends].astype(np.int64),
        }


def split_windows(dataset: WindowedDataset) -> np.ndarray:
    """(M, E, F) float32 windows of every window end of the split (memory: M * E * F * 4 bytes)."""
    return dataset.features[dataset.rows(np.arange(len(dataset)))]


# ---- one fold -----------------------------------------------------------------------------------


@dataclass
class FoldOutcome:
    data: FoldData
    labels: RowLabels
    class_weights: np.ndarray
    xgboost: XGBoostFit
    lstm: LSTMClassifier
    mlp: MLPClassifier
    probabilities: dict[str, np.ndarray]  # test split: forecaster -> (M, 3)
    true: np.ndarray  # (M,) test classes
    forward_bps: np.ndarray  # (M,)
    bar_returns: np.ndarray  # (M,) close[t+1] / close[t] - 1
    ts: np.ndarray  # (M,) window-end bar close times
    validation_metrics: dict[str, dict[str, Any]]
    training: dict[str, dict[str, Any]]
    balance: dict[str, dict[str, float]]
    agreement_share: float
    extra: dict[str, Any] = field(default_factory=dict)


def _train_torch(
    name: str,
    model: torch.nn.Module,
    model_config: Any,
    config: BaselinesTrainConfig,
    data: FoldData,
    sources: dict[str, ClassWindowSource],
    weights: np.ndarray,
    run_dir: Path,
    resume: bool,
) -> dict[str, Any]:
    trainer = Trainer(
        model,
        weighted_cross_entropy(weights),
        config.trainer,
        run_dir,
        model_config={
            **asdict(model_config),
            "n_features": data.meta.n_features,
            "window_bars": data.meta.encoder_bars,
        },
        description=f"{name} fold {data.fold.name}",
    )
    resume_here = resume and (run_dir / "checkpoints" / "last.pt").is_file()
    result = trainer.fit(sources["train"], sources["validation"], resume=resume_here)
    return {
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "best_validation_loss": result.best_validation_loss,
        "train_secs": result.secs,
        "secs_per_epoch": result.secs_per_epoch,
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }


def train_fold(
    config: BaselinesTrainConfig,
    data: FoldData,
    bars_by_symbol: dict[str, pl.DataFrame],
    run_dir: Path,
    resume: bool,
) -> FoldOutcome:
    """Every model of one fold, their validation metrics, and test-split probabilities of every forecaster."""
    check_no_overlap(data)
    step = config.data.step_ns
    threshold = config.labels.threshold_bps
    labels = fold_row_labels(data, bars_by_symbol, threshold, step)
    splits = data.splits
    ends = {split: dataset.ends for split, dataset in splits.items()}
    train_classes = labels.classes[ends["train"]]
    weights = class_weights(train_classes)
    balance = {split: class_balance(labels.classes[rows]) for split, rows in ends.items()}
    log.info(
        "fold_start", **fold_summary(data), class_balance=balance, class_weights=weights.round(3).tolist()
    )
    shape = ClassifierShape(data.meta.n_features, data.meta.encoder_bars)
    training: dict[str, dict[str, Any]] = {}

    # XGBoost on the feature vector at t (the last row of each window).
    last_rows = {split: splits[split].features[rows] for split, rows in ends.items()}  # (M, F)
    xgb_folder = run_dir / "xgboost"
    if resume and (xgb_folder / "booster.json").is_file() and (xgb_folder / "fit.json").is_file():
        xgb = load_xgboost_fit(xgb_folder)  # a finished fold's booster: training it again gives the same
    else:
        xgb = train_xgboost(
            config.xgboost,
            last_rows["train"],
            train_classes,
            weights[train_classes],
            last_rows["validation"],
            labels.classes[ends["validation"]],
            weights[labels.classes[ends["validation"]]],
        )
        save_xgboost_fit(xgb, xgb_folder)
    training["xgboost"] = {
        "rounds_kept": xgb.best_round,
        "rounds_tried": xgb.rounds_tried,
        "best_validation_loss": xgb.validation_mlogloss,
        "train_secs": xgb.secs,
    }
    log.info("xgboost_done", fold=data.fold.name, **training["xgboost"])

    sources = {split: ClassWindowSource(dataset, labels.classes) for split, dataset in splits.items()}
    torch.manual_seed(config.trainer.seed)
    lstm = LSTMClassifier(config.lstm, shape)
    training["lstm"] = _train_torch(
        "lstm", lstm, config.lstm, config, data, sources, weights, run_dir / "lstm", resume
    )
    torch.manual_seed(config.trainer.seed)
    mlp = MLPClassifier(config.mlp, shape)
    training["mlp"] = _train_torch(
        "mlp", mlp, config.mlp, config, data, sources, weights, run_dir / "mlp", resume
    )

    def forecasts(split: str) -> dict[str, np.ndarray]:
        dataset = splits[split]
        windows = split_windows(dataset)  # (M, E, F)
        members = {
            "xgboost": xgb.predict_probabilities(last_rows[split]),
            "lstm": predict_probabilities(lstm, windows),
            "mlp": predict_probabilities(mlp, windows),
        }
        blend = ensemble_probabilities(
            {"xgboost": members["xgboost"], "lstm": members["lstm"]}, config.ensemble.weights
        )
        count = len(dataset)
        return {
            **members,
            "ensemble": blend.probabilities,
            "ensemble_agree": one_hot(agreement_classes(blend)),
            "zero_return": zero_return_forecast(count, threshold),
            "class_prior": class_prior_forecast(train_classes, count),
            "persistence": persistence_forecast(labels.past_bps[ends[split]], threshold),
            "stratified_random": stratified_random_forecast(train_classes, count, config.seed),
            "_agreement": blend.agreement.astype(np.float64)[:, None],
        }

    horizon = data.meta.horizon_bars
    validation = forecasts("validation")
    validation.pop("_agreement")
    validation_true = labels.classes[ends["validation"]]
    validation_forward = labels.forward_bps[ends["validation"]]
    validation_metrics = {
        name: classification_metrics(p, validation_true, validation_forward, horizon)
        for name, p in validation.items()
    }
    test = forecasts("test")
    agreement = test.pop("_agreement")[:, 0]
    test_ends = ends["test"]
    bar_returns = np.expm1(splits["test"].labels_raw[test_ends, 0])  # close[t+1] / close[t] - 1
    return FoldOutcome(
        data=data,
        labels=labels,
        class_weights=weights,
        xgboost=xgb,
        lstm=lstm,
        mlp=mlp,
        probabilities=test,
        true=labels.classes[test_ends].astype(np.int64),
        forward_bps=labels.forward_bps[test_ends],
        bar_returns=bar_returns,
        ts=splits["test"].ts[test_ends],
        validation_metrics=validation_metrics,
        training=training,
        balance=balance,
        agreement_share=float(agreement.mean()),
    )


# ---- evaluation over folds ----------------------------------------------------------------------


def strategy_curves(
    outcome: FoldOutcome, fee_rate: float, policy: PositionPolicy, step_ns: int
) -> dict[str, BacktestCurve]:
    """The test split's backtest of every forecaster's argmax signal, plus buy-and-hold (always +1)."""
    ts_next = outcome.ts + step_ns
    curves = {
        name: vectorised_backtest(
            positions_from_classes(np.argmax(p, axis=1), policy), outcome.bar_returns, ts_next, fee_rate
        )
        for name, p in outcome.probabilities.items()
    }
    curves["buy_and_hold"] = vectorised_backtest(
        np.ones(len(outcome.ts)), outcome.bar_returns, ts_next, fee_rate
    )
    return curves


def _names(outcomes: list[FoldOutcome]) -> list[str]:
    return list(outcomes[0].probabilities)


def evaluate(config: BaselinesTrainConfig, outcomes: list[FoldOutcome]) -> dict[str, Any]:
    """Per-fold and pooled (every fold's test split, in time order) metrics and backtests."""
    horizon = config.data.horizon_bars
    step = config.data.step_ns
    fee = config.backtest.fee_rate
    primary = config.backtest.position_policy
    other: PositionPolicy = "hold_previous" if primary == "flat_on_hold" else "flat_on_hold"
    names = _names(outcomes)
    curves = {
        policy: [strategy_curves(o, fee, policy, step) for o in outcomes] for policy in (primary, other)
    }
    folds = []
    for index, outcome in enumerate(outcomes):
        data = outcome.data
        folds.append(
            {
                "fold": data.fold.name,
                "ranges": split_ranges(data, horizon, step),
                "class_balance": outcome.balance,
                "class_weights": outcome.class_weights.tolist(),
                "training": outcome.training,
                "ensemble_agreement_share": outcome.agreement_share,
                "validation": {name: _compact(m) for name, m in outcome.validation_metrics.items()},
                "test": {
                    name: classification_metrics(p, outcome.true, outcome.forward_bps, horizon)
                    for name, p in outcome.probabilities.items()
                },
                "backtest": {
                    policy: {name: backtest_metrics(curve) for name, curve in curves[policy][index].items()}
                    for policy in (primary, other)
                },
            }
        )
    true = np.concatenate([o.true for o in outcomes])
    forward = np.concatenate([o.forward_bps for o in outcomes])
    pooled_classification = {
        name: classification_metrics(
            np.concatenate([o.probabilities[name] for o in outcomes]), true, forward, horizon
        )
        for name in names
    }
    for name in DETERMINISTIC:
        if name in pooled_classification:
            pooled_classification[name]["log_loss"] = None  # one-hot forecasts: log loss says nothing
    pooled_curves = {
        policy: {
            name: concatenate_curves([fold_curves[name] for fold_curves in curves[policy]])
            for name in curves[policy][0]
        }
        for policy in (primary, other)
    }
    pooled_backtest = {
        policy: {name: backtest_metrics(curve) for name, curve in pooled_curves[policy].items()}
        for policy in (primary, other)
    }
    suspicious = {
        name: metrics["directional_non_overlapping"]["accuracy"]
        for name, metrics in pooled_classification.items()
        if metrics["directional_non_overlapping"]["count"] >= 100
        and metrics["directional_non_overlapping"]["accuracy"] > LEAKAGE_SUSPICION_ACCURACY
    }
    suspicious.update(
        {
            f"{name} (accuracy)": metrics["accuracy"]
            for name, metrics in pooled_classification.items()
            if name in MODELS
            and metrics["accuracy"] > LEAKAGE_SUSPICION_ACCURACY
            and metrics["accuracy"] > max(pooled_classification["class_prior"]["accuracy"], 0.0) + 0.05
        }
    )
    return {
        "forecasters": names,
        "strategies": [*names, "buy_and_hold"],
        "horizon_bars": horizon,
        "threshold_bps": config.labels.threshold_bps,
        "fee_rate": fee,
        "position_policy": primary,
        "other_position_policy": other,
        "folds": folds,
        "pooled": {"classification": pooled_classification, "backtest": pooled_backtest},
        "pooled_test_range": [
            iso(int(outcomes[0].ts[0])),
            iso(int(outcomes[-1].ts[-1])),
        ],
        "test_bar_return_autocorrelation_lag1": lag1_autocorrelation(outcomes),
        "leakage_suspected": suspicious,
        "_curves": pooled_curves[primary],
    }


def lag1_autocorrelation(outcomes: list[FoldOutcome]) -> float:
    """Lag-1 autocorrelation of consecutive 5m bar returns in the test splits (context for gross returns
    of 1-bar holding: a negative value is short-term reversal, partly bid-ask bounce of last-trade closes)."""
    pairs = [(o.bar_returns[:-1], o.bar_returns[1:]) for o in outcomes if len(o.bar_returns) > 2]
    first = np.concatenate([p[0] for p in pairs])
    second = np.concatenate([p[1] for p in pairs])
    return float(np.corrcoef(first, second)[0, 1])


def _compact(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("samples", "accuracy", "balanced_accuracy", "macro_f1", "log_loss")
    return {key: metrics[key] for key in keep} | {"directional_accuracy": metrics["directional"]["accuracy"]}


def split_ranges(data: FoldData, horizon_bars: int, step_ns: int) -> dict[str, dict[str, Any]]:
    """Per split: configured bounds, first/last window end (bar close) and last label bar close."""
    ranges = {}
    for split, dataset in data.splits.items():
        start, end = data.fold.bounds_ns(split)  # type: ignore[arg-type]
        ends_ts = dataset.ts[dataset.ends]
        ranges[split] = {
            "bounds": [iso(start), iso(end)],
            "first_window_end": iso(int(ends_ts[0])),
            "last_window_end": iso(int(ends_ts[-1])),
            "last_label_bar": iso(int(ends_ts[-1]) + horizon_bars * step_ns),
            "windows": len(dataset),
        }
    return ranges


# ---- export -------------------------------------------------------------------------------------


def _manifest(
    config: BaselinesTrainConfig,
    outcome: FoldOutcome,
    outcomes: list[FoldOutcome],
    export: OnnxExport,
    family: BaselineFamily,
    report: dict[str, Any],
) -> BaselineArtifactManifest:
    data = outcome.data
    fold_report = next(f for f in report["folds"] if f["fold"] == data.fold.name)
    validation = fold_report["validation"][family]
    test = fold_report["test"][family]
    primary = report["position_policy"]
    window_bars = 1 if family == "xgboost" else data.meta.encoder_bars
    model_values: dict[str, Any] = asdict(getattr(config, family))
    trainer_values: dict[str, Any] = (
        {"early_stopping": "xgboost rounds", **outcome.training["xgboost"]}
        if family == "xgboost"
        else asdict(config.trainer)
    )
    return BaselineArtifactManifest(
        model_name={"xgboost": "xgboost_classifier", "lstm": "lstm_classifier", "mlp": "mlp_classifier"}[
            family
        ],
        created_utc=utc_now(),
        model_sha256=export.sha256,
        feature_set=feature_set_record(
            data.feature_set, data.declared_feature_set_hash, data.meta.feature_names
        ),
        window=WindowRecord(
            interval=data.meta.interval, encoder_bars=window_bars, horizon_bars=data.meta.horizon_bars
        ),
        scaler=scaler_record(data.scaler, f"train split of fold {data.fold.name}"),
        inputs=export.inputs,
        outputs=export.outputs,
        training_data=DataRecord(
            sources=[f"{source.symbol}={source.describe()}" for source in config.data.sources],
            **data.training_bars,  # type: ignore[arg-type]
        ),
        folds=[
            fold_record(other.data.fold, config.data.embargo, other.data.window_counts())
            for other in outcomes
        ],
        trained_on_fold=data.fold.name,
        code=code_record(export),
        model_config_values=model_values,
        trainer_config=trainer_values,
        validation_metrics={
            key: float(value)
            for key, value in validation.items()
            if isinstance(value, int | float) and value is not None
        },
        baseline=BaselineSection(
            family=family,
            label_horizon_bars=data.meta.horizon_bars,
            threshold_bps=config.labels.threshold_bps,
            class_weights=outcome.class_weights.tolist(),
            train_class_balance=outcome.balance["train"],
            ensemble_weight=config.ensemble.weights.get(family),
            test_metrics={
                "accuracy": test["accuracy"],
                "balanced_accuracy": test["balanced_accuracy"],
                "macro_f1": test["macro_f1"],
                "directional_accuracy": test["directional"]["accuracy"],
                f"net_return_pct_{primary}": fold_report["backtest"][primary][family]["total_return_pct"],
            },
        ),
    )


def export_fold_models(
    config: BaselinesTrainConfig,
    outcome: FoldOutcome,
    outcomes: list[FoldOutcome],
    folder: Path,
    report: dict,
) -> dict[str, float]:
    """models/{xgboost,lstm,mlp}/model.onnx + manifest.json; returns the parity (max |diff|) per model.
    A model whose onnxruntime output differs from torch / xgboost by more than 1e-5 is not shipped."""
    test = outcome.data.splits["test"]
    sample = np.linspace(0, len(test) - 1, min(512, len(test))).round().astype(np.int64)
    windows = test.features[test.rows(sample)]  # (S, E, F)
    parity: dict[str, float] = {}
    for family in MODELS:
        target = folder / family
        path = target / "model.onnx"
        if family == "xgboost":
            export = export_xgboost_onnx(outcome.xgboost, outcome.data.meta.n_features, path)
            rows = windows[:, -1:, :]  # (S, 1, F)
            onnx_out = onnx_session(path).run(None, {"features": rows.astype(np.float32)})[0]
            parity[family] = float(np.max(np.abs(onnx_out - outcome.xgboost.predict_probabilities(rows))))
        else:
            model = outcome.lstm if family == "lstm" else outcome.mlp
            export = export_classifier_onnx(model, windows[:1], path)
            parity[family] = parity_max_abs_diff(ProbabilityHead(model), path, {"features": windows})
        if parity[family] > PARITY_TOLERANCE:
            raise RuntimeError(
                f"{family}: onnxruntime and the trained model disagree by {parity[family]:.2e} "
                f"(> {PARITY_TOLERANCE:g}); not shipping"
            )
        write_manifest(_manifest(config, outcome, outcomes, export, family, report), target)
    return parity


# ---- the run ------------------------------------------------------------------------------------


@dataclass
class BaselinesOutcome:
    run_dir: Path
    report: dict[str, Any]
    parity: dict[str, float]
    secs: float


def train_baselines(
    config: BaselinesTrainConfig, run_dir: Path, resume: bool = False, publish_dir: Path | None = None
) -> BaselinesOutcome:
    """Every fold, the report (pooled out-of-sample test results), the artifacts of `export_fold`.
    publish_dir: also copy the small, committable outputs there (models/, report.md/json, equity PNG)."""
    from qa_engine.models.baselines.report import write_baseline_report

    began = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.trainer.threads is not None:
        torch.set_num_threads(config.trainer.threads)
    bars = load_bars(config.data)
    outcomes: list[FoldOutcome] = []
    for fold in config.data.folds:
        started = time.perf_counter()
        data = build_fold(config.data, fold, bars)
        outcome = train_fold(config, data, bars, run_dir / "folds" / fold.name, resume)
        outcome.extra["fold_secs"] = time.perf_counter() - started
        outcomes.append(outcome)
    report = evaluate(config, outcomes)
    chosen = next((o for o in outcomes if o.data.fold.name == config.export_fold), outcomes[-1])
    parity = export_fold_models(config, chosen, outcomes, run_dir / "models", report)
    secs = time.perf_counter() - began
    report["artifact_fold"] = chosen.data.fold.name
    report["parity_max_abs_diff"] = parity
    report["total_secs"] = secs
    report["fold_secs"] = {o.data.fold.name: o.extra["fold_secs"] for o in outcomes}
    write_baseline_report(config, report, run_dir)
    if publish_dir is not None:
        publish(run_dir, publish_dir)
    return BaselinesOutcome(run_dir, {k: v for k, v in report.items() if k != "_curves"}, parity, secs)


PUBLISHED = ("report.md", "report.json", "equity_test.png", "config.toml")


def publish(run_dir: Path, publish_dir: Path) -> None:
    """Copy the committable outputs (no checkpoints): models/, report.md, report.json, equity_test.png."""
    publish_dir.mkdir(parents=True, exist_ok=True)
    for name in PUBLISHED:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, publish_dir / name)
    target = publish_dir / "models"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(run_dir / "models", target)


__all__ = [
    "BaselinesOutcome",
    "BaselinesTrainConfig",
    "ClassWindowSource",
    "evaluate",
    "export_fold_models",
    "fold_row_labels",
    "train_baselines",
    "train_fold",
]
