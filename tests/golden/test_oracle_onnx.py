"""Golden checks of the Oracle's ONNX path.

1. torch and onnxruntime agree within 1e-5 for the default-size TFT on real default-feature windows
   (batch 1 and a batch of 32).
2. The committed artifact (artifacts/oracle) loads against the current default feature set and, on a
   fixed real window, still forecasts the reviewed numbers in tests/golden/oracle_artifact_forecast.json
   (regenerate after retraining the artifact: pytest tests/golden --regen-golden).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from qa_engine.errors import ConfigError
from qa_engine.features.sets import default_feature_set
from qa_engine.inference.artifact import load_artifact
from qa_engine.inference.runner import OnnxRunner
from qa_engine.inference.scaling import fit_feature_scaler
from qa_engine.models.data import series_arrays
from tests.unit.models.oracle_data import STEP_NS
from tests.unit.models.oracle_data import bars_from

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = REPO_ROOT / "artifacts" / "oracle"
GOLDEN = Path(__file__).with_name("oracle_artifact_forecast.json")
GOLDEN_WINDOW_END = "2026-02-01T00:00:00"  # bar close time of the golden window's last bar (UTC)


def test_default_size_tft_torch_and_onnxruntime_agree_within_1e_5(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from qa_engine.models.export import export_onnx
    from qa_engine.models.export import parity_max_abs_diff
    from qa_engine.models.oracle.network import ForecastShape
    from qa_engine.models.oracle.network import TemporalFusionTransformer
    from qa_engine.models.oracle.network import TFTConfig

    feature_set = default_feature_set()
    arrays, resolved = series_arrays(bars_from("2025-06-01T00:00:00", 1_200), feature_set, 12, STEP_NS)
    scaler = fit_feature_scaler(arrays["features"], resolved.names, clip=8.0)
    scaled = scaler.transform(arrays["features"]).astype(np.float32)  # (N, 52)
    ends = np.linspace(60, len(scaled) - 1, 32).round().astype(np.int64)
    windows = scaled[ends[:, None] + np.arange(-59, 1)]  # (32, 60, 52) real windows
    torch.manual_seed(3)
    model = TemporalFusionTransformer(TFTConfig(), ForecastShape(len(resolved.names), 60, 12)).eval()

    export = export_onnx(
        model, {"features": torch.from_numpy(windows[:1])}, ["quantiles"], tmp_path / "m.onnx"
    )

    assert [(t.name, t.shape) for t in export.inputs] == [("features", ["batch", 60, 52])]
    assert [(t.name, t.shape) for t in export.outputs] == [("quantiles", ["batch", 12, 3])]
    assert parity_max_abs_diff(model, export.path, {"features": windows[:1]}) <= 1e-5
    assert parity_max_abs_diff(model, export.path, {"features": windows}) <= 1e-5


def golden_window(runner: OnnxRunner, feature_set) -> np.ndarray:
    """The 60 x 52 raw feature window ending at GOLDEN_WINDOW_END, from real Binance BTCUSDT 5m bars."""
    bars = bars_from("2026-01-20T00:00:00", 3_500)
    end_ns = int(np.datetime64(GOLDEN_WINDOW_END, "ns").astype(np.int64))
    bars = bars.filter(pl.col("ts") <= end_ns)
    arrays, _ = series_arrays(bars, feature_set, 1, STEP_NS)
    assert arrays["ts"][-1] == end_ns
    return arrays["features"][-runner.window_shape[0] :]


def test_committed_artifact_still_forecasts_the_reviewed_numbers(regen_golden: bool) -> None:
    if not (ARTIFACT / "manifest.json").exists():
        pytest.skip("no committed Oracle artifact")
    inspected = load_artifact(ARTIFACT, window_bars=60, interval="5m")
    inspected.check_registered(default_feature_set())  # the feature code has not changed since training
    with pytest.raises(ConfigError, match="registered set before fitting(.|\n)*ffd_log_close"):
        load_artifact(ARTIFACT, expected_feature_set=default_feature_set())  # unfitted FFD order: refused
    artifact = load_artifact(ARTIFACT, expected_feature_set=inspected.feature_set(), window_bars=60)
    runner = OnnxRunner(artifact)

    forecast = runner.predict(golden_window(runner, artifact.feature_set()))

    assert forecast.shape == (artifact.manifest.window.horizon_bars, len(artifact.manifest.oracle.quantiles))
    record = {
        "model_sha256": artifact.manifest.model_sha256,
        "window_end": GOLDEN_WINDOW_END,
        "quantiles": artifact.manifest.oracle.quantiles,
        "forecast_log_returns": forecast.round(9).tolist(),
    }
    if regen_golden:
        GOLDEN.write_text(json.dumps(record, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert golden["model_sha256"] == record["model_sha256"], "artifact retrained: run pytest --regen-golden"
    np.testing.assert_allclose(forecast, golden["forecast_log_returns"], rtol=0, atol=1e-7)
    assert np.all(np.diff(forecast, axis=1) > 0)  # quantiles do not cross
