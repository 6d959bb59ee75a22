"""The Guardian's naive baseline (qa_engine/models/guardian/baseline.py): realised-volatility quartiles
on real Bybit linear BTCUSDT 5m bars (data/klines, PROVENANCE.md) — causal, the Guardian's own window
statistic, edges from the training range — and the separation / strongest-baseline figures of the report."""

from __future__ import annotations

import numpy as np
import pytest

from qa_engine.features.io import interval_ns
from qa_engine.features.io import load_kline_file
from qa_engine.models.guardian.baseline import future_realised_volatility
from qa_engine.models.guardian.baseline import regime_separation
from qa_engine.models.guardian.baseline import rolling_realised_volatility
from qa_engine.models.guardian.baseline import rv_quartiles
from qa_engine.models.guardian.baseline import skill_vs_strongest_baseline
from qa_engine.models.guardian.baseline import strongest_baseline_line
from qa_engine.models.guardian.train import window_ends
from qa_engine.models.guardian.train import window_volatility
from tests.factories import research_klines

STEP_NS = interval_ns("5m")
WINDOW = 32


def real_returns(count: int = 4_000) -> tuple[np.ndarray, np.ndarray]:
    bars = load_kline_file(research_klines("bybit_linear_BTCUSDT_5m"), "5m").head(count + 1)
    close = bars.get_column("close").to_numpy()
    return bars.get_column("ts").to_numpy()[1:], np.diff(np.log(close))


def test_rolling_volatility_is_the_guardians_window_statistic_and_never_crosses_a_gap() -> None:
    ts, returns = real_returns()
    ts = ts.copy()
    ts[2_000:] += 7 * STEP_NS  # a gap before row 2,000

    rv = rolling_realised_volatility(returns, ts, WINDOW, STEP_NS)

    ends = window_ends(ts, WINDOW, STEP_NS, 0, int(ts[-1]) + 1)
    np.testing.assert_allclose(rv[ends], window_volatility(returns, ends, WINDOW), rtol=1e-9, atol=1e-12)
    assert np.isnan(rv[2_000 : 2_000 + WINDOW - 1]).all() and np.isfinite(rv[2_000 + WINDOW - 1])
    assert np.isnan(rv[: WINDOW - 1]).all()


def test_labels_at_t_ignore_every_bar_after_t_and_edges_come_from_the_training_range() -> None:
    ts, returns = real_returns()
    train = (int(ts[0]), int(ts[2_500]))  # rows 0 .. 2,499
    t = 3_000
    rewritten = returns.copy()
    rewritten[t + 1 :] = np.random.default_rng(0).normal(0.0, 0.02, len(returns) - t - 1)  # a wild future

    labels = rv_quartiles(returns, ts, WINDOW, train, STEP_NS)
    again = rv_quartiles(rewritten, ts, WINDOW, train, STEP_NS)

    np.testing.assert_array_equal(again[: t + 1], labels[: t + 1])
    assert not np.array_equal(again[t + 1 :], labels[t + 1 :])
    shares = np.bincount(labels[WINDOW - 1 : 2_500], minlength=4) / (2_500 - WINDOW + 1)
    np.testing.assert_allclose(shares, 0.25, atol=0.002)  # quartiles of the training rows
    future = future_realised_volatility(returns, ts, 12, STEP_NS)
    moved = returns.copy()
    moved[: t + 1] *= 3.0  # the past and bar t do not enter bar t's future vol (cumsum rounding aside)
    np.testing.assert_allclose(future_realised_volatility(moved, ts, 12, STEP_NS)[t], future[t], rtol=1e-9)
    np.testing.assert_allclose(future[t], np.sqrt(np.mean(returns[t + 1 : t + 13] ** 2)))


def test_separation_by_hand_and_on_real_bars() -> None:
    future = np.array([1.0, 1.0, np.e, np.e])
    assert regime_separation(np.array([0, 0, 1, 1]), future, 2)["eta_squared"] == pytest.approx(1.0)
    mixed = regime_separation(np.array([0, 1, 0, 1]), future, 2)
    assert mixed["eta_squared"] == pytest.approx(0.0) and mixed["spread"] == pytest.approx(1.0)

    ts, returns = real_returns()
    labels = rv_quartiles(returns, ts, WINDOW, (int(ts[0]), int(ts[2_500])), STEP_NS)
    real = regime_separation(
        labels[2_500:], future_realised_volatility(returns, ts, WINDOW, STEP_NS)[2_500:], 4
    )
    assert 0.05 < real["eta_squared"] < 1.0  # volatility clusters: the trailing quartile says something
    assert real["mean_future_vol_by_regime"] == sorted(real["mean_future_vol_by_regime"])
    assert real["spread"] > 1.2


def test_skill_against_the_strongest_baseline_picks_the_best_of_each_metric() -> None:
    def separation(guardian: float, rv: float, twenty: float) -> dict[str, dict[str, float]]:
        return {
            "guardian": {"eta_squared": guardian, "bars": 100},
            "rv_quartiles": {"eta_squared": rv, "bars": 100},
            "realised_volatility_20_quartiles": {"eta_squared": twenty, "bars": 100},
        }

    def ari(value: float) -> dict[str, float]:
        return {"adjusted_rand_index": value}

    report = {
        "folds": {
            "a": {"separation": separation(0.1, 0.3, 0.2)},
            "b": {"separation": separation(0.2, 0.1, 0.2)},
        },
        "stability": {
            "pairs": {
                "a vs b": {
                    "guardian_reported": ari(0.5),
                    "guardian_raw": ari(0.9),  # not a baseline
                    "volatility_quartiles_baseline": ari(0.4),
                    "rv_quartiles_baseline": ari(0.45),
                }
            }
        },
    }

    skill = skill_vs_strongest_baseline(report)

    assert skill["separation"]["strongest_baseline"] == "rv_quartiles"  # (0.3 + 0.1) / 2 > 0.2 > 0.15
    assert skill["separation"]["guardian"] == pytest.approx(0.15)
    assert skill["separation"]["skill"] == pytest.approx(0.15 / 0.2 - 1)
    assert skill["separation"]["stronger"] == "baseline"
    assert skill["stability"]["strongest_baseline"] == "rv_quartiles_baseline"
    assert skill["stability"]["stronger"] == "guardian"
    line = strongest_baseline_line(skill)
    assert line.startswith(
        "Skill against the strongest baseline: future-volatility separation eta^2 0.150 vs 0.200"
    )
    assert "refit ARI 0.500 vs 0.450 for rv_quartiles_baseline (+11%; the guardian is stronger)" in line
