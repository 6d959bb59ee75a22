"""Oracle evaluation metrics and the report, on hand-made numbers and on real windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa_engine.models.evaluation import FoldEvaluation
from qa_engine.models.evaluation import baseline_forecasts
from qa_engine.models.evaluation import calibration
from qa_engine.models.evaluation import coverage
from qa_engine.models.evaluation import directional
from qa_engine.models.evaluation import evaluate_folds
from qa_engine.models.evaluation import pinball
from qa_engine.models.evaluation import realised_returns
from qa_engine.models.evaluation import write_report
from tests.unit.models.oracle_data import tiny_fold

QUANTILES = (0.1, 0.5, 0.9)


def test_pinball_coverage_and_calibration_by_hand() -> None:
    forecast = np.array([[[-1.0, 0.0, 1.0]], [[-1.0, 0.0, 1.0]]])  # (N=2, H=1, Q=3)
    realised = np.array([[0.5], [2.0]])

    losses = pinball(forecast, realised, QUANTILES)

    # window 1: 0.1*1.5, 0.5*0.5, 0.1*0.5; window 2: 0.1*3, 0.5*2, 0.9*1
    np.testing.assert_allclose(losses, [[(0.15 + 0.3) / 2, (0.25 + 1.0) / 2, (0.05 + 0.9) / 2]])
    np.testing.assert_allclose(coverage(forecast, realised, 0, 2), [0.5])
    np.testing.assert_allclose(calibration(forecast, realised), [0.0, 0.0, 0.5])


def test_directional_accuracy_counts_and_leaves_out_zeros() -> None:
    median = np.array([[0.1], [-0.2], [0.3], [0.0], [0.2]])
    realised = np.array([[0.5], [0.1], [0.2], [0.4], [0.0]])

    result = directional(median, realised, step=1)

    assert (result["hits"], result["count"], result["zero"]) == (2, 3, 2)
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert directional(median, realised, step=1, stride=2)["count"] == 2  # rows 0, 2 (row 4 is zero)


def test_baselines_use_training_quantiles_and_the_last_return() -> None:
    data = tiny_fold()
    train, test = data.splits["train"], data.splits["test"]

    forecasts = baseline_forecasts(train, test, QUANTILES)

    levels = np.quantile(train.labels_raw[train.ends], QUANTILES, axis=0).T  # (H, Q)
    np.testing.assert_allclose(forecasts["historical_quantiles"][0], levels)
    assert np.all(forecasts["zero_median"][..., 1] == 0.0)
    np.testing.assert_allclose(
        forecasts["zero_median"][..., 0], np.broadcast_to(levels[:, 0], (len(test), 4))
    )
    past = test.past_returns[test.ends]
    np.testing.assert_allclose(forecasts["persistence"][..., 1], past)  # the median is the last k-bar return
    assert forecasts["persistence"].shape == (len(test), data.meta.horizon_bars, 3)


def test_report_pools_folds_and_flags_suspicious_accuracy(tmp_path: Path) -> None:
    data = tiny_fold()
    test = data.splits["test"]
    realised = realised_returns(test)
    baselines = baseline_forecasts(data.splits["train"], test, QUANTILES)
    oracle = realised[..., None] + np.array([-1e-3, 0.0, 1e-3])  # a "forecaster" that knows the future
    fold = FoldEvaluation(
        fold="tiny",
        test_range=("a", "b"),
        forecasts={"tft": oracle, **baselines},
        realised=realised,
        ts=test.ts[test.ends],
        variable_importance=dict.fromkeys(data.meta.feature_names, 0.2),
        training={"epochs": 1, "best_epoch": 1, "secs_per_epoch": 1.0},
    )

    report = evaluate_folds([fold], QUANTILES, data.meta.horizon_bars)
    write_report(report, [fold], tmp_path, "# test", {"note": 1})

    assert report["leakage_suspected"]
    assert report["pooled"]["tft"]["coverage"] == 1.0
    assert report["tft_skill_vs_baselines"]["zero_median"] > 0.5
    markdown = (tmp_path / "report.md").read_text()
    assert "| forecaster | pinball q0.1 (bp) | pinball q0.5 (bp) | pinball q0.9 (bp) |" in markdown
    assert "almost always means leakage" in markdown
    assert report["strongest_baseline"] in baselines and "Skill against the strongest baseline (" in markdown
    assert json.loads((tmp_path / "report.json").read_text())["note"] == 1
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "calibration.png",
        "coverage_by_step.png",
        "forecast_sample.png",
        "pinball_by_step.png",
    ]
