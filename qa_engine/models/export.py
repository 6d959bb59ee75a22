"""ONNX export for every model: static window shapes, a dynamic batch axis, checked with onnx and
onnxruntime, and a torch-vs-onnxruntime parity check.

The exporter is torch's TorchScript-based `torch.onnx.export(..., dynamo=False)`: it maps nn.LSTM to
one ONNX LSTM node and exports in a fraction of a second; the dynamo exporter (torch >= 2.9's default)
works too but takes ~10 s for the same graph. Opset 17 (LayerNormalization as one node) is well
inside what onnxruntime >= 1.17 runs.

The manifest records every model kind fills the same way (feature set, scaler, fold, code) are built
here too, next to the export whose graph they describe.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from qa_engine.contract.manifest import CodeRecord
from qa_engine.contract.manifest import FeatureSetRecord
from qa_engine.contract.manifest import FoldRecord
from qa_engine.contract.manifest import ScalerRecord
from qa_engine.contract.manifest import TensorRecord
from qa_engine.contract.manifest import code_version
from qa_engine.contract.manifest import package_version
from qa_engine.features.spec import FeatureSet
from qa_engine.inference.artifact import cpu_session
from qa_engine.inference.scaling import FeatureScaler
from qa_engine.models.data import FoldConfig
from qa_engine.models.data import iso

DEFAULT_OPSET = 17
BATCH_AXIS = "batch"
ONNX_DTYPES: dict[int, Literal["float32", "float64", "int64"]] = {1: "float32", 11: "float64", 7: "int64"}


@dataclass(frozen=True)
class OnnxExport:
    path: Path
    sha256: str
    opset: int
    inputs: list[TensorRecord]
    outputs: list[TensorRecord]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records(values) -> list[TensorRecord]:
    records = []
    for value in values:
        tensor = value.type.tensor_type
        shape: list[int | str] = [
            dim.dim_param if dim.dim_param else int(dim.dim_value) for dim in tensor.shape.dim
        ]
        records.append(TensorRecord(name=value.name, dtype=ONNX_DTYPES[tensor.elem_type], shape=shape))
    return records


def export_onnx(
    model: nn.Module,
    example_inputs: dict[str, torch.Tensor],
    output_names: list[str],
    path: Path,
    opset: int = DEFAULT_OPSET,
) -> OnnxExport:
    """Export `model` (in eval mode, on CPU) with inputs named as `example_inputs`' keys, in order.

    Every axis but the first keeps the example's size; axis 0 of every input and output is the dynamic
    `batch` axis. The file is checked with `onnx.checker`, and input/output records (names, dtypes,
    shapes) are read back from the written graph, so the manifest never retypes a shape.
    """
    import onnx

    model = model.to("cpu").eval()
    names = list(example_inputs)
    arguments = tuple(example_inputs[name].to("cpu") for name in names)
    dynamic_axes = {name: {0: BATCH_AXIS} for name in [*names, *output_names]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(
            model,
            arguments,
            str(path),
            input_names=names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    graph = onnx.load(str(path))
    with torch.no_grad():
        traced = model(*arguments)
    traced = (traced,) if isinstance(traced, torch.Tensor) else tuple(traced)
    for value, example in zip(graph.graph.output, traced, strict=True):
        # The TorchScript exporter sometimes leaves a static axis symbolic (after a slice + concat);
        # every axis but the batch has the traced size, so the graph says so.
        for dim, size in zip(value.type.tensor_type.shape.dim[1:], example.shape[1:], strict=True):
            dim.Clear()
            dim.dim_value = int(size)
    onnx.save(graph, str(path))
    onnx.checker.check_model(graph, full_check=True)
    return OnnxExport(
        path=path,
        sha256=file_sha256(path),
        opset=opset,
        inputs=_records(graph.graph.input),
        outputs=_records(graph.graph.output),
    )


def onnx_session(path: Path, threads: int = 1):
    """An onnxruntime CPU session with `threads` intra-op threads and sequential execution: the trading
    side's `cpu_session`, so parity is measured on the session the runners use."""
    return cpu_session(path, threads)


def _as_feed(value: np.ndarray) -> np.ndarray:
    """A parity input as the graph takes it: integers stay integers (int64: ids, actions, timesteps),
    everything else becomes float32."""
    array = np.asarray(value)
    dtype = np.int64 if np.issubdtype(array.dtype, np.integer) else np.float32
    return np.ascontiguousarray(array, dtype=dtype)


@torch.no_grad()
def parity_max_abs_diff(model: nn.Module, path: Path, inputs: dict[str, np.ndarray]) -> float:
    """Largest |torch - onnxruntime| over every output element, on the same inputs, given in the
    model's argument order: integer arrays are fed as int64 to both (token ids, actions, timesteps),
    the rest as float32."""
    model = model.to("cpu").eval()
    feed = {name: _as_feed(value) for name, value in inputs.items()}
    torch_outputs = model(*(torch.from_numpy(value) for value in feed.values()))
    if isinstance(torch_outputs, torch.Tensor):
        torch_outputs = (torch_outputs,)
    onnx_outputs = onnx_session(path).run(None, feed)
    return max(float(np.max(np.abs(t.numpy() - o))) for t, o in zip(torch_outputs, onnx_outputs, strict=True))


# ---- the manifest records every model kind fills the same way ----------------------------------


def feature_set_record(feature_set: FeatureSet, declared_hash: str, names: Sequence[str]) -> FeatureSetRecord:
    """The fitted feature set as a manifest records it; `names` is the column order the graph reads."""
    return FeatureSetRecord(
        name=feature_set.name,
        version=feature_set.version,
        hash=feature_set.hash,
        declared_hash=declared_hash,
        names=list(names),
        canonical=json.loads(feature_set.canonical_json()),
        warmup_bars=feature_set.warmup_bars,
    )


def scaler_record(scaler: FeatureScaler, fitted_on: str) -> ScalerRecord:
    """The feature scaler as a manifest records it; `fitted_on` says which rows it saw."""
    return ScalerRecord(
        mean=scaler.mean.tolist(), std=scaler.std.tolist(), clip=scaler.clip, fitted_on=fitted_on
    )


def fold_record(fold: FoldConfig, embargo_bars: int, windows: dict[str, int]) -> FoldRecord:
    """One walk-forward fold's bounds (UTC, to the second), embargo and window counts for a manifest."""
    return FoldRecord(
        name=fold.name,
        train_start=iso(fold.bounds_ns("train")[0]),
        validation_start=iso(fold.bounds_ns("validation")[0]),
        test_start=iso(fold.bounds_ns("test")[0]),
        test_end=iso(fold.bounds_ns("test")[1]),
        embargo_bars=embargo_bars,
        windows=windows,
    )


def code_record(export: OnnxExport, package: str | None = None) -> CodeRecord:
    """Where the artifact came from: git commit and dirtiness, package version (`package`, or the
    installed distribution's), torch version and the ONNX opset of `export`."""
    commit, dirty = code_version()
    return CodeRecord(
        git_commit=commit,
        git_dirty=dirty,
        package_version=package_version() if package is None else package,
        torch_version=torch.__version__,
        onnx_opset=export.opset,
    )
