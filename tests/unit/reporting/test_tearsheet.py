"""report.html's series and figures: the values behind each chart, on hand-made curves and fills."""

from __future__ import annotations

import math
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from qa_engine.reporting.schema import EQUITY_CURVE_SCHEMA
from qa_engine.reporting.schema import UTC_NS
from qa_engine.reporting.schema import empty_round_trips
from qa_engine.reporting.statistics import DAYS_PER_YEAR
from qa_engine.reporting.statistics import compute_performance
from qa_engine.reporting.statistics import sharpe_ratio
from qa_engine.reporting.tearsheet.figures import MONTHS
from qa_engine.reporting.tearsheet.figures import comparison_figure
from qa_engine.reporting.tearsheet.figures import equity_drawdown_figure
from qa_engine.reporting.tearsheet.figures import monthly_returns_figure
from qa_engine.reporting.tearsheet.figures import price_fills_figure
from qa_engine.reporting.tearsheet.figures import rolling_sharpe_figure
from qa_engine.reporting.tearsheet.series import MAX_POINTS_PER_LINE
from qa_engine.reporting.tearsheet.series import fill_markers
from qa_engine.reporting.tearsheet.series import monthly_returns
from qa_engine.reporting.tearsheet.series import rolling_window_days
from qa_engine.reporting.tearsheet.series import thin
from tests.unit.reporting.factories import equity_curve

HOUR = timedelta(hours=1)


def noisy_hourly_curve(days: int, seed: int = 7) -> pl.DataFrame:
    returns = np.random.default_rng(seed).normal(0.0002, 0.004, days * 24)
    values = 10_000.0 * np.cumprod(np.concatenate(([1.0], 1.0 + returns)))
    return equity_curve(values.tolist(), step=HOUR)


def curve_at(marks: list[tuple[datetime, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [t for t, _ in marks],
            "equity": [v for _, v in marks],
            "position_notional": [0.0] * len(marks),
        },
        schema=EQUITY_CURVE_SCHEMA,
    )


def fills(rows: list[tuple[str, str, str, str]]) -> pl.DataFrame:
    """(side, quantity, price, position_after), one per hour from 2025-01-01."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": [start + i * HOUR for i in range(len(rows))],
            "instrument_id": ["BTCUSDT-LINEAR.BYBIT"] * len(rows),
            "side": [r[0] for r in rows],
            "quantity": [r[1] for r in rows],
            "price": [r[2] for r in rows],
            "fee": ["0.5"] * len(rows),
            "position_after": [r[3] for r in rows],
            "signal": ["BUY"] * len(rows),
            "reasoning": ["<b>ema</b> cross"] * len(rows),
        }
    ).with_columns(pl.col("ts").cast(UTC_NS))


def test_rolling_sharpe_annualises_bar_returns_on_365_days():
    # 90 days of hourly marks: a 30-day window of 720 hourly returns, times sqrt(365 * 24).
    curve = noisy_hourly_curve(days=90)

    figure = rolling_sharpe_figure(curve)

    last_window = np.diff(curve["equity"].to_numpy()[-721:]) / curve["equity"].to_numpy()[-721:-1]
    expected = sharpe_ratio(last_window, DAYS_PER_YEAR * 24)
    plotted = float(figure.data[0].y[-1])
    assert plotted == pytest.approx(expected, rel=1e-6)
    assert plotted != pytest.approx(expected * math.sqrt(252 / 365), rel=1e-3)  # not a 252-day default
    assert len(figure.data[0].y) == 90 * 24 - 720 + 1
    assert "30-day window (720 bars of 60 min)" in figure.layout.title.text
    assert "365 days" in figure.layout.title.text


def test_rolling_sharpe_of_daily_marks_matches_the_headline_sharpe_on_the_same_days():
    # Daily marks over 60 days: the last 30-day window is the last 30 daily returns of compute_performance.
    curve = noisy_hourly_curve(days=60).gather_every(24)
    tail = curve.tail(31)

    figure = rolling_sharpe_figure(curve)
    headline = compute_performance(tail, empty_round_trips(), float(tail["equity"][0]), 0.0)

    assert float(figure.data[0].y[-1]) == pytest.approx(headline.sharpe_ratio, rel=1e-6)


def test_rolling_window_is_30_days_or_a_quarter_of_a_short_run():
    assert rolling_window_days(365.0) == 30
    assert rolling_window_days(60.0) == 30
    assert rolling_window_days(31.0) == 7
    assert rolling_window_days(0.5) == 1


def test_rolling_sharpe_of_a_run_shorter_than_its_window_says_so():
    figure = rolling_sharpe_figure(equity_curve([100.0, 101.0, 100.5], step=HOUR))

    assert not figure.data
    assert "shorter than one 1-day window" in figure.layout.annotations[0].text


def test_monthly_returns_are_month_end_over_previous_month_end():
    # The start (100), a mid-January 110, 120 at 1 Feb 00:00 (closes January), 90 mid-February,
    # 99 at 1 March 00:00 (closes February): January +20 %, February -17.5 %.
    day = lambda month, d: datetime(2025, month, d, tzinfo=UTC)  # noqa: E731
    curve = curve_at(
        [(day(1, 1), 100.0), (day(1, 15), 110.0), (day(2, 1), 120.0), (day(2, 20), 90.0), (day(3, 1), 99.0)]
    )

    table = monthly_returns(curve, starting_balance=100.0)
    figure = monthly_returns_figure(curve, starting_balance=100.0)

    assert table.select("year", "month").rows() == [(2025, 1), (2025, 2)]
    assert table["return_pct"].to_list() == pytest.approx([20.0, -17.5])
    january, february, march = figure.data[0].z[0][:3]
    assert (january, february, march) == (pytest.approx(20.0), pytest.approx(-17.5), None)
    assert list(figure.data[0].x) == list(MONTHS) and len(MONTHS) == 12
    assert list(figure.data[0].text[0][:3]) == ["+20.00 %", "-17.50 %", ""]


def test_monthly_returns_compound_across_a_year_end():
    curve = curve_at(
        [
            (datetime(2024, 12, 1, tzinfo=UTC), 100.0),
            (datetime(2024, 12, 31, 12, tzinfo=UTC), 50.0),
            (datetime(2025, 1, 20, tzinfo=UTC), 75.0),
        ]
    )

    table = monthly_returns(curve, starting_balance=100.0)

    assert table.rows() == [(2024, 12, pytest.approx(-50.0)), (2025, 1, pytest.approx(50.0))]


def test_fills_become_entries_exits_and_a_flip_is_both():
    frame = fills(
        [("BUY", "0.010", "100", "0.010"), ("SELL", "0.020", "110", "-0.010"), ("BUY", "0.010", "105", "0")]
    )

    markers = fill_markers(frame)

    assert markers.select("price", "kind").rows() == [
        (100.0, "Long entry"),
        (110.0, "Exit"),
        (110.0, "Short entry"),
        (105.0, "Exit"),
    ]
    assert "&lt;b&gt;ema&lt;/b&gt; cross" in markers["hover"][0]  # strategy text is escaped, lines are <br>
    assert "<br>position after: 0.010" in markers["hover"][0]


def test_scaling_in_and_out_is_an_entry_then_an_exit():
    frame = fills([("SELL", "1", "100", "-1"), ("SELL", "1", "101", "-2"), ("BUY", "1", "99", "-1")])

    assert fill_markers(frame)["kind"].to_list() == ["Short entry", "Short entry", "Exit"]


def test_price_figure_marks_fills_at_their_price_on_the_close_line():
    frame = fills([("BUY", "0.010", "100", "0.010"), ("SELL", "0.010", "110", "0")])
    start = datetime(2025, 1, 1, tzinfo=UTC)
    closes = pl.DataFrame(
        {
            "ts": [start + i * HOUR for i in range(3)],
            "instrument_id": ["BTCUSDT-LINEAR.BYBIT"] * 3,
            "close": [100.0, 110.0, 108.0],
        }
    ).with_columns(pl.col("ts").cast(UTC_NS))

    figure = price_fills_figure(closes, frame)

    by_name = {trace.name: trace for trace in figure.data}
    assert list(by_name["BTCUSDT-LINEAR.BYBIT close"].y) == [100.0, 110.0, 108.0]
    assert list(by_name["Long entry"].y) == [100.0]
    assert list(by_name["Exit"].y) == [110.0]
    assert "Short entry" not in by_name


def test_price_figure_without_closes_says_so():
    figure = price_fills_figure(
        pl.DataFrame(schema={"ts": UTC_NS, "instrument_id": pl.Utf8, "close": pl.Float64}), pl.DataFrame()
    )

    assert "No bar closes" in figure.layout.annotations[0].text


def test_thinning_keeps_the_deepest_drawdown_of_each_bucket():
    rows = 3 * MAX_POINTS_PER_LINE + 5
    frame = pl.DataFrame({"ts": np.arange(rows), "drawdown_pct": -(np.sin(np.arange(rows)) ** 2) * 10})

    shown, k = thin(frame, {"drawdown_pct": "min"})

    assert k == 4 and shown.height <= MAX_POINTS_PER_LINE
    assert shown["drawdown_pct"].min() == frame["drawdown_pct"].min()
    assert shown["ts"][-1] == rows - 1


def test_equity_figure_draws_drawdown_from_the_starting_balance_and_kill_switch_lines():
    curve = equity_curve([100.0, 110.0, 99.0, 120.0])
    metrics = compute_performance(curve, empty_round_trips(), 100.0, 0.0)
    events = pl.DataFrame(
        {
            "ts": [curve["ts"][2]],
            "kind": ["trigger"],
            "rule": ["max_drawdown"],
            "action": ["flatten"],
            "message": ["x"],
        }
    )

    figure = equity_drawdown_figure(curve, metrics, events)

    equity, drawdown, legend_only = figure.data
    assert list(equity.y) == [100.0, 110.0, 99.0, 120.0]
    assert list(drawdown.y) == pytest.approx([0.0, 0.0, -10.0, 0.0])
    assert legend_only.name == "Kill switch fired"
    fired = [shape for shape in figure.layout.shapes if shape.line.color == "#d62728"]
    assert len(fired) == 2  # on both panels, at the event's time (a datetime: plotly.js reads ns as NaN)
    assert {shape.x0 for shape in fired} == {curve["ts"][2].replace(tzinfo=None)}


def test_comparison_rebases_each_member_to_100_at_its_starting_balance():
    figure = comparison_figure(
        {"ema": (equity_curve([200, 220, 250]), 200.0), "hold": (equity_curve([50, 45, 40]), 50.0)}
    )

    rebased = [trace for trace in figure.data if trace.showlegend is not False]
    assert [trace.name for trace in rebased] == ["ema (+25.00 %)", "hold (-20.00 %)"]
    assert list(rebased[0].y) == pytest.approx([100.0, 110.0, 125.0])
    assert list(rebased[1].y) == pytest.approx([100.0, 90.0, 80.0])
