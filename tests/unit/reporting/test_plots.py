"""Equity charts: the PNG decodes at the expected size, and the figure holds the right data."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from matplotlib.image import imread

from qa_engine.errors import DataError
from qa_engine.reporting.plots import DPI
from qa_engine.reporting.plots import FIGURE_SIZE_INCHES
from qa_engine.reporting.plots import MAX_TRADE_MARKERS
from qa_engine.reporting.plots import equity_comparison_figure
from qa_engine.reporting.plots import equity_curve_figure
from qa_engine.reporting.plots import plot_equity_comparison
from qa_engine.reporting.plots import plot_equity_curve
from tests.unit.reporting.factories import equity_curve
from tests.unit.reporting.factories import round_trips

HOUR = timedelta(hours=1)


def wavy_curve(bars: int = 24 * 30, start_equity: float = 10_000.0):
    hours = np.arange(bars)
    values = start_equity * (1 + 0.05 * np.sin(hours / 50) + hours * 1e-4)
    return equity_curve(values.tolist(), step=HOUR, notional=[1000.0] * bars)


def test_equity_png_decodes_at_figure_size(tmp_path):
    path = plot_equity_curve(
        wavy_curve(), tmp_path / "nested" / "equity.png", "EMA cross", round_trips([5, -3])
    )

    image = imread(path)

    assert path.stat().st_size > 20_000
    assert image.shape[:2] == (FIGURE_SIZE_INCHES[1] * DPI, FIGURE_SIZE_INCHES[0] * DPI)
    assert float(image[..., :3].std()) > 0.05  # not a blank canvas


def test_equity_figure_has_equity_and_negative_drawdown_panels():
    # Curve 100 -> 110 -> 99 -> 120: drawdown 0, 0, -10 %, 0 in the lower panel.
    figure = equity_curve_figure(equity_curve([100, 110, 99, 120]), "hand case")

    equity_axes, drawdown_axes = figure.axes
    drawdown_line = drawdown_axes.get_lines()[0]

    assert equity_axes.get_ylabel() == "Equity (quote currency)"
    assert drawdown_axes.get_ylabel() == "Drawdown (%)"
    assert drawdown_axes.get_xlabel() == "Time (UTC)"
    assert list(equity_axes.get_lines()[0].get_ydata()) == [100.0, 110.0, 99.0, 120.0]
    assert np.allclose(drawdown_line.get_ydata(), [0.0, 0.0, -10.0, 0.0])
    assert len(drawdown_axes.collections) == 1  # the filled area
    assert equity_axes.get_shared_x_axes().joined(equity_axes, drawdown_axes)
    assert figure.get_suptitle() == "hand case"


def test_trade_markers_sit_on_the_drawn_line_between_sparse_marks():
    # Daily marks 100 (day 0), 110 (day 1): an entry at day 0 01:00 sits at 100 + 10 / 24 on the line.
    figure = equity_curve_figure(equity_curve([100, 110]), "sparse", round_trips([5.0]))

    entry = figure.axes[0].collections[0].get_offsets()[0]

    assert entry[1] == pytest.approx(100 + 10 / 24)


def test_trade_markers_sit_on_the_curve():
    # Round trips open at day i 01:00 and close at 05:00; hourly marks -> entry at mark 1, exit at mark 5.
    curve = wavy_curve(bars=48)
    figure = equity_curve_figure(curve, "markers", round_trips([5.0, -3.0]), quote_currency="USDT")

    equity_axes = figure.axes[0]
    labels = [collection.get_label() for collection in equity_axes.collections]
    long_entries = equity_axes.collections[labels.index("Long entry")].get_offsets()
    values = curve["equity"].to_numpy()

    assert labels == ["Long entry", "Short entry", "Exit"]
    assert long_entries[0][1] == pytest.approx(values[1])
    assert equity_axes.collections[labels.index("Exit")].get_offsets()[0][1] == pytest.approx(values[5])
    assert equity_axes.get_ylabel() == "Equity (USDT)"


def test_too_many_trades_omit_markers_and_say_so():
    figure = equity_curve_figure(wavy_curve(), "busy", round_trips([1.0] * (MAX_TRADE_MARKERS + 1)))

    equity_axes = figure.axes[0]

    assert len(equity_axes.collections) == 0
    assert "markers omitted" in equity_axes.texts[0].get_text()


def test_comparison_rebases_each_curve_to_100(tmp_path):
    curves = {"ema": equity_curve([200, 220, 250]), "hold": equity_curve([50, 45, 40])}

    figure = equity_comparison_figure(curves, "compare")
    path = plot_equity_comparison(curves, tmp_path / "compare.png", "compare")

    lines = figure.axes[0].get_lines()
    assert np.allclose(lines[0].get_ydata(), [100.0, 110.0, 125.0])
    assert np.allclose(lines[1].get_ydata(), [100.0, 90.0, 80.0])
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["ema (+25.00 %)", "hold (-20.00 %)"]
    assert imread(path).shape[1] == FIGURE_SIZE_INCHES[0] * DPI
    assert path.stat().st_size > 10_000


def test_single_bar_curve_still_plots(tmp_path):
    path = plot_equity_curve(equity_curve([100.0]), tmp_path / "one.png", "one bar")

    assert imread(path).shape[0] == FIGURE_SIZE_INCHES[1] * DPI


def test_comparison_without_curves_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="at least one"):
        plot_equity_comparison({}, tmp_path / "none.png", "nothing")


def test_comparison_curve_starting_at_zero_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="'broke'"):
        plot_equity_comparison({"broke": equity_curve([0.0, 1.0])}, tmp_path / "x.png", "x")
