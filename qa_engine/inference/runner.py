"""Run a checked artifact with onnxruntime: raw feature windows in, model outputs in natural units out.

Shapes come from the manifest; the scaler is the manifest's, applied by the same function training
used (`qa_engine.inference.scaling`). One intra-op thread by default: a trading process runs many
small single-window calls, where extra threads only add synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qa_engine.contract.manifest import ArtifactManifest
from qa_engine.errors import DataError
from qa_engine.inference.artifact import Artifact
from qa_engine.inference.artifact import cpu_session
from qa_engine.inference.scaling import FeatureScaler


def _oracle_outputs(manifest: ArtifactManifest) -> Callable[[np.ndarray], np.ndarray]:
    assert manifest.oracle is not None
    scale = np.asarray(manifest.oracle.target_scale, dtype=np.float64)[:, None]  # (H, 1)
    return lambda raw: raw.astype(np.float64) * scale  # (B, H, Q) log returns


# Model kind -> how its first output becomes natural units. Kinds without an entry pass it through.
OUTPUT_TRANSFORMS: dict[str, Callable[[ArtifactManifest], Callable[[np.ndarray], np.ndarray]]] = {
    "oracle": _oracle_outputs,
}


class OnnxRunner:
    """`predict(window)` for one (E, F) window of raw features; `predict_batch` for (B, E, F)."""

    def __init__(self, artifact: Artifact, threads: int = 1) -> None:
        manifest = artifact.manifest
        self.manifest = manifest
        self.session = cpu_session(artifact.model_path, threads)
        self.input_name = manifest.inputs[0].name
        self.output_name = manifest.outputs[0].name
        self.window_shape = (manifest.window.encoder_bars, len(manifest.feature_set.names))  # (E, F)
        self.scaler = FeatureScaler(
            tuple(manifest.feature_set.names),
            np.asarray(manifest.scaler.mean, dtype=np.float64),
            np.asarray(manifest.scaler.std, dtype=np.float64),
            manifest.scaler.clip,
        )
        factory = OUTPUT_TRANSFORMS.get(manifest.model_kind)
        self.postprocess: Callable[[np.ndarray], np.ndarray] = (
            factory(manifest) if factory else (lambda raw: raw)
        )
        # predict()'s buffers, reused per call (a runner serves one caller at a time, as its session)
        self._window64 = np.zeros(self.window_shape, dtype=np.float64)
        self._scaled = np.zeros((1, *self.window_shape), dtype=np.float32)
        self._output_names = [self.output_name]
        self._feed = {self.input_name: self._scaled}

    def run_scaled(self, scaled: np.ndarray) -> np.ndarray:
        """The raw ONNX output for already-scaled float32 windows (B, E, F)."""
        return self.session.run([self.output_name], {self.input_name: scaled})[0]

    def predict_batch(self, windows: np.ndarray) -> np.ndarray:
        """(B, E, F) raw features, oldest bar first -> (B, ...) outputs in natural units."""
        if windows.ndim != 3 or windows.shape[1:] != self.window_shape:
            raise DataError(
                f"expected windows of shape (batch, {self.window_shape[0]}, {self.window_shape[1]}) "
                f"(bars x features, manifest order), got {windows.shape}"
            )
        if not np.all(np.isfinite(windows)):
            raise DataError("the feature window holds NaN/inf (warm-up not finished, or a gap)")
        scaled = self.scaler.transform(windows).astype(np.float32)
        return self.postprocess(self.run_scaled(scaled))

    def predict(self, window: np.ndarray) -> np.ndarray:
        """One (E, F) window of raw features -> its outputs; for the Oracle (H, Q) log-return quantiles.

        `predict_batch(window[None])[0]` bit for bit, without its per-call arrays: the scaler's float64
        operations in the same order, in place, then the float32 cast, into reused buffers."""
        if window.shape != self.window_shape or not np.isfinite(window).all():
            return self.predict_batch(window[None])[0]  # raises the DataError
        scaler, row = self.scaler, self._window64
        np.subtract(window, scaler.mean, out=row)
        np.divide(row, scaler.std, out=row)
        np.maximum(row, -scaler.clip, out=row)  # = np.clip for finite values
        np.minimum(row, scaler.clip, out=row)
        self._scaled[0] = row
        return self.postprocess(self.session.run(self._output_names, self._feed)[0])[0]
