"""The Oracle's volatility-scaled baselines (qa_engine/models/volatility_baselines.py) and the report's
skill against the strongest baseline, on real Binance USDT-M BTCUSDT 5m bars (tests/unit/models/
oracle_data.py): causality (bars after t rewritten, the forecast at t unchanged), the rolling / EWMA
variances by hand, the GARCH filter against arch's own conditional variance and its k-step recursion."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from qa_engine.models.data import build_fold
from qa_engine.models.evaluation import FoldEvaluation
from qa_engine.models.evaluation import evaluate_folds
from qa_engine.models.evaluation import render_markdown
from qa_engine.models.evaluation import strongest_baseline_line
from qa_engine.models.volatility_baselines import BURN_IN
from qa_engine.models.volatility_baselines import GARCH_SCALE
from qa_engine.models.volatility_baselines import VOLATILITY_BASELINES
from qa_engine.models.volatility_baselines import ewma_variance
from qa_engine.models.volatility_baselines import fit_garch
from qa_engine.models.volatility_baselines import garch_conditional_variance
from qa_engine.models.volatility_baselines import garch_variance_paths
from qa_engine.models.volatility_baselines import one_bar_returns
from qa_engine.models.volatility_baselines import rolling_variance
from qa_engine.models.volatility_baselines import volatility_forecasts
from tests.unit.models.oracle_data import bars_from
from tests.unit.models.oracle_data import small_feature_set
from tests.unit.models.oracle_data import tiny_config

pytest.importorskip("arch")

QUANTILES = (0.1, 0.5, 0.9)
START, COUNT = "2025-03-01T00:00:00", 1_500


def fold_of(bars: pl.DataFrame):
    config = tiny_config(bars)
    return build_fold(config, config.folds[0], {"BTCUSDT": bars}, feature_set=small_feature_set())


def test_every_baseline_at_t_is_unchanged_when_the_bars_after_t_change() -> None:
    bars = bars_from(START, COUNT)
    data = fold_of(bars)
    test = data.splits["test"]
    cut = int(test.ends[len(test) // 2])  # row of bar t (rows are the feature table's)
    t_ns = int(test.ts[cut])
    after = (bars.get_column("ts") > t_ns).cast(pl.Float64)
    rng = np.random.default_rng(3)
    factor = pl.Series(np.exp(rng.normal(0.0, 0.01, bars.height).cumsum()))  # a different future path
    moved_bars = bars.with_columns(
        *(pl.col(c) * (1.0 + after * (factor - 1.0)) for c in ("open", "high", "low", "close"))
    )
    moved = fold_of(moved_bars)
    assert not np.allclose(one_bar_returns(moved.splits["test"])[cut + 1 :], one_bar_returns(test)[cut + 1 :])

    before = volatility_forecasts(data.splits["train"], test, QUANTILES)
    again = volatility_forecasts(moved.splits["train"], moved.splits["test"], QUANTILES)

    assert set(before) == set(VOLATILITY_BASELINES)
    upto = int(np.searchsorted(test.ends, cut)) + 1  # windows ending at or before bar t
    for name in VOLATILITY_BASELINES:
        np.testing.assert_array_equal(again[name][:upto], before[name][:upto], err_msg=name)
        assert not np.array_equal(again[name][upto:], before[name][upto:]), name  # later ones do move


def test_rolling_and_ewma_variances_by_hand_skip_a_gap() -> None:
    returns = np.array([0.01, -0.02, np.nan, 0.03, 0.01, -0.01, 0.02])  # row 2 follows a gap
    series = np.zeros(len(returns), dtype=np.int32)

    rolling = rolling_variance(returns, series, 3)

    np.testing.assert_allclose(rolling[3], np.mean(np.square([0.01, -0.02, 0.03])))  # the gap is skipped
    np.testing.assert_allclose(rolling[6], np.mean(np.square([0.01, -0.01, 0.02])))
    assert np.isnan(rolling[:3]).all()  # fewer than 3 returns so far
    two = rolling_variance(returns, series, 2)
    assert two[2] == two[1] == np.mean(np.square([0.01, -0.02]))  # the row after the gap keeps the last value

    long = np.random.default_rng(0).normal(0.0, 1e-3, BURN_IN + 20)
    ewma = ewma_variance(long, np.zeros(len(long), dtype=np.int32), 0.94)
    expected = long[0] ** 2
    for value in long[1:]:
        expected = 0.94 * expected + 0.06 * value**2
    np.testing.assert_allclose(ewma[-1], expected, rtol=1e-12)
    assert np.isnan(ewma[:BURN_IN]).all() and np.isfinite(ewma[BURN_IN:]).all()


def test_garch_filter_is_arch_conditional_variance_and_its_k_step_recursion() -> None:
    data = fold_of(bars_from(START, COUNT))
    returns = one_bar_returns(data.splits["train"])
    assert np.isfinite(returns).all()  # this span is gap-free
    params = fit_garch(returns[data.splits["train"].ends])
    omega, alpha, beta = params[0] / GARCH_SCALE**2, params[1], params[2]
    assert omega > 0 and alpha >= 0 and beta >= 0 and alpha + beta <= 1 + 1e-6

    paths = garch_variance_paths(returns, np.zeros(len(returns), dtype=np.int32), params, 4)
    conditional = garch_conditional_variance(returns, params)  # sigma^2[t] of bar t, known at t-1

    # the 1-step forecast made at t is the conditional variance of bar t+1
    np.testing.assert_allclose(paths[BURN_IN:-1, 0], conditional[BURN_IN + 1 :], rtol=1e-10)
    # and the k-step ones follow the GARCH(1,1) recursion omega + (alpha + beta) h[k-1]
    np.testing.assert_allclose(paths[BURN_IN:, 1:], omega + (alpha + beta) * paths[BURN_IN:, :-1], rtol=1e-10)
    np.testing.assert_allclose(
        paths[BURN_IN:-1, 0],
        omega + alpha * returns[BURN_IN:-1] ** 2 + beta * conditional[BURN_IN:-1],
        rtol=1e-10,
    )


def test_forecasts_are_volatility_times_training_multipliers() -> None:
    data = fold_of(bars_from(START, COUNT))
    train, test = data.splits["train"], data.splits["test"]

    forecasts = volatility_forecasts(train, test, QUANTILES, garch=False)

    returns = one_bar_returns(test)
    sigma = np.sqrt(rolling_variance(returns, test.series_id, 48))  # one-bar sigma per row
    z = train.labels_raw[train.ends] / (
        np.sqrt(rolling_variance(returns, train.series_id, 48))[train.ends, None] * np.sqrt(np.arange(1, 5))
    )
    expected_z = np.array([np.quantile(column[np.isfinite(column)], QUANTILES) for column in z.T])  # (H, Q)
    expected = sigma[test.ends, None, None] * np.sqrt(np.arange(1, 5))[None, :, None] * expected_z[None]
    np.testing.assert_allclose(forecasts["vol_rolling_48"], expected, rtol=1e-10)
    assert np.all(np.diff(forecasts["vol_ewma"], axis=2) > 0)  # quantiles ordered


def test_the_strongest_baseline_is_the_lowest_pooled_pinball_and_the_report_says_so() -> None:
    rng = np.random.default_rng(1)
    realised = rng.normal(0.0, 1e-3, (400, 2))
    band = np.array([-1.28e-3, 0.0, 1.28e-3])
    good = np.broadcast_to(band, (400, 2, 3)).copy()  # right width
    fold = FoldEvaluation(
        fold="f",
        test_range=("a", "b"),
        forecasts={
            "tft": good * 1.05,
            "wide": good * 3.0,
            "right": good,
            "narrow": good * 0.2,
        },
        realised=realised,
        ts=np.arange(400, dtype=np.int64),
        variable_importance={},
        training={},
    )

    report = evaluate_folds([fold], QUANTILES, 2)

    pooled = report["pooled"]
    assert report["strongest_baseline"] == "right"
    assert (
        min(pooled[n]["pinball_mean"] for n in ("wide", "right", "narrow")) == pooled["right"]["pinball_mean"]
    )
    assert report["tft_skill_vs_strongest_baseline"] == pytest.approx(
        1 - pooled["tft"]["pinball_mean"] / pooled["right"]["pinball_mean"]
    )
    by_step = report["tft_skill_vs_strongest_baseline_by_step"]
    assert by_step == report["tft_skill_vs_baselines_by_step"]["right"] and len(by_step) == 2
    assert by_step[0] == pytest.approx(
        1 - pooled["tft"]["pinball_by_step"][0] / pooled["right"]["pinball_by_step"][0]
    )
    line = strongest_baseline_line(report)
    assert line.startswith("Skill against the strongest baseline (right): ") and line.endswith("% pinball")
    assert line in render_markdown(report, "# t")
