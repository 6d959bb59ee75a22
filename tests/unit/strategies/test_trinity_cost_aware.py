"""Trinity's cost-aware pieces (issue 18): the probability gate read from the forecast's quantiles, the
stop floor in round-trip costs, vol-target sizing needing the Oracle (its math: tests/unit/risk/)."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from strategies.trinity import PRESETS
from strategies.trinity import GateInputs
from strategies.trinity import _clear_probability_numpy
from strategies.trinity import bracket_distances
from strategies.trinity import clear_probability
from strategies.trinity import forecast_allows

LEVELS7 = np.array([0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95])


def normal_quantiles(mu: float, sigma: float, levels=LEVELS7) -> np.ndarray:
    return np.array([NormalDist(mu, sigma).inv_cdf(level) for level in levels])


def test_clear_probability_reads_the_cdf_between_quantiles_and_matches_a_normal_inside_the_band():
    values = normal_quantiles(0.001, 0.01)
    for threshold in (-0.012, -0.005, 0.0, 0.0013, 0.008, 0.014):
        exact = 1.0 - NormalDist(0.001, 0.01).cdf(threshold)
        assert clear_probability(LEVELS7, values, threshold) == pytest.approx(exact, abs=0.02)
    assert clear_probability(LEVELS7, values, values[3]) == pytest.approx(0.5)  # at the median
    assert clear_probability(LEVELS7, values, 1.0) == 0.0 and clear_probability(LEVELS7, values, -1.0) == 1.0


def test_crossed_quantiles_are_sorted_before_reading_the_cdf():
    crossed = np.array([-0.01, -0.02, -0.005, 0.0, 0.005, 0.02, 0.01])
    assert clear_probability(LEVELS7, crossed, 0.0) == clear_probability(LEVELS7, np.sort(crossed), 0.0)


@settings(max_examples=200, deadline=None)
@given(
    median=st.floats(-0.01, 0.01),
    half_width=st.floats(1e-4, 0.02),
    cost=st.floats(0.0, 0.003),
)
def test_at_probability_one_half_the_gate_is_exactly_the_median_rule(median, half_width, cost):
    """min_clear_probability = 0.5 (the 5m presets) opens exactly when the median clears the cost: the
    legacy rule is a special case of the probability gate."""
    levels = np.array([0.1, 0.5, 0.9])
    values = np.array([median - half_width, median, median + half_width])
    gates = GateInputs(
        held=0.0,
        forecast_median=median,
        horizon_bars=12,
        cost=cost,
        regime_id=None,
        risk_scale=1.0,
        atr=1.0,
        confidence_threshold_pct=0.0,
        strong_confidence_pct=80.0,
        clear_long=clear_probability(levels, values, cost),
        clear_short=1.0 - clear_probability(levels, values, -cost),
        min_clear_probability=0.5,
    )
    if abs(abs(median) - cost) > 1e-12:  # off the boundary itself
        assert forecast_allows(gates, 1) == (median > cost)
        assert forecast_allows(gates, -1) == (-median > cost)


def test_a_lower_probability_bar_opens_on_a_wide_band_but_only_in_the_direction_it_leans():
    cost = 0.0014
    values = normal_quantiles(0.0005, 0.015)  # 12 h on 1h bars: a wide band, a small upward lean
    common = {
        "held": 0.0,
        "forecast_median": float(values[3]),
        "horizon_bars": 12,
        "cost": cost,
        "regime_id": None,
        "risk_scale": 1.0,
        "atr": 1.0,
        "confidence_threshold_pct": 0.0,
        "strong_confidence_pct": 80.0,
        "clear_long": clear_probability(LEVELS7, values, cost),
        "clear_short": 1.0 - clear_probability(LEVELS7, values, -cost),
    }
    assert 0.45 < common["clear_long"] < 0.5 and common["clear_short"] < common["clear_long"]
    assert forecast_allows(GateInputs(**common, min_clear_probability=0.45), 1)
    assert not forecast_allows(GateInputs(**common, min_clear_probability=0.45), -1)  # leans the other way
    assert not forecast_allows(GateInputs(**common, min_clear_probability=0.5), 1)  # the median rule
    quiet = normal_quantiles(0.0005, 0.001)  # a quiet band: the move rarely clears 14 bp
    quiet_long = clear_probability(LEVELS7, quiet, cost)
    assert quiet_long < 0.45
    # funding a long pays raises its bar: the same forecast clears less often
    assert clear_probability(LEVELS7, values, cost + 0.0005) < common["clear_long"]


def test_stops_are_never_inside_the_round_trip_cost_and_the_take_profit_keeps_its_ratio():
    full = PRESETS["full"]  # 2 ATR stop, 3 ATR take-profit, floor 2 round trips
    stop, take, floored = bracket_distances(full, atr=50.0, cost=0.0014, price=100_000.0)
    assert floored and stop == pytest.approx(2 * 0.0014 * 100_000) and take == pytest.approx(1.5 * stop)
    stop, take, floored = bracket_distances(full, atr=500.0, cost=0.0014, price=100_000.0)
    assert not floored and stop == 1000.0 and take == 1500.0


def test_vol_target_sizing_needs_the_oracle():
    from nautilus_trader.model.data import BarType
    from nautilus_trader.model.identifiers import InstrumentId

    from strategies.trinity import TrinityStrategyConfig

    common = {
        "instrument_id": InstrumentId.from_str("BTCUSDT-LINEAR.BYBIT"),
        "bar_type": BarType.from_str("BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"),
    }
    assert TrinityStrategyConfig(**common, preset="swing").settings().sizing == "vol_target"
    with pytest.raises(ValueError, match="needs use_oracle"):
        TrinityStrategyConfig(**common, preset="swing", use_oracle=False)
    with pytest.raises(ValueError, match="sizing must be one of"):
        TrinityStrategyConfig(**common, sizing="kelly")


@settings(max_examples=400, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.floats(-0.05, 0.05, allow_nan=False),
            st.sampled_from([0.0, 1e-4, -1e-4]),  # ties, and thresholds landing on a quantile
        ),
        min_size=7,
        max_size=7,
    ),
    threshold=st.one_of(st.floats(-0.06, 0.06, allow_nan=False), st.sampled_from([0.0, 1e-4, -1e-4])),
)
def test_clear_probability_on_python_floats_equals_the_numpy_form_bit_for_bit(values, threshold):
    row = np.asarray(values)
    assert clear_probability(LEVELS7, row, threshold) == _clear_probability_numpy(LEVELS7, row, threshold)


def test_clear_probability_with_a_nan_quantile_takes_the_numpy_form():
    row = np.array([-0.02, -0.01, np.nan, 0.0, 0.005, 0.01, 0.02])
    for threshold in (-0.03, -0.015, 0.0, 0.007, 0.03):
        expected = _clear_probability_numpy(LEVELS7, row, threshold)
        got = clear_probability(LEVELS7, row, threshold)
        assert got == expected or (got != got and expected != expected)
