"""The tearsheet's plotly figures, one function per chart, built from ``series`` and the report's tables.

Time axes are UTC wall time. A line longer than ``series.MAX_POINTS_PER_LINE`` is thinned for display
and the chart's title says so.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Final

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from plotly.subplots import make_subplots

from qa_engine.reporting.statistics import DAYS_PER_YEAR
from qa_engine.reporting.statistics import PerformanceMetrics
from qa_engine.reporting.statistics import drawdown_pct_series
from qa_engine.reporting.tearsheet.series import bar_interval_secs
from qa_engine.reporting.tearsheet.series import fill_markers
from qa_engine.reporting.tearsheet.series import monthly_returns
from qa_engine.reporting.tearsheet.series import rolling_sharpe
from qa_engine.reporting.tearsheet.series import rolling_window_days
from qa_engine.reporting.tearsheet.series import thin

MAX_MARKERS: Final = 10_000  # fills marked per instrument; beyond it the markers are left out
MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
TEMPLATE: Final = "plotly_white"
# Fill markers on the price chart: kind -> (plotly symbol, colour, size). Exits are drawn last and
# smaller, so that a flip (an exit and an entry at one fill) shows both.
MARKER_STYLES: Final = {
    "Long entry": ("triangle-up", "#2ca02c", 12),
    "Short entry": ("triangle-down", "#d62728", 12),
    "Exit": ("x-thin-open", "#000000", 8),
}


def equity_drawdown_figure(
    equity: pl.DataFrame, metrics: PerformanceMetrics, risk_events: pl.DataFrame | None = None
) -> go.Figure:
    """Equity (top) and drawdown % from the running peak (bottom, negative, filled); kill switches fired
    (red dashed) and resumed (green dotted) as vertical lines on both."""
    values = equity["equity"].to_numpy()
    frame = equity.select("ts", "equity").with_columns(
        pl.Series("drawdown_pct", -drawdown_pct_series(values, metrics.starting_balance))
    )
    shown, k = thin(frame, {"equity": "last", "drawdown_pct": "min"})
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
    x = _naive_utc(shown["ts"])
    figure.add_trace(go.Scatter(x=x, y=shown["equity"], name="Equity", line={"color": "#1f77b4"}), 1, 1)
    figure.add_hline(y=metrics.starting_balance, line={"color": "grey", "dash": "dash", "width": 1}, row=1)
    figure.add_trace(
        go.Scatter(
            x=x, y=shown["drawdown_pct"], name="Drawdown %", fill="tozeroy", line={"color": "#d62728"}
        ),
        2,
        1,
    )
    if risk_events is not None and risk_events.height:
        _add_risk_lines(figure, risk_events)
    note = f" (1 mark in {k} shown; drawdown: the deepest of each {k})" if k > 1 else ""
    figure.update_yaxes(title_text="Equity", row=1, col=1)
    figure.update_yaxes(title_text="Drawdown (%)", row=2, col=1)
    figure.update_xaxes(title_text="Time (UTC)", row=2, col=1)
    return _layout(
        figure, f"Max drawdown {metrics.max_drawdown_pct:.2f} %, {equity.height:,} marks{note}", 560
    )


def price_fills_figure(prices: pl.DataFrame, fills: pl.DataFrame) -> go.Figure:
    """Bar closes, one panel per instrument, with every fill at its price: entries (long: green
    triangle up, short: red triangle down) and exits (black x); a flip is both."""
    instruments = sorted(prices["instrument_id"].unique()) if prices.height else []
    if not instruments:
        return _empty_figure("No bar closes were recorded for this run.")
    figure = make_subplots(
        rows=len(instruments), cols=1, shared_xaxes=True, subplot_titles=instruments, vertical_spacing=0.06
    )
    markers = fill_markers(fills)
    notes = []
    for row, instrument_id in enumerate(instruments, start=1):
        closes, k = thin(prices.filter(pl.col("instrument_id") == instrument_id), {"close": "last"})
        if k > 1:
            notes.append(f"1 close in {k} of {instrument_id} shown")
        figure.add_trace(
            go.Scatter(
                x=_naive_utc(closes["ts"]),
                y=closes["close"],
                name=f"{instrument_id} close",
                line={"color": "#7f7f7f", "width": 1},
            ),
            row,
            1,
        )
        own = markers.filter(pl.col("instrument_id") == instrument_id)
        if own.height > MAX_MARKERS:
            notes.append(f"{own.height:,} fill markers of {instrument_id} left out (> {MAX_MARKERS:,})")
            continue
        for kind, (symbol, colour, size) in MARKER_STYLES.items():
            subset = own.filter(pl.col("kind") == kind)
            if subset.height:
                figure.add_trace(
                    go.Scatter(
                        x=_naive_utc(subset["ts"]),
                        y=subset["price"],
                        mode="markers",
                        name=kind,
                        marker={
                            "symbol": symbol,
                            "color": colour,
                            "size": size,
                            "line": {"width": 2, "color": colour},
                        },
                        text=subset["hover"],
                        hovertemplate="%{text}<extra></extra>",
                        legendgroup=kind,
                        showlegend=row == 1,
                    ),
                    row,
                    1,
                )
    figure.update_xaxes(title_text="Time (UTC)", row=len(instruments), col=1)
    title = f"{markers.height:,} fills" + (f" ({'; '.join(notes)})" if notes else "")
    return _layout(figure, title, 240 + 280 * len(instruments))


def monthly_returns_figure(equity: pl.DataFrame, starting_balance: float) -> go.Figure:
    """Heat map of ``monthly_returns``: years down, months across, cells in percent."""
    table = monthly_returns(equity, starting_balance)
    if not table.height:
        return _empty_figure("No month to show: the run has no mark after its start.")
    years = sorted(table["year"].unique())
    grid = [[None] * 12 for _ in years]
    for year, month, value in table.iter_rows():
        grid[years.index(year)][month - 1] = value
    text = [["" if v is None else f"{v:+.2f} %" for v in row] for row in grid]
    heatmap = go.Heatmap(
        z=grid,
        x=list(MONTHS),
        y=[str(y) for y in years],
        colorscale="RdYlGn",
        zmid=0.0,
        text=text,
        texttemplate="%{text}",
        hovertemplate="%{y} %{x}: %{text}<extra></extra>",
        colorbar={"title": {"text": "%"}},
    )
    figure = go.Figure(heatmap)
    figure.update_yaxes(autorange="reversed", type="category")
    title = "Month-end equity over the previous month-end (first month: over the starting balance)"
    return _layout(figure, title, 200 + 60 * len(years))


def rolling_sharpe_figure(equity: pl.DataFrame) -> go.Figure:
    """``rolling_sharpe`` over bar returns with a ``rolling_window_days`` window, annualised on 365
    days (``DAYS_PER_YEAR`` x bars per day); the title names the window and the annualisation."""
    interval_secs = bar_interval_secs(equity)
    if not interval_secs > 0:
        return _empty_figure("Rolling Sharpe needs at least two marks.")
    duration_days = (equity["ts"][-1] - equity["ts"][0]).total_seconds() / 86_400
    window_days = rolling_window_days(duration_days)
    bars_per_day = 86_400 / interval_secs
    window_bars = max(2, round(window_days * bars_per_day))
    periods_per_year = DAYS_PER_YEAR * bars_per_day
    series = rolling_sharpe(equity, window_bars, periods_per_year).drop_nulls()
    if not series.height:
        return _empty_figure(f"Rolling Sharpe: the run is shorter than one {window_days}-day window.")
    shown, k = thin(series, {"sharpe": "last"})
    figure = go.Figure(
        go.Scatter(
            x=_naive_utc(shown["ts"]), y=shown["sharpe"], name="Rolling Sharpe", line={"color": "#2ca02c"}
        )
    )
    figure.add_hline(y=0.0, line={"color": "grey", "dash": "dash", "width": 1})
    figure.update_yaxes(title_text="Sharpe (annualised)")
    figure.update_xaxes(title_text="Time (UTC)")
    title = (
        f"{window_days}-day window ({window_bars:,} bars of {interval_secs / 60:g} min), "
        f"annualised with {DAYS_PER_YEAR} days: x sqrt({DAYS_PER_YEAR} x {bars_per_day:g} bars)"
        + (f"; 1 value in {k} shown" if k > 1 else "")
    )
    return _layout(figure, title, 380)


def costs_figure(fills: pl.DataFrame, funding_rows: pl.DataFrame) -> go.Figure:
    """Cumulative fees paid (from the fills) and cumulative funding (received > 0, from funding_rows)."""
    figure = go.Figure()
    if fills.height:
        fees = fills.select("ts", pl.col("fee").cast(pl.Float64).cum_sum().alias("value"))
        shown, _ = thin(fees, {"value": "last"})
        figure.add_trace(
            go.Scatter(x=_naive_utc(shown["ts"]), y=shown["value"], name="Fees paid", line={"shape": "hv"})
        )
    if funding_rows.height:
        funding = funding_rows.select("ts", pl.col("amount").cast(pl.Float64).cum_sum().alias("value"))
        shown, _ = thin(funding, {"value": "last"})
        figure.add_trace(
            go.Scatter(
                x=_naive_utc(shown["ts"]),
                y=shown["value"],
                name="Funding (received > 0)",
                line={"shape": "hv"},
            )
        )
    if not figure.data:
        return _empty_figure("No fill and no funding settlement in this run.")
    figure.update_yaxes(title_text="Cumulative (quote currency)")
    figure.update_xaxes(title_text="Time (UTC)")
    return _layout(figure, "Cumulative fees paid and funding", 360)


def comparison_figure(curves: Mapping[str, tuple[pl.DataFrame, float]]) -> go.Figure:
    """Each member's equity rebased to 100 at its starting balance (top) and its drawdown % (bottom)."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.05)
    palette = pio.templates[TEMPLATE].layout.colorway
    for index, (name, (equity, starting_balance)) in enumerate(curves.items()):
        values = equity["equity"].to_numpy()
        frame = equity.select("ts").with_columns(
            pl.Series("rebased", values / starting_balance * 100.0),
            pl.Series("drawdown_pct", -drawdown_pct_series(values, starting_balance)),
        )
        shown, _ = thin(frame, {"rebased": "last", "drawdown_pct": "min"})
        x = _naive_utc(shown["ts"])
        style = {"color": palette[index % len(palette)], "width": 1.5}
        label = f"{name} ({values[-1] / starting_balance * 100 - 100:+.2f} %)"
        figure.add_trace(go.Scatter(x=x, y=shown["rebased"], name=label, legendgroup=name, line=style), 1, 1)
        figure.add_trace(
            go.Scatter(
                x=x, y=shown["drawdown_pct"], name=name, legendgroup=name, line=style, showlegend=False
            ),
            2,
            1,
        )
    figure.add_hline(y=100.0, line={"color": "grey", "dash": "dash", "width": 1}, row=1)
    figure.update_yaxes(title_text="Equity (start = 100)", row=1, col=1)
    figure.update_yaxes(title_text="Drawdown (%)", row=2, col=1)
    figure.update_xaxes(title_text="Time (UTC)", row=2, col=1)
    return _layout(figure, "Equity rebased to 100 and drawdown from the running peak", 620)


def _add_risk_lines(figure: go.Figure, events: pl.DataFrame) -> None:
    styles = {
        "trigger": ("#d62728", "dash", "Kill switch fired"),
        "resume": ("#2ca02c", "dot", "Trading resumed"),
    }
    for kind, (colour, dash, label) in styles.items():
        # Python datetimes: a numpy datetime64 in a shape's x0 reaches plotly.js as NaN.
        times = events.filter(pl.col("kind") == kind)["ts"].dt.replace_time_zone(None).to_list()
        for when in times:
            figure.add_vline(x=when, line={"color": colour, "dash": dash, "width": 1.2}, row="all", col=1)
        if len(times):  # a legend entry for the lines (shapes have none)
            figure.add_trace(
                go.Scatter(x=[None], y=[None], mode="lines", name=label, line={"color": colour, "dash": dash})
            )


def _layout(figure: go.Figure, subtitle: str, height: int) -> go.Figure:
    figure.update_layout(
        template=TEMPLATE,
        height=height,
        title={"text": html.escape(subtitle), "font": {"size": 13}, "x": 0.01},
        hovermode="closest",
        legend={"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
        margin={"l": 70, "r": 30, "t": 60, "b": 60},
    )
    figure.update_xaxes(hoverformat="%Y-%m-%d %H:%M")
    return figure


def _empty_figure(message: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(
        text=html.escape(message), showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return _layout(figure, message, 160)


def _naive_utc(ts: pl.Series) -> np.ndarray:
    """UTC timestamps as naive datetime64 (plotly draws them as UTC wall time)."""
    return ts.dt.replace_time_zone(None).to_numpy()
