"""The baselines of the founding documents: an XGBoost classifier on the feature vector at bar t, an
LSTM classifier over 20-bar feature windows, an MLP classifier over the flattened (or last-step) window,
their ONNX export, an ensemble helper (0.6 XGB + 0.4 LSTM with an agreement flag) and the naive
forecasters the evaluation compares them with.

All three classify the label of `qa_engine.contract.labels` (SELL / HOLD / BUY from the N-bar forward
return against a threshold). Every model takes a window of scaled features (B, E, F) (E = 1 for
XGBoost: the features at t), so every artifact shares the same input contract; input sizes come from
the dataset (`ClassifierShape`), never typed by hand. torch modules return logits (B, 3); the exported
graphs return probabilities (B, 3) in class order SELL, HOLD, BUY.

The torch-free pieces live in `qa_engine.contract.baseline` (the ensemble, which trading runs too) and
`signals` (naive forecasters, positions) and are re-exported here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from qa_engine.contract.baseline import DEFAULT_ENSEMBLE_WEIGHTS
from qa_engine.contract.baseline import EnsembleOutput
from qa_engine.contract.baseline import agreement_classes
from qa_engine.contract.baseline import ensemble_probabilities
from qa_engine.contract.labels import N_CLASSES
from qa_engine.contract.manifest import TensorRecord
from qa_engine.models.baselines.signals import class_prior_forecast
from qa_engine.models.baselines.signals import persistence_forecast
from qa_engine.models.baselines.signals import positions_from_classes
from qa_engine.models.baselines.signals import stratified_random_forecast
from qa_engine.models.baselines.signals import zero_return_forecast
from qa_engine.models.export import DEFAULT_OPSET
from qa_engine.models.export import OnnxExport
from qa_engine.models.export import export_onnx
from qa_engine.models.export import file_sha256

__all__ = [
    "DEFAULT_ENSEMBLE_WEIGHTS",
    "ClassifierShape",
    "EnsembleOutput",
    "LSTMClassifier",
    "LSTMClassifierConfig",
    "MLPClassifier",
    "MLPClassifierConfig",
    "ProbabilityHead",
    "XGBoostConfig",
    "agreement_classes",
    "class_prior_forecast",
    "ensemble_probabilities",
    "export_classifier_onnx",
    "export_xgboost_onnx",
    "load_xgboost_fit",
    "persistence_forecast",
    "positions_from_classes",
    "predict_probabilities",
    "save_xgboost_fit",
    "stratified_random_forecast",
    "train_xgboost",
    "weighted_cross_entropy",
    "zero_return_forecast",
]

XGBOOST_ONNX_OPSET = 15  # onnxmltools 1.16 converts tree ensembles up to opset 15 (ai.onnx.ml TreeEnsemble)
INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"


@dataclass(frozen=True)
class ClassifierShape:
    """What a classifier reads, taken from the dataset: F features per bar, E bars per window."""

    n_features: int
    window_bars: int


# ---- LSTM ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LSTMClassifierConfig:
    hidden_size: int = 32
    layers: int = 1
    dropout: float = 0.1  # on the last hidden state (and between layers when layers > 1)

    def __post_init__(self) -> None:
        if self.hidden_size < 1 or self.layers < 1 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"invalid LSTMClassifierConfig {self}")


class LSTMClassifier(nn.Module):
    """LSTM over the window, a linear head on the last step's hidden state -> logits (B, 3)."""

    def __init__(self, config: LSTMClassifierConfig, shape: ClassifierShape) -> None:
        super().__init__()
        self.config = config
        self.shape = shape
        self.lstm = nn.LSTM(
            shape.n_features,
            config.hidden_size,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence, _ = self.lstm(x)  # (B, E, H)
        last = sequence[:, -1, :]  # (B, H)
        return self.head(self.dropout(last))  # (B, 3)


# ---- MLP ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MLPClassifierConfig:
    hidden_sizes: tuple[int, ...] = (16, 16)
    dropout: float = 0.1
    input_mode: Literal["flatten", "last"] = "flatten"  # the whole window (E * F) or the last row (F)

    def __post_init__(self) -> None:
        if (
            not self.hidden_sizes
            or any(size < 1 for size in self.hidden_sizes)
            or not 0.0 <= self.dropout < 1.0
        ):
            raise ValueError(f"invalid MLPClassifierConfig {self}")
        if self.input_mode not in ("flatten", "last"):
            raise ValueError(f"input_mode must be 'flatten' or 'last', got {self.input_mode!r}")


class MLPClassifier(nn.Module):
    """Linear -> GELU -> dropout blocks over the flattened window (or its last row) -> logits (B, 3)."""

    def __init__(self, config: MLPClassifierConfig, shape: ClassifierShape) -> None:
        super().__init__()
        self.config = config
        self.shape = shape
        width = shape.n_features * (shape.window_bars if config.input_mode == "flatten" else 1)
        layers: list[nn.Module] = []
        for size in config.hidden_sizes:
            layers += [nn.Linear(width, size), nn.GELU(), nn.Dropout(config.dropout)]
            width = size
        layers.append(nn.Linear(width, N_CLASSES))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flatten = self.config.input_mode == "flatten"
        inputs = x.reshape(x.shape[0], -1) if flatten else x[:, -1, :]  # (B, E * F) or (B, F)
        return self.net(inputs)  # (B, 3)


class ProbabilityHead(nn.Module):
    """Wraps a logits classifier for export: softmax over the classes -> probabilities (B, 3)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(x), dim=-1)  # (B, 3)


def weighted_cross_entropy(class_weights: np.ndarray):
    """loss_fn for the Trainer: class-weighted cross entropy (weights from the training fold), batches
    {"x": (B, E, F) float32, "y": (B,) int64}."""
    weights = torch.as_tensor(np.asarray(class_weights), dtype=torch.float32)

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = model(batch["x"])  # (B, 3)
        return functional.cross_entropy(logits, batch["y"], weight=weights.to(logits.device))

    return loss


def export_classifier_onnx(model: nn.Module, example: np.ndarray, path: Path) -> OnnxExport:
    """model.onnx taking `features` (batch, E, F) float32 and returning `probabilities` (batch, 3)."""
    head = ProbabilityHead(model).eval()
    tensor = torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32))
    return export_onnx(head, {INPUT_NAME: tensor}, [OUTPUT_NAME], path, opset=DEFAULT_OPSET)


@torch.no_grad()
def predict_probabilities(model: nn.Module, windows: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """(N, 3) float64 softmax probabilities of a logits classifier over (N, E, F) windows."""
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(windows), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch_size], dtype=np.float32))
        outputs.append(torch.softmax(model(chunk.to(device)), dim=-1).cpu().numpy().astype(np.float64))
    return np.concatenate(outputs) if outputs else np.zeros((0, N_CLASSES))


# ---- XGBoost ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class XGBoostConfig:
    """A multi:softprob booster; the number of rounds is chosen by early stopping on validation."""

    max_rounds: int = 400
    early_stopping_rounds: int = 30
    max_depth: int = 4
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 20.0
    reg_lambda: float = 1.0
    threads: int = 1
    seed: int = 7

    def __post_init__(self) -> None:
        if self.max_rounds < 1 or self.early_stopping_rounds < 1 or self.max_depth < 1 or self.threads < 1:
            raise ValueError(f"invalid XGBoostConfig {self}")
        if (
            not 0 < self.learning_rate <= 1
            or not 0 < self.subsample <= 1
            or not 0 < self.colsample_bytree <= 1
        ):
            raise ValueError(f"invalid XGBoostConfig {self}")


@dataclass
class XGBoostFit:
    booster: Any  # xgboost.Booster holding only the rounds up to the best validation round
    best_round: int  # 1-based number of rounds kept
    rounds_tried: int
    validation_mlogloss: float
    secs: float

    def predict_probabilities(self, features: np.ndarray) -> np.ndarray:
        """(N, 3) float64 probabilities for (N, F) feature rows (or (N, 1, F) windows)."""
        import xgboost

        rows = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
        return self.booster.predict(xgboost.DMatrix(rows)).astype(np.float64)


def train_xgboost(
    config: XGBoostConfig,
    train_x: np.ndarray,
    train_y: np.ndarray,
    train_weight: np.ndarray,
    validation_x: np.ndarray,
    validation_y: np.ndarray,
    validation_weight: np.ndarray,
) -> XGBoostFit:
    """Fit on (N, F) training rows with class-balancing sample weights; stop when the weighted
    validation mlogloss has not improved for `early_stopping_rounds`; keep the best rounds only."""
    import time

    import xgboost

    began = time.perf_counter()
    train = xgboost.DMatrix(np.asarray(train_x, dtype=np.float32), label=train_y, weight=train_weight)
    validation = xgboost.DMatrix(
        np.asarray(validation_x, dtype=np.float32), label=validation_y, weight=validation_weight
    )
    params = {
        "objective": "multi:softprob",
        "num_class": N_CLASSES,
        "eval_metric": "mlogloss",
        "tree_method": "hist",
        "max_depth": config.max_depth,
        "eta": config.learning_rate,
        "subsample": config.subsample,
        "colsample_bytree": config.colsample_bytree,
        "min_child_weight": config.min_child_weight,
        "lambda": config.reg_lambda,
        "nthread": config.threads,
        "seed": config.seed,
    }
    history: dict[str, dict[str, list[float]]] = {}
    booster = xgboost.train(
        params,
        train,
        num_boost_round=config.max_rounds,
        evals=[(validation, "validation")],
        early_stopping_rounds=config.early_stopping_rounds,
        evals_result=history,
        verbose_eval=False,
    )
    best = int(booster.best_iteration) + 1
    losses = history["validation"]["mlogloss"]
    return XGBoostFit(
        booster=booster[:best],
        best_round=best,
        rounds_tried=len(losses),
        validation_mlogloss=float(losses[best - 1]),
        secs=time.perf_counter() - began,
    )


def save_xgboost_fit(fit: XGBoostFit, folder: Path) -> Path:
    """booster.json (xgboost's own format, the kept rounds only) + fit.json (rounds, loss, secs)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    fit.booster.save_model(str(folder / "booster.json"))
    facts = {k: getattr(fit, k) for k in ("best_round", "rounds_tried", "validation_mlogloss", "secs")}
    (folder / "fit.json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    return folder / "booster.json"


def load_xgboost_fit(folder: Path) -> XGBoostFit:
    """The fit saved by `save_xgboost_fit` (resume, benchmarks)."""
    import json

    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(folder / "booster.json"))
    facts = json.loads((folder / "fit.json").read_text(encoding="utf-8"))
    return XGBoostFit(booster=booster, **facts)


def _tensor_records(values) -> list[TensorRecord]:
    dtypes = {1: "float32", 11: "float64", 7: "int64"}
    records = []
    for value in values:
        tensor = value.type.tensor_type
        shape: list[int | str] = [d.dim_param if d.dim_param else int(d.dim_value) for d in tensor.shape.dim]
        records.append(TensorRecord(name=value.name, dtype=dtypes[tensor.elem_type], shape=shape))  # type: ignore[arg-type]
    return records


def export_xgboost_onnx(fit: XGBoostFit, n_features: int, path: Path) -> OnnxExport:
    """model.onnx for the booster: `features` (batch, 1, F) -> Flatten -> TreeEnsembleClassifier ->
    `probabilities` (batch, 3), so that it takes the same window contract as the torch classifiers.
    Converted with onnxmltools (opset 15, ai.onnx.ml); the converter's `label` output is dropped."""
    import onnx
    from onnx import TensorProto
    from onnx import helper
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    flat_name = "features_flat"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = convert_xgboost(
            fit.booster,
            initial_types=[(flat_name, FloatTensorType([None, n_features]))],
            target_opset=XGBOOST_ONNX_OPSET,
        )
    graph = converted.graph
    probability = next(output for output in graph.output if output.name == "probabilities")
    flatten = helper.make_node("Flatten", [INPUT_NAME], [flat_name], axis=1, name="window_to_rows")
    window_input = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 1, n_features])
    new_output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", N_CLASSES])
    nodes = [flatten, *graph.node]
    if probability.name != OUTPUT_NAME:  # pragma: no cover - onnxmltools names it 'probabilities'
        nodes.append(helper.make_node("Identity", [probability.name], [OUTPUT_NAME]))
    new_graph = helper.make_graph(
        nodes, "xgboost_classifier", [window_input], [new_output], initializer=list(graph.initializer)
    )
    opsets = {entry.domain: entry.version for entry in converted.opset_import}
    opsets[""] = max(opsets.get("", 0), XGBOOST_ONNX_OPSET)  # Flatten is a default-domain operator
    model = helper.make_model(
        new_graph, opset_imports=[helper.make_opsetid(domain, version) for domain, version in opsets.items()]
    )
    model.ir_version = converted.ir_version
    model.producer_name = "qa_engine.models.baselines.network"
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    written = onnx.load(str(path))
    return OnnxExport(
        path=path,
        sha256=file_sha256(path),
        opset=XGBOOST_ONNX_OPSET,
        inputs=_tensor_records(written.graph.input),
        outputs=_tensor_records(written.graph.output),
    )
