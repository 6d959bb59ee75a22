"""Volatility-targeting math (qa_engine.risk.sizing): leverage, realized and forecast-implied sigma, band."""

from __future__ import annotations

import math
from decimal import Decimal as D
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa_engine.risk.sizing import bars_per_year
from qa_engine.risk.sizing import outside_band
from qa_engine.risk.sizing import realized_sigma
from qa_engine.risk.sizing import sigma_from_quantiles
from qa_engine.risk.sizing import vol_target_leverage
from tests.factories import real_klines

BARS_5M = 365 * 288


def test_bars_per_year_of_round_the_clock_markets():
    assert bars_per_year(300) == BARS_5M == 105_120
    assert bars_per_year(3600) == 8760
    with pytest.raises(ValueError, match="bar_seconds"):
        bars_per_year(0)


def test_leverage_is_the_target_per_bar_over_sigma():
    # 20 %/yr on 5m bars: 0.2 / sqrt(105,120) = 6.169e-4 per bar; sigma 1.2338e-3 per bar -> 0.5x
    target_per_bar = 0.2 / math.sqrt(BARS_5M)
    assert vol_target_leverage(2 * target_per_bar, 0.2, BARS_5M, 3.0) == pytest.approx(0.5)
    assert vol_target_leverage(target_per_bar, 0.2, BARS_5M, 3.0) == pytest.approx(1.0)


def test_leverage_is_capped_and_flat_prices_give_the_cap():
    assert vol_target_leverage(1e-6, 0.2, BARS_5M, 3.0) == 3.0
    assert vol_target_leverage(0.0, 0.2, BARS_5M, 2.5) == 2.5


@pytest.mark.parametrize(
    ("sigma", "target", "max_leverage", "culprit"),
    [
        (-1e-3, 0.2, 3.0, "sigma_bar"),
        (math.nan, 0.2, 3.0, "sigma_bar"),
        (1e-3, 0.0, 3.0, "target_annual"),
        (1e-3, 0.2, 0.0, "max_leverage"),
    ],
)
def test_leverage_refuses_bad_inputs(sigma, target, max_leverage, culprit):
    with pytest.raises(ValueError, match=culprit):
        vol_target_leverage(sigma, target, BARS_5M, max_leverage)


@given(sigma=st.floats(min_value=1e-6, max_value=0.5), cap=st.floats(min_value=0.1, max_value=10))
def test_leverage_times_sigma_never_exceeds_the_target(sigma, cap):
    leverage = vol_target_leverage(sigma, 0.2, BARS_5M, cap)
    assert 0 < leverage <= cap
    assert leverage * sigma <= 0.2 / math.sqrt(BARS_5M) * (1 + 1e-12)


def test_realized_sigma_is_the_sample_std_of_log_returns_of_real_bars():
    closes = real_klines("bybit_linear_BTCUSDT_5m", 49)["close"].to_numpy()
    expected = np.std(np.diff(np.log(closes)), ddof=1)
    assert realized_sigma(closes) == pytest.approx(expected, rel=1e-12)
    assert 1e-4 < realized_sigma(closes) < 1e-2  # BTC 5m: a few bp per bar


def test_realized_sigma_needs_two_returns_and_positive_prices():
    assert realized_sigma([100.0, 101.0]) is None
    assert realized_sigma([100.0, 0.0, 101.0]) is None
    assert realized_sigma([100.0, 100.0, 100.0]) == 0.0


def test_sigma_from_quantiles_inverts_a_normal_band():
    # a normal forecast with sigma_h = 0.01 at h = 4 bars: per-bar sigma 0.005
    levels = [0.1, 0.25, 0.5, 0.75, 0.9]
    values = [0.002 + 0.01 * NormalDist().inv_cdf(q) for q in levels]
    assert sigma_from_quantiles(levels, values, 4) == pytest.approx(0.005, rel=1e-12)


def test_sigma_from_quantiles_uses_the_outermost_levels_in_any_order():
    levels = [0.5, 0.05, 0.95]
    z = NormalDist().inv_cdf(0.95)
    values = [0.0, -0.02 * z, 0.02 * z]
    assert sigma_from_quantiles(levels, values, 1) == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("levels", "values", "horizon"),
    [
        ([0.5], [0.0], 4),
        ([0.1, 0.9], [0.01, -0.01], 4),
        ([0.1, 0.9], [0.0, math.nan], 4),
        ([0.0, 0.9], [-0.1, 0.1], 4),
        ([0.1, 0.9], [-0.1, 0.1], 0),
        ([0.1, 0.5, 0.9], [-0.1, 0.1], 4),
    ],
)
def test_sigma_from_quantiles_returns_none_for_an_unusable_band(levels, values, horizon):
    assert sigma_from_quantiles(levels, values, horizon) is None


def test_band_rule():
    assert not outside_band(D("1.0"), D("1.0"), 25)
    assert not outside_band(D("1.25"), D("1.0"), 25)  # exactly at the band: keep
    assert outside_band(D("1.251"), D("1.0"), 25)
    assert outside_band(D("0.749"), D("1.0"), 25)
    assert not outside_band(D("-0.8"), D("-1.0"), 25)
    assert outside_band(D("0.1"), D("0"), 25)  # nothing held
    assert outside_band(D("0"), D("0.1"), 25)  # close
    assert outside_band(D("-0.1"), D("0.1"), 25)  # side changes
    assert outside_band(D("1.01"), D("1.0"), 0)
