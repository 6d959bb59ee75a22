"""Hypothesis properties of compute_performance on arbitrary positive equity curves and trade lists."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import numpy as np
import polars as pl
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from qa_engine.reporting.schema import empty_round_trips
from qa_engine.reporting.statistics import compute_performance
from qa_engine.reporting.statistics import daily_returns_from_curve
from tests.unit.reporting.factories import equity_curve
from tests.unit.reporting.factories import round_trips

positive_equity = st.floats(min_value=1e-2, max_value=1e7, allow_nan=False, allow_infinity=False)
curves = st.lists(positive_equity, min_size=1, max_size=80)
steps_minutes = st.sampled_from([1, 15, 60, 240, 1440, 4320])
pnls = st.lists(st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), max_size=30)


@settings(max_examples=200, deadline=None)
@given(values=curves, step_minutes=steps_minutes, starting_balance=positive_equity)
def test_curve_figures_stay_in_range_and_consistent(values, step_minutes, starting_balance):
    curve = equity_curve(values, step=timedelta(minutes=step_minutes))

    metrics = compute_performance(curve, empty_round_trips(), starting_balance, 0.0)

    assert 0.0 <= metrics.max_drawdown_pct <= 100.0
    assert metrics.max_drawdown >= 0.0
    assert metrics.final_equity == values[-1]
    tolerance = 1e-9 * max(starting_balance, metrics.final_equity)  # pct loses digits near -100 %
    assert math.isclose(
        starting_balance * (1 + metrics.total_return_pct / 100), metrics.final_equity, abs_tol=tolerance
    )
    assert math.isclose(starting_balance + metrics.total_return, metrics.final_equity, abs_tol=tolerance)
    assert 0.0 <= metrics.max_drawdown_duration_days <= metrics.duration_days + 1e-12
    if metrics.sharpe_ratio is not None:
        assert math.isfinite(metrics.sharpe_ratio)
    json.dumps(metrics.to_dict(), allow_nan=False)  # raises on NaN or infinity anywhere


@settings(max_examples=200, deadline=None)
@given(values=curves, step_minutes=steps_minutes, starting_balance=positive_equity)
def test_daily_returns_compound_to_total_return(values, step_minutes, starting_balance):
    curve = equity_curve(values, step=timedelta(minutes=step_minutes))
    ts_ns = curve["ts"].cast(pl.Int64).to_numpy()

    returns = daily_returns_from_curve(ts_ns, curve["equity"].to_numpy(), starting_balance)

    growth = float(np.prod(1.0 + returns)) if len(returns) else 1.0
    expected = values[-1] / starting_balance if len(values) > 1 else 1.0
    assert math.isclose(growth, expected, rel_tol=1e-6)
    days_spanned = (ts_ns[-1] - ts_ns[0]) / 86_400e9
    assert len(returns) <= math.ceil(days_spanned) + 1


@settings(max_examples=200, deadline=None)
@given(net_pnls=pnls)
def test_trade_counts_and_sums_are_consistent(net_pnls):
    metrics = compute_performance(equity_curve([100, 101]), round_trips(net_pnls), 100.0, 0.0)

    assert metrics.wins + metrics.losses + metrics.breakevens == metrics.total_trades == len(net_pnls)
    assert math.isclose(
        metrics.sum_of_wins + metrics.sum_of_losses, metrics.trades_net_pnl, rel_tol=1e-9, abs_tol=1e-9
    )
    if metrics.profit_factor is not None:
        assert metrics.profit_factor >= 0.0
    else:
        assert metrics.losses == 0
    if metrics.total_trades:
        assert 0.0 <= metrics.win_rate_pct <= 100.0
        assert math.isclose(
            metrics.expectancy * metrics.total_trades, metrics.trades_net_pnl, rel_tol=1e-9, abs_tol=1e-6
        )
