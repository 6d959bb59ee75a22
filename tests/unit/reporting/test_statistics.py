"""compute_performance on small curves and trade lists whose figures are worked out by hand."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import timedelta

import polars as pl
import pytest

from qa_engine.errors import DataError
from qa_engine.reporting.schema import empty_round_trips
from qa_engine.reporting.statistics import PerformanceMetrics
from qa_engine.reporting.statistics import PerformanceRating
from qa_engine.reporting.statistics import compute_performance
from qa_engine.reporting.statistics import rate_performance
from tests.unit.reporting.factories import T0
from tests.unit.reporting.factories import equity_curve
from tests.unit.reporting.factories import round_trips

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def metrics_for(
    values, step=DAY, trades=None, starting_balance=None, notional=None, fees_paid=0.0, **kwargs
) -> PerformanceMetrics:
    """Metrics of marks every ``step`` from T0; the starting balance defaults to the first mark."""
    return compute_performance(
        equity_curve(values, step=step, notional=notional),
        empty_round_trips() if trades is None else trades,
        starting_balance=float(values[0]) if starting_balance is None else starting_balance,
        fees_paid=fees_paid,
        **kwargs,
    )


# --- drawdown -------------------------------------------------------------------------------------


def test_max_drawdown_of_100_110_99_120_is_11_or_10_pct():
    # Running peak: 100, 110, 110, 120. Drawdown: 0, 0, 110 - 99 = 11, 0.
    # 11 / 110 = 10 %. Underwater from the 110 peak (day 1) until 120 (day 3): 2 days.
    metrics = metrics_for([100, 110, 99, 120])

    assert metrics.max_drawdown == pytest.approx(11.0)
    assert metrics.max_drawdown_pct == pytest.approx(10.0)
    assert metrics.max_drawdown_duration_days == pytest.approx(2.0)
    assert metrics.total_return == pytest.approx(20.0)
    assert metrics.total_return_pct == pytest.approx(20.0)
    assert metrics.final_equity == 120.0
    assert metrics.duration_days == pytest.approx(3.0)


def test_drawdown_counts_from_starting_balance_when_first_bar_is_below_it():
    # Starting balance 100 is the first peak. Bars 95, 90, 100: drawdown 5, 10, 0 -> max 10 = 10 %.
    # Underwater from the start (the first ts, day 0) until back at 100 on day 2: 2 days.
    metrics = metrics_for([95, 90, 100], starting_balance=100.0)

    assert metrics.max_drawdown == pytest.approx(10.0)
    assert metrics.max_drawdown_pct == pytest.approx(10.0)
    assert metrics.max_drawdown_duration_days == pytest.approx(2.0)


def test_unrecovered_drawdown_lasts_until_last_bar():
    # Peak 120 on day 1, then 90 (drawdown 30 = 25 %), 100 (still under): underwater day 1 -> day 3.
    metrics = metrics_for([100, 120, 90, 100])

    assert metrics.max_drawdown == pytest.approx(30.0)
    assert metrics.max_drawdown_pct == pytest.approx(25.0)
    assert metrics.max_drawdown_duration_days == pytest.approx(2.0)


def test_max_drawdown_abs_and_pct_come_from_their_own_troughs():
    # Peak 100 -> 80: 20 abs, 20 %. Peak 1000 -> 900: 100 abs, 10 %. Max abs 100, max pct 20.
    metrics = metrics_for([100, 80, 1000, 900])

    assert metrics.max_drawdown == pytest.approx(100.0)
    assert metrics.max_drawdown_pct == pytest.approx(20.0)


# --- daily returns, Sharpe, Sortino ---------------------------------------------------------------


def test_sharpe_and_sortino_of_three_daily_returns_by_hand():
    # Marks at 00:00 of days 0..3: 100, 110, 99, 108.9 -> daily returns +0.1, -0.1, +0.1.
    # mean = 0.1 / 3 = 1/30; deviations 2/30, -4/30, 2/30; sum of squares = 24/900;
    # sample variance (ddof 1) = 12/900; std = sqrt(12)/30.
    # Sharpe = (1/30) / (sqrt(12)/30) * sqrt(365) = sqrt(365/12) ~= 5.5151.
    # Downside deviation = sqrt((0 + 0.01 + 0) / 3) = 0.1/sqrt(3);
    # Sortino = (1/30) / (0.1/sqrt(3)) * sqrt(365) = sqrt(3)/3 * sqrt(365) = sqrt(365/3) ~= 11.0303.
    # Annualised volatility = sqrt(12)/30 * sqrt(365) * 100 % ~= 220.60 %.
    metrics = metrics_for([100, 110, 99, 108.9])

    assert metrics.daily_return_count == 3
    assert metrics.sharpe_ratio == pytest.approx(math.sqrt(365 / 12))
    assert metrics.sharpe_ratio == pytest.approx(5.51513, abs=1e-5)
    assert metrics.sortino_ratio == pytest.approx(math.sqrt(365 / 3))
    assert metrics.sortino_ratio == pytest.approx(11.03026, abs=1e-5)
    assert metrics.annualised_volatility_pct == pytest.approx(math.sqrt(12) / 30 * math.sqrt(365) * 100)


def test_daily_returns_use_the_mark_at_midnight_and_ignore_intraday_marks():
    # Hourly marks from day 0 00:00 to day 2 00:00 (49 marks); intraday values are noise.
    # Midnight marks: 100 (start), 102 (day 1 00:00), 103.02 (day 2 00:00) -> returns +2 %, +1 %.
    # mean 0.015; deviations +-0.005; sample variance = 2 * 0.005^2 / 1 = 0.00005; std = 0.0070711.
    # Sharpe = 0.015 / 0.0070711 * sqrt(365) = 3/sqrt(2) * sqrt(365) ~= 40.527. No down day: Sortino None.
    values = [100.0 + (h % 7) - 3 for h in range(49)]
    values[0], values[24], values[48] = 100.0, 102.0, 103.02

    metrics = metrics_for(values, step=HOUR)

    assert metrics.daily_return_count == 2
    assert metrics.sharpe_ratio == pytest.approx(3 / math.sqrt(2) * math.sqrt(365))
    assert metrics.sortino_ratio is None


def test_missing_day_carries_the_previous_mark_forward():
    # Marks on day 0 (100), day 1 (110), none on day 2, day 3 (121): points 100, 110, 110, 121
    # -> returns 0.1, 0.0, 0.1. mean = 1/15; deviations 1/30, -2/30, 1/30; sum sq = 6/900;
    # variance = 3/900; std = sqrt(3)/30; Sharpe = (1/15)/(sqrt(3)/30) * sqrt(365) = 2 sqrt(365/3) ~= 22.06.
    curve = equity_curve([100, 110, 121]).with_columns(
        pl.Series("ts", [T0, T0 + DAY, T0 + 3 * DAY]).dt.cast_time_unit("ns")
    )

    metrics = compute_performance(curve, empty_round_trips(), 100.0, 0.0)

    assert metrics.daily_return_count == 3
    assert metrics.sharpe_ratio == pytest.approx(2 * math.sqrt(365 / 3))


def test_start_ts_before_first_bar_close_counts_the_first_day():
    # Bar closes only (no start row): 110 at day 1, 99 at day 2, 108.9 at day 3, started day 0 at 100.
    # With start_ts = day 0: returns +0.1, -0.1, +0.1 as in the hand case above; duration 3 days.
    curve = equity_curve([110, 99, 108.9], start=T0 + DAY)

    metrics = compute_performance(curve, empty_round_trips(), 100.0, 0.0, start_ts=T0)

    assert metrics.duration_days == pytest.approx(3.0)
    assert metrics.daily_return_count == 3
    assert metrics.sharpe_ratio == pytest.approx(math.sqrt(365 / 12))
    assert metrics.start_ts == T0


def test_without_start_ts_first_bar_move_folds_into_first_return():
    # Same bar closes, no start_ts: the starting balance sits at day 1 -> points 100, 99, 108.9;
    # returns -0.01 and +0.1; duration 2 days.
    curve = equity_curve([110, 99, 108.9], start=T0 + DAY)

    metrics = compute_performance(curve, empty_round_trips(), 100.0, 0.0)

    assert metrics.duration_days == pytest.approx(2.0)
    assert metrics.daily_return_count == 2
    mean, std = (-0.01 + 0.1) / 2, math.sqrt(2 * 0.055**2)  # deviations +-0.055, ddof 1
    assert metrics.sharpe_ratio == pytest.approx(mean / std * math.sqrt(365))


def test_periods_per_year_scales_sharpe_by_square_root():
    crypto = metrics_for([100, 110, 99, 108.9])
    equities = metrics_for([100, 110, 99, 108.9], periods_per_year=252)

    assert equities.sharpe_ratio == pytest.approx(crypto.sharpe_ratio * math.sqrt(252 / 365))


# --- annualisation --------------------------------------------------------------------------------


def test_doubling_over_exactly_365_days_is_100_pct_annualised():
    # 100 -> 200 from 2023-01-01 to 2024-01-01 (365 days): (2 ** (365/365) - 1) * 100 = 100 %.
    metrics = metrics_for([100, 200], step=365 * DAY)

    assert metrics.duration_days == pytest.approx(365.0)
    assert metrics.annualised_return_pct == pytest.approx(100.0)


def test_doubling_over_730_days_is_41_pct_annualised():
    # (2 ** (365/730) - 1) * 100 = (sqrt(2) - 1) * 100 ~= 41.42 %.
    metrics = metrics_for([100, 200], step=730 * DAY)

    assert metrics.annualised_return_pct == pytest.approx((math.sqrt(2) - 1) * 100)


def test_calmar_is_annualised_return_over_max_drawdown_pct():
    # 100 -> 80 -> 200 over 365 days: annualised 100 %, max drawdown 20 % -> Calmar 5.
    curve = equity_curve([100, 80, 200]).with_columns(
        pl.Series("ts", [T0, T0 + DAY, T0 + 365 * DAY]).dt.cast_time_unit("ns")
    )

    metrics = compute_performance(curve, empty_round_trips(), 100.0, 0.0)

    assert metrics.annualised_return_pct == pytest.approx(100.0)
    assert metrics.max_drawdown_pct == pytest.approx(20.0)
    assert metrics.calmar_ratio == pytest.approx(5.0)


def test_run_shorter_than_a_day_is_not_annualised():
    # 12 hours, +1 %: a CAGR would be 1.01 ** 730 - 1 ~= 143,000 %: reported as None instead.
    metrics = metrics_for([100, 100.5, 101], step=6 * HOUR)

    assert metrics.duration_days == pytest.approx(0.5)
    assert metrics.annualised_return_pct is None
    assert metrics.calmar_ratio is None
    assert metrics.total_return_pct == pytest.approx(1.0)


def test_final_equity_at_or_below_zero_annualises_to_minus_100():
    # 100 -> 50 -> -10: ruin. Peak 100, trough -10 -> drawdown 110 %. Daily returns stop at the
    # first non-positive point: -0.5 and -1.2 (50 -> -10), both kept.
    metrics = metrics_for([100, 50, -10])

    assert metrics.annualised_return_pct == -100.0
    assert metrics.max_drawdown_pct == pytest.approx(110.0)
    assert metrics.total_return_pct == pytest.approx(-110.0)
    assert metrics.daily_return_count == 2
    assert metrics.rating is PerformanceRating.LOSING


# --- round trips ----------------------------------------------------------------------------------


def test_trade_figures_of_plus10_minus5_plus5_minus2():
    # Wins 10, 5 (sum 15); losses -5, -2 (sum -7). Profit factor 15/7 ~= 2.1429.
    # Win rate 2/4 = 50 %. Average win 7.5, average loss -3.5. Expectancy (15 - 7)/4 = 2.
    metrics = metrics_for([100, 108], trades=round_trips([10, -5, 5, -2]))

    assert metrics.total_trades == 4
    assert (metrics.wins, metrics.losses, metrics.breakevens) == (2, 2, 0)
    assert metrics.profit_factor == pytest.approx(15 / 7)
    assert metrics.win_rate_pct == pytest.approx(50.0)
    assert metrics.average_win == pytest.approx(7.5)
    assert metrics.average_loss == pytest.approx(-3.5)
    assert metrics.largest_win == 10.0
    assert metrics.largest_loss == -5.0
    assert metrics.expectancy == pytest.approx(2.0)
    assert metrics.sum_of_wins == pytest.approx(15.0)
    assert metrics.sum_of_losses == pytest.approx(-7.0)
    assert metrics.trades_net_pnl == pytest.approx(8.0)


def test_breakeven_trade_counts_apart_but_in_win_rate_denominator():
    # +4, 0, -2: 1 win, 1 loss, 1 breakeven; win rate 1/3; profit factor 4/2 = 2; expectancy 2/3.
    metrics = metrics_for([100, 102], trades=round_trips([4, 0, -2]))

    assert (metrics.wins, metrics.losses, metrics.breakevens) == (1, 1, 1)
    assert metrics.win_rate_pct == pytest.approx(100 / 3)
    assert metrics.profit_factor == pytest.approx(2.0)
    assert metrics.expectancy == pytest.approx(2 / 3)


def test_all_winners_have_no_profit_factor_and_no_loss_figures():
    metrics = metrics_for([100, 108], trades=round_trips([5, 3]))

    assert metrics.profit_factor is None  # infinite: no losing round trip (losses == 0 says why)
    assert metrics.losses == 0
    assert metrics.win_rate_pct == pytest.approx(100.0)
    assert metrics.average_loss is None
    assert metrics.largest_loss is None
    assert metrics.average_win == pytest.approx(4.0)


def test_all_losers_have_profit_factor_zero():
    metrics = metrics_for([100, 97], trades=round_trips([-1, -2]))

    assert metrics.profit_factor == 0.0
    assert metrics.win_rate_pct == 0.0
    assert metrics.average_win is None


# --- exposure, fees, edge cases -------------------------------------------------------------------


def test_exposure_is_share_of_bars_with_open_notional():
    # Notional 0, 500, 500, 0 -> 2 of 4 bars exposed = 50 %.
    metrics = metrics_for([100, 101, 102, 103], notional=[0, 500, 500, 0], fees_paid=12.5)

    assert metrics.exposure_pct == pytest.approx(50.0)
    assert metrics.fees_paid == 12.5


def test_no_trades_gives_none_for_trade_figures():
    metrics = metrics_for([100, 101, 102])

    assert metrics.total_trades == 0
    assert metrics.win_rate_pct is None
    assert metrics.profit_factor is None
    assert metrics.expectancy is None
    assert metrics.average_win is None
    assert metrics.trades_net_pnl == 0.0


def test_flat_curve_has_no_sharpe_sortino_or_calmar():
    metrics = metrics_for([100.0] * 5)

    assert metrics.sharpe_ratio is None
    assert metrics.sortino_ratio is None
    assert metrics.calmar_ratio is None
    assert metrics.max_drawdown == 0.0
    assert metrics.max_drawdown_duration_days == 0.0
    assert metrics.annualised_return_pct == 0.0
    assert metrics.annualised_volatility_pct == 0.0
    assert metrics.rating is PerformanceRating.UNRATED
    json.dumps(metrics.to_dict(), allow_nan=False)


def test_constant_growth_has_no_sharpe_instead_of_float_noise():
    # +1 % every day: the daily returns differ only by rounding (std ~1e-16), so mean/std would be
    # ~1e15. Such a deviation counts as zero: Sharpe None, and no down day: Sortino None.
    metrics = metrics_for([100 * 1.01**day for day in range(8)])

    assert metrics.daily_return_count == 7
    assert metrics.sharpe_ratio is None
    assert metrics.sortino_ratio is None
    assert metrics.annualised_return_pct == pytest.approx((1.01**365 - 1) * 100)


def test_single_day_run_has_one_daily_return_and_no_sharpe():
    # 00:00 -> 23:00 the same day: one daily return (start -> final), not enough for a std.
    metrics = metrics_for([100, 101, 103], step=11 * HOUR + 30 * timedelta(minutes=1))

    assert metrics.daily_return_count == 1
    assert metrics.sharpe_ratio is None
    assert metrics.annualised_return_pct is None
    assert metrics.rating is PerformanceRating.UNRATED


def test_single_bar_curve_reports_without_error():
    metrics = metrics_for([100.0])

    assert metrics.duration_days == 0.0
    assert metrics.daily_return_count == 0
    assert metrics.total_return == 0.0
    assert metrics.sharpe_ratio is None


def test_to_dict_is_strict_json_with_iso_times_and_rating_string():
    metrics = metrics_for([100, 110, 99, 108.9], trades=round_trips([5, 3]))

    payload = json.loads(json.dumps(metrics.to_dict(), allow_nan=False))

    assert payload["start_ts"] == "2023-01-01T00:00:00+00:00"
    assert payload["end_ts"] == "2023-01-04T00:00:00+00:00"
    assert payload["rating"] == metrics.rating.value
    assert payload["profit_factor"] is None
    assert set(payload) == {field.name for field in dataclasses.fields(PerformanceMetrics)}


def test_metrics_refuse_nan():
    metrics = metrics_for([100, 110, 99, 108.9])

    with pytest.raises(ValueError, match="sharpe_ratio"):
        dataclasses.replace(metrics, sharpe_ratio=float("nan"))


@pytest.mark.parametrize("starting_balance", [0.0, -5.0, float("nan")])
def test_non_positive_starting_balance_is_a_data_error(starting_balance):
    with pytest.raises(DataError, match="starting_balance"):
        metrics_for([100, 101], starting_balance=starting_balance)


def test_start_ts_after_first_bar_is_a_data_error():
    with pytest.raises(DataError, match="start_ts"):
        metrics_for([100, 101], start_ts=T0 + HOUR)


def test_naive_start_ts_is_a_data_error():
    with pytest.raises(DataError, match="timezone"):
        metrics_for([100, 101], start_ts=T0.replace(tzinfo=None))


# --- rating rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total_return", "sharpe", "max_drawdown_pct", "expected"),
    [
        (-0.01, 3.0, 1.0, PerformanceRating.LOSING),
        (10.0, None, 1.0, PerformanceRating.UNRATED),
        (10.0, 2.0, 10.0, PerformanceRating.EXCELLENT),
        (10.0, 2.5, 10.1, PerformanceRating.GOOD),
        (10.0, 1.0, 20.0, PerformanceRating.GOOD),
        (10.0, 1.5, 25.0, PerformanceRating.FAIR),
        (10.0, 0.5, 30.0, PerformanceRating.FAIR),
        (10.0, 0.49, 5.0, PerformanceRating.POOR),
        (10.0, 3.0, 31.0, PerformanceRating.POOR),
    ],
)
def test_rating_bands(total_return, sharpe, max_drawdown_pct, expected):
    assert rate_performance(total_return, sharpe, max_drawdown_pct) is expected


def test_steady_gain_with_small_drawdown_rates_excellent():
    # +1 % a day for 10 days except one -0.5 % day: Sharpe far above 2, drawdown 0.5 %.
    values = [100.0]
    for day in range(10):
        values.append(values[-1] * (0.995 if day == 4 else 1.01))

    metrics = metrics_for(values)

    assert metrics.max_drawdown_pct == pytest.approx(0.5)
    assert metrics.sharpe_ratio > 2.0
    assert metrics.rating is PerformanceRating.EXCELLENT
