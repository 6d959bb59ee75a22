"""qa_engine.models.baselines.report: the baselines' report.md tables, report.json and equity_test.png,
from a small hand-made report whose every number can be checked by hand (torch-free)."""

from __future__ import annotations

import copy
import json
import math
import tomllib

import numpy as np
import polars as pl
import pytest

from qa_engine.models.baselines.evaluate import BacktestCurve
from qa_engine.models.baselines.report import _every_4_hours
from qa_engine.models.baselines.report import _fmt
from qa_engine.models.baselines.report import _pct
from qa_engine.models.baselines.report import _rounded
from qa_engine.models.baselines.report import render_markdown
from qa_engine.models.baselines.report import write_baseline_report
from qa_engine.models.data import WalkForwardRunConfig

STEP_NS = 300_000_000_000  # 5m
FORECASTERS = ["xgboost", "lstm", "mlp", "ensemble", "persistence", "zero_return"]
STRATEGIES = [*FORECASTERS, "buy_and_hold"]


@pytest.fixture
def config() -> WalkForwardRunConfig:
    return WalkForwardRunConfig.model_validate(
        {
            "id": "tiny-baselines",
            "description": "A two-fold toy run.",
            "data": {
                "interval": "5m",
                "horizon_bars": 12,
                "embargo_bars": 24,
                "sources": [{"symbol": "BTCUSDT", "klines": "data/klines/btc.parquet"}],
                "folds": [
                    {
                        "name": "f1",
                        "train_start": "2025-01-01T00:00:00Z",
                        "validation_start": "2025-02-01T00:00:00Z",
                        "test_start": "2025-03-01T00:00:00Z",
                        "test_end": "2025-04-01T00:00:00Z",
                    },
                    {
                        "name": "f2",
                        "train_start": "2025-01-01T00:00:00Z",
                        "validation_start": "2025-03-01T00:00:00Z",
                        "test_start": "2025-04-01T00:00:00Z",
                        "test_end": "2025-05-01T00:00:00Z",
                    },
                ],
            },
        }
    )


def _classification(accuracy: float, acts: bool) -> dict:
    return {
        "accuracy": accuracy,
        "balanced_accuracy": 0.45,
        "macro_f1": 0.4,
        "log_loss": 1.05 if acts else float("nan"),
        "predicted_share": {"SELL": 0.2, "HOLD": 0.5, "BUY": 0.3}
        if acts
        else {"SELL": 0, "HOLD": 1, "BUY": 0},
        "directional": {"accuracy": 0.55, "count": 1234} if acts else {"accuracy": None, "count": 0},
        "directional_non_overlapping": (
            {"accuracy": 0.6, "ci95": [0.5, 0.7], "count": 100}
            if acts
            else {"accuracy": None, "ci95": [float("nan"), float("nan")], "count": 0}
        ),
        "true_share": {"SELL": 0.25, "HOLD": 0.5, "BUY": 0.25},
        "confusion": [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
    }


def _backtest(net: float) -> dict:
    return {
        "total_return_pct": net,
        "gross_return_pct": net + 2.0,
        "fees_pct_of_equity": 2.0,
        "max_drawdown_pct": -4.25,
        "sharpe": 0.5,
        "gross_sharpe": 1.5,
        "years": 4.0,  # t-stat = 1.5 x sqrt(4) = +3.0
        "position_changes": 1234,
        "long_share": 0.6,
        "short_share": 0.2,
    }


def _ranges(offset: int) -> dict:
    return {
        "train": {
            "first_window_end": f"T{offset}a",
            "last_window_end": f"T{offset}b",
            "last_label_bar": f"T{offset}c",
        },
        "validation": {
            "first_window_end": f"V{offset}a",
            "last_window_end": f"V{offset}b",
            "last_label_bar": f"V{offset}c",
        },
        "test": {"first_window_end": f"X{offset}a", "last_window_end": f"X{offset}b", "windows": 8928},
    }


def _fold(name: str, offset: int) -> dict:
    return {
        "fold": name,
        "ranges": _ranges(offset),
        "backtest": {
            "flat_on_hold": {m: {"total_return_pct": 1.0 * offset} for m in STRATEGIES},
            "hold_previous": {m: {"total_return_pct": -1.0} for m in STRATEGIES},
        },
        "test": {m: {"accuracy": 0.5} for m in FORECASTERS},  # buy_and_hold has no accuracy
        "class_balance": {
            "train": {"SELL": 0.25, "HOLD": 0.5, "BUY": 0.25},
            "test": {"SELL": 0.3, "HOLD": 0.4, "BUY": 0.3},
        },
        "training": {
            "xgboost": {"rounds_kept": 40, "rounds_tried": 70, "train_secs": 1.3},
            "lstm": {"epochs": 9, "best_epoch": 4, "train_secs": 30.0},
            "mlp": {"epochs": 6, "best_epoch": 2, "train_secs": 5.5},
        },
        "ensemble_agreement_share": 0.8,
    }


@pytest.fixture
def report() -> dict:
    classification = {name: _classification(0.5, acts=name != "zero_return") for name in FORECASTERS}
    return {
        "horizon_bars": 12,
        "threshold_bps": 20.0,
        "fee_rate": 0.00055,
        "position_policy": "flat_on_hold",
        "other_position_policy": "hold_previous",
        "forecasters": FORECASTERS,
        "strategies": STRATEGIES,
        "pooled_test_range": ["2025-03-01T00:05:00Z", "2025-04-30T23:00:00Z"],
        "pooled": {
            "classification": classification,
            "backtest": {
                "flat_on_hold": {name: _backtest(12.3) for name in STRATEGIES},
                "hold_previous": {name: _backtest(-7.5) for name in STRATEGIES},
            },
        },
        "test_bar_return_autocorrelation_lag1": -0.0123,
        "leakage_suspected": {},
        "folds": [_fold("f1", 1), _fold("f2", 2)],
        "fold_secs": {"f1": 61.4, "f2": 59.6},
        "parity_max_abs_diff": {"xgboost": 1.0e-6, "lstm": 2.5e-7},
        "artifact_fold": "f2",
        "total_secs": 90.0,
    }


def _table(markdown: str, first_header: str) -> list[str]:
    """The lines of the markdown table whose first column is `first_header`, header and rule included."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_formatting_helpers():
    assert _fmt(0.5) == "0.500"
    assert _fmt(2.0, 2) == "2.00"
    assert _fmt(None) == "n/a"
    assert _fmt(float("nan")) == "n/a"
    assert _pct(12.3) == "+12.30"
    assert _pct(-7.5, 1) == "-7.5"
    assert _pct(None) == "n/a"


def test_header_and_data_sentence(config, report):
    markdown = render_markdown(config, report)
    assert markdown.startswith(
        "# Baselines: out-of-sample evaluation (tiny-baselines)\n\nA two-fold toy run.\n"
    )
    assert "Data: BTCUSDT (data/klines/btc.parquet), 5m bars." in markdown
    assert "forward return r = close[t+12] / close[t] - 1 against +-20 bps" in markdown
    assert "the 2 walk-forward folds below" in markdown
    assert "embargo 24 bars before validation and test" in markdown
    assert "window ends 2025-03-01T00:05:00Z .. 2025-04-30T23:00:00Z" in markdown


def test_classification_table(config, report):
    table = _table(render_markdown(config, report), "forecaster")
    assert table[0] == (
        "| forecaster | accuracy | balanced acc. | macro-F1 | log loss | BUY/SELL predicted "
        "| direction acc. (n) | direction acc. non-overlapping [95% CI] |"
    )
    assert table[1] == "|" + "---|" * 8
    assert len(table) == 2 + len(FORECASTERS)  # one row per forecaster, in the report's order
    # SELL 20% + BUY 30% predicted = 50.0%; 1,234 directional calls; CI from the report
    assert table[2] == (
        "| xgboost | 0.500 | 0.450 | 0.400 | 1.050 | 50.0% | 0.550 (1,234) | 0.600 [0.500, 0.700] (n=100) |"
    )
    # a forecaster that never says BUY or SELL: no directional accuracy, log loss NaN -> n/a
    assert table[-1] == "| zero_return | 0.500 | 0.450 | 0.400 | n/a | 0.0% | n/a (never acts) | n/a |"


def test_class_balance_and_descriptions(config, report):
    markdown = render_markdown(config, report)
    line = next(line for line in markdown.splitlines() if line.startswith("Test class balance: "))
    assert line.startswith("Test class balance: SELL 25.0%, HOLD 50.0%, BUY 25.0%. Forecasters: ")
    assert "`xgboost` XGBoost on the features at t" in line
    assert "`buy_and_hold` long 1x for the whole test range" in line
    assert line.endswith(".")


def test_backtest_table(config, report):
    markdown = render_markdown(config, report)
    assert "fee 0.055% per unit turnover" in markdown
    assert "HOLD -> flat (policy `flat_on_hold`)" in markdown
    table = _table(markdown, "strategy")
    assert table[0].endswith("| long / short | net return % (hold_previous) |")
    assert table[1] == "|" + "---|" * 10
    assert len(table) == 2 + len(STRATEGIES)
    # net 12.3, gross 12.3 + 2, fees 2, drawdown -4.25, Sharpe 0.5, t = 1.5 x sqrt(4 years), other policy -7.5
    assert table[2] == (
        "| xgboost | +12.30 | +14.30 | 2.00 | -4.25 | 0.50 | 1.50 (+3.0) | 1,234 | 60% / 20% | -7.50 |"
    )
    assert "buy-and-hold made +12.3% over the pooled test range" in markdown
    assert "Lag-1 autocorrelation of the test 5m returns: -0.012." in markdown


def test_the_other_policy_is_described_when_primary(config, report):
    report["position_policy"], report["other_position_policy"] = "hold_previous", "flat_on_hold"
    markdown = render_markdown(config, report)
    assert "HOLD -> keep the previous position (policy `hold_previous`)" in markdown
    assert _table(markdown, "strategy")[2].startswith("| xgboost | -7.50 | -5.50 |")
    assert _table(markdown, "strategy")[2].endswith("| +12.30 |")


def test_leakage_section(config, report):
    clean = render_markdown(config, report)
    assert "No model's pooled test directional accuracy (non-overlapping) is above 60%" in clean
    assert "Warning" not in clean
    # one line per fold: the last label bar of each split is before the next split's first window end
    assert (
        "  - f1: last train label bar T1c < first validation window end V1a; last validation label bar "
        "V1c < first test window end X1a" in clean
    )
    report["leakage_suspected"] = {"xgboost": 0.7126, "lstm": 0.65}
    warned = render_markdown(config, report)
    assert "**Warning: above 60% out of sample: xgboost 0.713, lstm 0.650." in warned
    assert "No model's" not in warned


def test_per_fold_tables(config, report):
    markdown = render_markdown(config, report)
    ranges = _table(markdown, "fold")
    assert (
        ranges[0]
        == "| fold | train (window ends) | validation (window ends) | test (window ends) | test windows |"
    )
    assert ranges[2:] == [
        "| f1 | T1a .. T1b | V1a .. V1b | X1a .. X1b | 8,928 |",
        "| f2 | T2a .. T2b | V2a .. V2b | X2a .. X2b | 8,928 |",
    ]
    lines = markdown.splitlines()
    start = lines.index(ranges[-1]) + 2  # the second per-fold table follows after a blank line
    per_model = lines[start : start + 4]
    assert per_model[0] == (
        "| fold | xgboost acc. / net % | lstm acc. / net % | mlp acc. / net % | ensemble acc. / net % "
        "| persistence acc. / net % | buy_and_hold acc. / net % | train SELL/HOLD/BUY | test SELL/HOLD/BUY |"
    )
    # fold f2 nets +2.00 for every model; buy-and-hold has no accuracy
    assert per_model[3] == (
        "| f2 | 0.500 / +2.00 | 0.500 / +2.00 | 0.500 / +2.00 | 0.500 / +2.00 | 0.500 / +2.00 "
        "| n/a / +2.00 | 25%/50%/25% | 30%/40%/30% |"
    )


def test_confusion_training_and_artifacts(config, report):
    markdown = render_markdown(config, report)
    assert "- xgboost: SELL [1, 2, 3]; HOLD [4, 5, 6]; BUY [7, 8, 9]" in markdown
    assert "- zero_return:" not in markdown  # only the models and persistence
    lines = markdown.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.startswith("| fold | xgboost rounds kept / tried |")
    )
    # rounds kept / tried, epochs (best), seconds at 1 decimal, fold seconds at 0, agreement 80.0%
    assert lines[start + 2] == "| f1 | 40 / 70 | 9 (4) | 6 (2) | 1.3 | 30.0 | 5.5 | 61 | 80.0% |"
    assert lines[start + 3] == "| f2 | 40 / 70 | 9 (4) | 6 (2) | 1.3 | 30.0 | 5.5 | 60 | 80.0% |"
    assert (
        "Artifacts: the models of fold f2 in models/ (ONNX + manifest.json); onnxruntime vs trained model "
        "max |diff| of the probabilities: xgboost 1.0e-06, lstm 2.5e-07. Total run time 1.5 min." in markdown
    )


def test_rounded_keeps_six_significant_digits_and_drops_non_finite():
    value = {"a": 0.1234567, "b": [1.0000004, float("nan")], "c": (float("inf"), 3), "d": "text", "e": 7}
    assert _rounded(value) == {"a": 0.123457, "b": [1.0, None], "c": [None, 3], "d": "text", "e": 7}


def test_every_4_hours_keeps_one_row_in_48_and_the_last():
    frame = pl.DataFrame({"i": list(range(100))})
    assert _every_4_hours(frame, STEP_NS)["i"].to_list() == [0, 48, 96, 99]
    assert _every_4_hours(frame, 4 * 3_600_000_000_000)["i"].to_list() == list(range(100))  # 4h bars


def test_write_without_curves(config, report, tmp_path):
    report["_internal"] = object()  # keys starting with "_" are not serialised
    report["pooled"]["backtest"]["flat_on_hold"]["xgboost"]["sharpe"] = 0.123456789
    before = copy.deepcopy({k: v for k, v in report.items() if k != "_internal"})
    write_baseline_report(config, report, tmp_path / "run")
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.toml", "report.json", "report.md"]
    assert (run_dir / "report.md").read_text() == render_markdown(config, report)
    saved = json.loads((run_dir / "report.json").read_text())
    assert "_internal" not in saved
    assert saved["pooled"]["backtest"]["flat_on_hold"]["xgboost"]["sharpe"] == 0.123457
    assert saved["pooled"]["classification"]["zero_return"]["log_loss"] is None  # NaN -> null
    assert saved["folds"][0]["ranges"]["test"]["windows"] == 8928
    assert tomllib.loads((run_dir / "config.toml").read_text())["id"] == "tiny-baselines"
    assert {k: v for k, v in report.items() if k != "_internal"} == before  # the report is not changed


def test_write_plots_the_curves(config, report, tmp_path):
    n = 3 * 48 + 5  # 12 h and 25 min of 5m bars: the plot keeps rows 0, 48, 96, 144 and the last
    start = 1_740_787_200_000_000_000  # 2025-03-01T00:00Z
    ts = start + STEP_NS * np.arange(1, n + 1, dtype=np.int64)
    curve = BacktestCurve(
        ts=ts,
        positions=np.ones(n),
        net_returns=np.full(n, 0.001),
        gross_returns=np.full(n, 0.001),
        fees=np.zeros(n),
    )
    report["_curves"] = {"xgboost": curve, "buy_and_hold": curve, "zero_return": curve}
    write_baseline_report(config, report, tmp_path)
    png = tmp_path / "equity_test.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "_curves" not in json.loads((tmp_path / "report.json").read_text())
    assert math.isclose(1.001**n, float(np.cumprod(1.0 + curve.net_returns)[-1]))
