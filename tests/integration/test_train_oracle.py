"""`qa train oracle` end to end on three weeks of real bars: folds, training, report, a loadable artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa_engine.cli.main import main
from qa_engine.features.sets import default_feature_set
from qa_engine.inference.artifact import load_artifact
from qa_engine.inference.runner import OnnxRunner
from tests.unit.models.oracle_data import BTC_5M

pytest.importorskip("torch")

TINY = [
    f'data.sources=[{{symbol = "BTCUSDT", klines = "{BTC_5M}"}}]',
    "data.encoder_bars=24",
    "data.horizon_bars=6",
    'data.folds=[{name = "a", train_start = 2025-03-01T00:00:00Z, validation_start = 2025-03-15T00:00:00Z, '
    "test_start = 2025-03-18T00:00:00Z, test_end = 2025-03-20T00:00:00Z}, "
    '{name = "b", train_start = 2025-03-01T00:00:00Z, validation_start = 2025-03-17T00:00:00Z, '
    "test_start = 2025-03-20T00:00:00Z, test_end = 2025-03-22T00:00:00Z}]",
    "model.hidden_size=8",
    "model.attention_heads=2",
    "trainer.max_epochs=2",
    "trainer.train_windows_per_epoch=256",
    "trainer.validation_windows=128",
    "trainer.batch_size=64",
    "trainer.threads=1",
]


@pytest.mark.slow
def test_train_oracle_writes_a_checked_artifact_and_an_out_of_sample_report(
    tmp_path: Path, repo_root
) -> None:
    argv = [
        "train",
        "oracle",
        "--config",
        str(repo_root / "configs/train/oracle.toml"),
        "--out",
        str(tmp_path),
    ]
    for assignment in TINY:
        argv += ["--set", assignment]

    assert main(argv) == 0

    artifact = load_artifact(tmp_path, window_bars=24, interval="5m")
    artifact.check_registered(default_feature_set())
    artifact = load_artifact(tmp_path, expected_feature_set=artifact.feature_set(), window_bars=24)
    manifest = artifact.manifest
    assert [fold.name for fold in manifest.folds] == ["a", "b"] and manifest.trained_on_fold == "b"
    assert manifest.feature_set.declared_hash == default_feature_set().hash
    assert manifest.feature_set.hash != manifest.feature_set.declared_hash  # the FFD order was fitted
    forecast = OnnxRunner(artifact).predict(np.asarray(manifest.scaler.mean)[None].repeat(24, axis=0))
    assert forecast.shape == (6, 3) and np.all(np.diff(forecast, axis=1) > 0)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["forecasters"] == ["tft", "zero_median", "historical_quantiles", "persistence"]
    assert report["parity_max_abs_diff"] <= 1e-5
    assert [fold["test_range"][0][:10] for fold in report["folds"]] == ["2025-03-18", "2025-03-20"]
    for name in ("report.md", "config.toml", "folds/a/curves.csv", "folds/b/checkpoints/last.pt"):
        assert (tmp_path / name).exists(), name

    assert main([*argv, "--resume"]) == 0  # finished folds resume as done: nothing retrains
    resumed = json.loads((tmp_path / "report.json").read_text())
    assert resumed["pooled"]["tft"]["pinball_mean"] == report["pooled"]["tft"]["pinball_mean"]
