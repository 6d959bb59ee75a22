"""Golden checks of the Guardian's ONNX path.

1. torch and onnxruntime agree within 1e-5 (the shared `parity_max_abs_diff`) for the default-size
   Guardian graph (encoder + centroids) on real guardian-feature windows, batch 1 and a batch of 32.
2. The committed artifact (artifacts/guardian) loads through the shared loader against the current
   guardian feature set and, on real bars ending at a fixed time, still gives the reviewed regime
   probabilities and persistence-filtered regimes in tests/golden/guardian_artifact_regimes.json
   (regenerate after retraining the artifact: pytest tests/golden --regen-golden).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from qa_engine.errors import ConfigError
from qa_engine.features.build import build_feature_table
from qa_engine.features.sets import guardian_feature_set
from qa_engine.inference.artifact import load_artifact
from qa_engine.inference.guardian import GuardianOnline
from qa_engine.inference.runner import OnnxRunner
from qa_engine.inference.scaling import fit_feature_scaler
from tests.unit.models.oracle_data import STEP_NS
from tests.unit.models.oracle_data import bars_from

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = REPO_ROOT / "artifacts" / "guardian"
GOLDEN = Path(__file__).with_name("guardian_artifact_regimes.json")
GOLDEN_WINDOW_END = "2026-02-01T00:00:00"  # bar close time of the last window's last bar (UTC)
REPLAYED_BARS = 48  # GuardianOnline replays this many consecutive windows up to GOLDEN_WINDOW_END


def real_guardian_features(start: str, count: int, end: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ts, raw guardian features) of real Binance BTCUSDT 5m bars from `start` (warm-up dropped)."""
    bars = bars_from(start, count)
    if end is not None:
        bars = bars.filter(pl.col("ts") <= int(np.datetime64(end, "ns").astype(np.int64)))
    table = build_feature_table(bars, guardian_feature_set(), STEP_NS)
    return table.table.get_column("ts").to_numpy(), table.table.select(
        guardian_feature_set().names
    ).to_numpy()


def test_default_size_guardian_torch_and_onnxruntime_agree_within_1e_5(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from qa_engine.models.export import export_onnx
    from qa_engine.models.export import parity_max_abs_diff
    from qa_engine.models.guardian.network import ContrastiveVAE
    from qa_engine.models.guardian.network import GuardianConfig
    from qa_engine.models.guardian.network import GuardianInference
    from qa_engine.models.guardian.regimes import fit_regimes
    from qa_engine.models.guardian.train import encode_windows
    from qa_engine.models.guardian.train import gather_windows

    _, raw = real_guardian_features("2025-06-01T00:00:00", 1_500)
    names = guardian_feature_set().names
    scaled = fit_feature_scaler(raw, names, clip=5.0).transform(raw).astype(np.float32)  # (N, 20)
    config = GuardianConfig(n_features=len(names))
    torch.manual_seed(5)
    network = ContrastiveVAE(config).eval()
    ends = np.arange(config.window_bars - 1, len(scaled), dtype=np.int64)
    regimes = fit_regimes(
        encode_windows(network, scaled, ends), np.abs(raw[ends, 0]) + 1e-4, raw[ends, 0], config.regimes
    )
    picks = np.linspace(0, len(ends) - 1, 32).round().astype(np.int64)
    windows = gather_windows(scaled, ends[picks], config.window_bars)  # (32, 32, 20) real windows
    module = GuardianInference(network.encoder, regimes).eval()

    export = export_onnx(
        module,
        {"window": torch.from_numpy(windows[:1])},
        ["regime_probabilities", "latent_mean"],
        tmp_path / "g.onnx",
    )

    assert [(t.name, t.shape) for t in export.inputs] == [("window", ["batch", 32, 20])]
    assert [(t.name, t.shape) for t in export.outputs] == [
        ("regime_probabilities", ["batch", 4]),
        ("latent_mean", ["batch", 8]),
    ]
    assert parity_max_abs_diff(module, export.path, {"window": windows[:1]}) <= 1e-5
    assert parity_max_abs_diff(module, export.path, {"window": windows}) <= 1e-5


def test_committed_artifact_still_gives_the_reviewed_regimes(regen_golden: bool) -> None:
    if not (ARTIFACT / "manifest.json").exists():
        pytest.skip("no committed Guardian artifact")
    inspected = load_artifact(ARTIFACT, window_bars=32, interval="5m")  # the shared loader reads the kind
    inspected.check_registered(guardian_feature_set())  # the feature code has not changed since training
    artifact = load_artifact(ARTIFACT, expected_feature_set=inspected.feature_set(), window_bars=32)
    with pytest.raises(ConfigError, match="windows of 32 bars"):
        load_artifact(ARTIFACT, window_bars=16)
    runner = OnnxRunner(artifact)
    online = GuardianOnline(artifact)
    ts, raw = real_guardian_features("2026-01-20T00:00:00", 3_500, GOLDEN_WINDOW_END)
    assert ts[-1] == int(np.datetime64(GOLDEN_WINDOW_END, "ns").astype(np.int64))
    bars = artifact.manifest.window.encoder_bars

    probabilities = runner.predict(raw[-bars:])
    readings = [
        online.update(raw[end - bars + 1 : end + 1]) for end in range(len(raw) - REPLAYED_BARS, len(raw))
    ]

    section = artifact.manifest.guardian
    assert probabilities.shape == (section.n_regimes,)
    np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-6)
    np.testing.assert_allclose(readings[-1].probabilities, probabilities, atol=1e-12)
    record = {
        "model_sha256": artifact.manifest.model_sha256,
        "window_end": GOLDEN_WINDOW_END,
        "probabilities": probabilities.round(7).tolist(),
        "regimes": [reading.regime for reading in readings],
        "risk_scales": [reading.risk_scale for reading in readings],
    }
    if regen_golden:
        GOLDEN.write_text(json.dumps(record, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert golden["model_sha256"] == record["model_sha256"], "artifact retrained: run pytest --regen-golden"
    np.testing.assert_allclose(probabilities, golden["probabilities"], rtol=0, atol=1e-6)
    assert record["regimes"] == golden["regimes"]
    assert record["risk_scales"] == [section.risk_scale[k] for k in golden["regimes"]]
