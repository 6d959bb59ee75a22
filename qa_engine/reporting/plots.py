"""PNG charts of backtest equity curves, drawn with matplotlib's Agg canvas (no GUI, no pyplot state).

Figures are built with ``matplotlib.figure.Figure`` on an explicit ``FigureCanvasAgg``, so these
functions never touch the process-wide backend and are safe to call from worker threads.
Inputs follow ``schema.EQUITY_CURVE_SCHEMA`` / ``schema.ROUND_TRIP_SCHEMA``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator
from matplotlib.dates import ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from qa_engine.errors import DataError
from qa_engine.reporting.schema import validate_equity_curve
from qa_engine.reporting.schema import validate_round_trips
from qa_engine.reporting.statistics import drawdown_pct_series

FIGURE_SIZE_INCHES: Final = (12.0, 7.0)
DPI: Final = 120
# Above this many round trips the entry/exit markers hide the curve: they are left out (and the
# chart says so).
MAX_TRADE_MARKERS: Final = 300

_THOUSANDS = FuncFormatter(lambda value, _position: f"{value:,.0f}")


def plot_equity_curve(
    equity: pl.DataFrame,
    path: str | Path,
    title: str,
    trades: pl.DataFrame | None = None,
    *,
    starting_balance: float | None = None,
    quote_currency: str | None = None,
    risk_events: pl.DataFrame | None = None,
) -> Path:
    """Write ``equity_curve_figure(...)`` as a PNG to ``path``; create the folder; return the path."""
    figure = equity_curve_figure(
        equity,
        title,
        trades,
        starting_balance=starting_balance,
        quote_currency=quote_currency,
        risk_events=risk_events,
    )
    return _save(figure, path)


def equity_curve_figure(
    equity: pl.DataFrame,
    title: str,
    trades: pl.DataFrame | None = None,
    *,
    starting_balance: float | None = None,
    quote_currency: str | None = None,
    risk_events: pl.DataFrame | None = None,
) -> Figure:
    """Two panels on a shared UTC time axis: equity (top) and drawdown % from the running peak
    (bottom, filled, plotted as negative percent).

    ``trades`` adds entry markers (green up-triangle = long, red down-triangle = short) and exit
    markers (black x), placed on the drawn (linearly interpolated) curve at the fill time, when there
    are at most ``MAX_TRADE_MARKERS`` round trips. ``starting_balance`` (default: the first equity value)
    is the dashed reference line and the first peak of the drawdown, as in ``compute_performance``.
    ``risk_events`` (the risk guard's triggers and resumes) draw vertical lines on both panels: red
    dashed where a kill switch fired, green dotted where trading resumed.
    """
    equity = validate_equity_curve(equity)
    start = float(equity["equity"][0]) if starting_balance is None else float(starting_balance)
    if not start > 0:
        raise DataError(f"starting balance for the drawdown panel must be positive, got {start}")
    times = _naive_utc(equity["ts"])
    values = equity["equity"].to_numpy()
    drawdown_pct = drawdown_pct_series(values, start)
    unit = quote_currency or "quote currency"

    figure = Figure(figsize=FIGURE_SIZE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    equity_axes, drawdown_axes = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    marker = "o" if len(values) == 1 else None
    equity_axes.plot(times, values, color="tab:blue", linewidth=1.2, marker=marker, label="Equity")
    equity_axes.axhline(start, color="grey", linestyle="--", linewidth=0.8, label=f"Start {start:,.2f}")
    if trades is not None:
        _draw_trade_markers(equity_axes, equity, validate_round_trips(trades))
    if risk_events is not None and risk_events.height:
        _draw_risk_events(equity_axes, risk_events, labelled=True)
    final = float(values[-1])
    equity_axes.set_title(
        f"Final {final:,.2f} {unit} ({(final / start - 1) * 100:+.2f} %)   "
        f"Max drawdown {drawdown_pct.max():.2f} %   Bars {len(values):,}",
        loc="left",
        fontsize=9,
    )
    equity_axes.set_ylabel(f"Equity ({unit})")
    equity_axes.yaxis.set_major_formatter(_THOUSANDS if abs(final) >= 10_000 else FuncFormatter(_plain))
    equity_axes.grid(True, alpha=0.3)
    equity_axes.legend(loc="upper left", fontsize=8)

    drawdown_axes.fill_between(times, -drawdown_pct, 0.0, color="tab:red", alpha=0.35, linewidth=0)
    drawdown_axes.plot(times, -drawdown_pct, color="tab:red", linewidth=0.8)
    drawdown_axes.set_ylabel("Drawdown (%)")
    drawdown_axes.set_xlabel("Time (UTC)")
    drawdown_axes.set_ylim(top=0.0, bottom=min(-1.0, float(-drawdown_pct.max()) * 1.1))
    drawdown_axes.grid(True, alpha=0.3)
    if risk_events is not None and risk_events.height:
        _draw_risk_events(drawdown_axes, risk_events, labelled=False)
    _format_time_axis(drawdown_axes)

    figure.suptitle(title, fontsize=13)
    return figure


def plot_equity_comparison(curves: Mapping[str, pl.DataFrame], path: str | Path, title: str) -> Path:
    """Write ``equity_comparison_figure(...)`` as a PNG to ``path``; create the folder; return the path."""
    return _save(equity_comparison_figure(curves, title), path)


def equity_comparison_figure(curves: Mapping[str, pl.DataFrame], title: str) -> Figure:
    """Several equity curves overlaid, each rebased to 100 at its first bar.

    The legend shows each curve's total return. Curves may cover different periods; they share the
    time axis.
    """
    if not curves:
        raise DataError("plot_equity_comparison needs at least one equity curve, got none")
    figure = Figure(figsize=(FIGURE_SIZE_INCHES[0], 6.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    # Beyond the default cycle's 10 colours, tab20's 20 keep every curve distinct.
    palette = colormaps["tab20"].colors if len(curves) > 10 else [None] * len(curves)
    for (name, curve), color in zip(curves.items(), palette, strict=False):
        curve = validate_equity_curve(curve, name=f"equity curve {name!r}")
        values = curve["equity"].to_numpy()
        if not values[0] > 0:
            raise DataError(f"equity curve {name!r} starts at {values[0]}; cannot rebase it to 100")
        rebased = values / values[0] * 100.0
        marker = "o" if len(values) == 1 else None
        axes.plot(
            _naive_utc(curve["ts"]),
            rebased,
            linewidth=1.2,
            marker=marker,
            color=color,
            label=f"{name} ({rebased[-1] - 100.0:+.2f} %)",
        )
    axes.axhline(100.0, color="grey", linestyle="--", linewidth=0.8)
    axes.set_ylabel("Equity (rebased, start = 100)")
    axes.set_xlabel("Time (UTC)")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    _format_time_axis(axes)
    figure.suptitle(title, fontsize=13)
    return figure


def _draw_trade_markers(axes: Axes, equity: pl.DataFrame, trades: pl.DataFrame) -> None:
    if trades.height == 0:
        return
    if trades.height > MAX_TRADE_MARKERS:
        axes.text(
            0.99,
            0.02,
            f"{trades.height:,} round trips: markers omitted (> {MAX_TRADE_MARKERS})",
            transform=axes.transAxes,
            ha="right",
            va="bottom",
            fontsize=8,
            color="grey",
        )
        return
    ts_ns = equity["ts"].cast(pl.Int64).to_numpy()
    values = equity["equity"].to_numpy()

    def on_curve(column: str, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        at_ns = frame[column].cast(pl.Int64).to_numpy()
        return _naive_utc(frame[column]), np.interp(at_ns, ts_ns, values)  # on the drawn line

    styles = {"LONG": ("^", "tab:green", "Long entry"), "SHORT": ("v", "tab:red", "Short entry")}
    for side, (symbol, colour, label) in styles.items():
        subset = trades.filter(pl.col("side") == side)
        if subset.height:
            x, y = on_curve("entry_ts", subset)
            axes.scatter(x, y, marker=symbol, color=colour, s=36, zorder=3, label=label)
    x, y = on_curve("exit_ts", trades)
    axes.scatter(x, y, marker="x", color="black", s=28, linewidths=1.0, zorder=3, label="Exit")


def _draw_risk_events(axes: Axes, events: pl.DataFrame, labelled: bool) -> None:
    styles = {
        "trigger": ("tab:red", "--", "Kill switch fired"),
        "resume": ("tab:green", ":", "Trading resumed"),
    }
    for kind, (colour, style, label) in styles.items():
        subset = events.filter(pl.col("kind") == kind)
        for index, when in enumerate(_naive_utc(subset["ts"])):
            first = labelled and index == 0
            axes.axvline(when, color=colour, linestyle=style, linewidth=1.0, label=label if first else None)
    if labelled:
        axes.legend(loc="upper left", fontsize=8)


def _format_time_axis(axes: Axes) -> None:
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _naive_utc(ts: pl.Series) -> np.ndarray:
    """UTC timestamps as naive datetime64[ns] (matplotlib plots them as UTC wall time)."""
    return ts.dt.replace_time_zone(None).to_numpy()


def _plain(value: float, _position: int) -> str:
    return f"{value:,.2f}"


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
