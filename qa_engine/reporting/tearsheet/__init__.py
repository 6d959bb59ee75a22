"""report.html: the interactive tearsheet of a backtest run or of a strategy comparison.

One self-contained HTML file (plotly.js inlined once, no server, no network) written next to the PNGs:

- a run (``write_run_tearsheet``, called by ``report.write_report``): a header with the run's own
  ``PerformanceMetrics``; equity with a drawdown panel and the kill switches as vertical lines; bar
  closes with every fill marked as an entry or an exit; monthly returns (year x month); a rolling Sharpe
  ratio; fees and funding (totals and cumulative lines); the kill-switch events; the round trips.
- a comparison (``write_comparison_tearsheet``, called by ``backtest.compare``): every member's equity
  rebased to 100 and its drawdown overlaid, and one metrics row per member linking to its own report.

Every figure comes from the project's numbers: ``statistics`` conventions (365-day years, drawdown from
a running peak that starts at the starting balance, a mark at exactly 00:00 closes the period before).
Series longer than ``MAX_POINTS_PER_LINE`` are thinned for display only (the chart title says so):
the drawdown keeps each bucket's deepest point, the other lines the bucket's last.

Why not NautilusTrader 1.231's own ``nautilus_trader.analysis.tearsheet`` (the ``visualization``
extra): it reads an engine's PortfolioAnalyzer, which our runner switches off (``run_analysis=False``
and ``skip_per_trade_analysis``), works on pandas return series rather than our polars tables,
annualises with a hard-coded 252 trading days (its rolling Sharpe included), and pins plotly < 7. Its
chart set (equity, drawdown, monthly heat map, rolling Sharpe, bars with fills) is the model here.
"""

from qa_engine.reporting.tearsheet.page import FILE_NAME
from qa_engine.reporting.tearsheet.page import write_comparison_tearsheet
from qa_engine.reporting.tearsheet.page import write_run_tearsheet

__all__ = ["FILE_NAME", "write_comparison_tearsheet", "write_run_tearsheet"]
