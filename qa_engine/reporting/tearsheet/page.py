"""report.html itself: the page around the figures, its metric cards and tables, and the two writers."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Final
from urllib.parse import quote

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

from qa_engine.reporting.statistics import PerformanceMetrics
from qa_engine.reporting.tearsheet.figures import comparison_figure
from qa_engine.reporting.tearsheet.figures import costs_figure
from qa_engine.reporting.tearsheet.figures import equity_drawdown_figure
from qa_engine.reporting.tearsheet.figures import monthly_returns_figure
from qa_engine.reporting.tearsheet.figures import price_fills_figure
from qa_engine.reporting.tearsheet.figures import rolling_sharpe_figure

if TYPE_CHECKING:
    from qa_engine.reporting.report import BacktestReport

FILE_NAME: Final = "report.html"
MAX_TABLE_ROWS: Final = 1_000  # rows of the round-trip table (trades.csv holds all)
PLOTLY_CONFIG: Final = {"displaylogo": False, "responsive": True}


def write_run_tearsheet(
    report: BacktestReport, run_dir: Path, title: str, prices: pl.DataFrame | None = None
) -> Path:
    """Write ``run_dir/report.html`` for one run. ``prices``: bar closes (ts, instrument_id, close),
    by default ``report.closes``; without them the price section says so."""
    prices = report.closes if prices is None else prices
    metrics = report.metrics
    charts = [
        ("equity", "Equity and drawdown", equity_drawdown_figure(report.equity, metrics, report.risk_events)),
        ("price", "Price and fills", price_fills_figure(prices, report.fills)),
        ("monthly", "Monthly returns", monthly_returns_figure(report.equity, metrics.starting_balance)),
        ("rolling-sharpe", "Rolling Sharpe ratio", rolling_sharpe_figure(report.equity)),
        ("costs", "Fees and funding", costs_figure(report.fills, report.funding_rows)),
    ]
    sections = [
        _metric_cards(report),
        *_chart_sections(charts),
        _section("Fees and funding, totals", _costs_table(report)),
        _section("Kill-switch events", _risk_events_table(report.risk_events)),
        _section(f"Round trips ({report.trades.height:,})", _round_trip_table(report)),
    ]
    return _write(run_dir, title, sections)


def write_comparison_tearsheet(
    reports: Mapping[str, BacktestReport],
    run_dir: Path,
    title: str,
    *,
    metric: str | None = None,
    best: str | None = None,
) -> Path:
    """Write ``run_dir/report.html`` for a comparison: overlaid equity and drawdowns, a metrics table
    (``best`` by ``metric`` highlighted), and links to members' ``<name>/report.html`` where present."""
    figure = comparison_figure({name: (r.equity, r.metrics.starting_balance) for name, r in reports.items()})
    table = _comparison_table({name: r.metrics for name, r in reports.items()}, run_dir, best)
    heading = f"Metrics (best by {metric}: {best or 'n/a'})" if metric else "Metrics"
    sections = [_section(heading, table), *_chart_sections([("comparison", "Equity and drawdown", figure)])]
    return _write(run_dir, title, sections)


# ---- HTML --------------------------------------------------------------------------------------------

STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 20px; margin-bottom: 4px; } h2 { font-size: 16px; margin-top: 28px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 8px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; }
.card .name { font-size: 12px; color: #666; } .card .value { font-size: 16px; font-weight: 600; }
.scroll { max-height: 480px; overflow: auto; border: 1px solid #ddd; }
table.data { border-collapse: collapse; font-size: 12px; width: 100%; }
table.data th, table.data td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; }
table.data th { position: sticky; top: 0; background: #f6f6f6; }
table.data td.text, table.data th.text { text-align: left; }
tr.best { background: #e8f5e9; } .empty { color: #666; font-style: italic; }
"""


def _write(run_dir: Path, title: str, sections: list[str]) -> Path:
    path = Path(run_dir) / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    page = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path


def _chart_sections(charts: list[tuple[str, str, go.Figure]]) -> list[str]:
    """One section per figure; plotly.js is inlined once, with the page's first chart."""
    return [
        _section(
            heading,
            pio.to_html(
                figure,
                full_html=False,
                include_plotlyjs=index == 0,
                config=PLOTLY_CONFIG,
                div_id=f"chart-{key}",
            ),
        )
        for index, (key, heading, figure) in enumerate(charts)
    ]


def _section(heading: str, body: str) -> str:
    return f"<section>\n<h2>{html.escape(heading)}</h2>\n{body}\n</section>"


def _metric_cards(report: BacktestReport) -> str:
    m = report.metrics
    unit = report.currency
    cards = [
        ("Period (UTC)", f"{m.start_ts:%Y-%m-%d %H:%M} to {m.end_ts:%Y-%m-%d %H:%M}"),
        ("Starting balance", f"{_num(m.starting_balance)} {unit}"),
        ("Final equity", f"{_num(m.final_equity)} {unit}"),
        ("Total return", f"{_num(m.total_return)} ({_pct(m.total_return_pct)})"),
        ("Annualised return (365 d)", _pct(m.annualised_return_pct)),
        ("Annualised volatility", _pct(m.annualised_volatility_pct)),
        ("Max drawdown", f"{_num(m.max_drawdown)} ({_pct(m.max_drawdown_pct)})"),
        ("Longest drawdown", f"{m.max_drawdown_duration_days:,.1f} days"),
        (
            "Sharpe / Sortino / Calmar",
            " / ".join(_num(x) for x in (m.sharpe_ratio, m.sortino_ratio, m.calmar_ratio)),
        ),
        ("Round trips (wins / losses)", f"{m.total_trades:,} ({m.wins:,} / {m.losses:,})"),
        ("Win rate", _pct(m.win_rate_pct)),
        ("Profit factor", _num(m.profit_factor)),
        ("Expectancy per round trip", _num(m.expectancy)),
        ("Exposure", _pct(m.exposure_pct)),
        ("Fees paid", f"{_num(m.fees_paid)} {unit}"),
        ("Funding (received > 0)", f"{report.funding.get('total', 0.0):+,.2f} {unit}"),
        (
            "Reconciliation",
            "balanced to the cent"
            if report.reconciliation.balanced_to_the_cent
            else f"OFF by {report.reconciliation.difference}",
        ),
        ("Rating", str(m.rating)),
    ]
    items = "".join(
        f'<div class="card"><div class="name">{html.escape(name)}</div>'
        f'<div class="value">{html.escape(value)}</div></div>'
        for name, value in cards
    )
    return f'<section>\n<h2>Key metrics</h2>\n<div class="cards" id="metrics">{items}</div>\n</section>'


def _costs_table(report: BacktestReport) -> str:
    funding = report.funding
    rows = [("fees paid (trading)", _num(report.metrics.fees_paid))]
    rows.append(("liquidation fees", _num(report.venue_simulation.get("liquidation_fees", 0.0))))
    rows += [(f"fee rates {name}", rates.describe()) for name, rates in report.fee_rates.items()]
    if funding.get("settled"):
        rows.append(("funding total (received > 0)", f"{funding['total']:+,.2f}"))
        rows.append(("funding settlements", f"{funding['settlements']:,}"))
        rows += [(f"funding {name}", f"{total:+,.2f}") for name, total in funding["by_instrument"].items()]
    rows += [(f"funding not simulated: {name}", why) for name, why in funding.get("not_settled", {}).items()]
    return _table(["item", f"value ({report.currency})"], rows, text_columns=2)


def _risk_events_table(events: pl.DataFrame) -> str:
    if not events.height:
        return _note("No kill-switch event: no [risk] rule fired in this run.", "risk-events-empty")
    columns = {
        "time (UTC)": lambda r: f"{r['ts']:%Y-%m-%d %H:%M}",
        "event": lambda r: r["kind"],
        "rule": lambda r: r["rule"],
        "action": lambda r: r["action"],
        "value": lambda r: _num(r["value"], 4),
        "threshold": lambda r: _num(r["threshold"], 4),
        "message": lambda r: r["message"],
    }
    rows = [tuple(cell(r) for cell in columns.values()) for r in events.iter_rows(named=True)]
    return _table(list(columns), rows, text_columns=4, element_id="risk-events")


TRADE_COLUMNS: Final = {
    "instrument": lambda r: r["instrument_id"],
    "side": lambda r: r["side"],
    "entry (UTC)": lambda r: f"{r['entry_ts']:%Y-%m-%d %H:%M}",
    "exit (UTC)": lambda r: f"{r['exit_ts']:%Y-%m-%d %H:%M}",
    "quantity": lambda r: f"{r['quantity']:g}",
    "entry price": lambda r: _num(r["entry_price"]),
    "exit price": lambda r: _num(r["exit_price"]),
    "gross pnl": lambda r: _num(r["gross_pnl"]),
    "fees": lambda r: _num(r["fees"]),
    "funding": lambda r: _num(r["funding"]),
    "net pnl": lambda r: _num(r["net_pnl"]),
}


def _round_trip_table(report: BacktestReport) -> str:
    trades = report.trades
    if not trades.height:
        body = _note("No closed round trip.")
    else:
        shown = trades.head(MAX_TABLE_ROWS).iter_rows(named=True)
        rows = [tuple(cell(r) for cell in TRADE_COLUMNS.values()) for r in shown]
        body = _table(list(TRADE_COLUMNS), rows, text_columns=4, element_id="round-trips")
        if trades.height > MAX_TABLE_ROWS:
            body += _note(f"First {MAX_TABLE_ROWS:,} of {trades.height:,}; trades.csv holds them all.")
    if report.open_positions:
        held = ", ".join(f"{name} {quantity}" for name, quantity in report.open_positions.items())
        body += _note(f"Open at the end (not in the table): {held}")
    return body


COMPARISON_COLUMNS: Final = {
    "return": lambda m: _num(m.total_return),
    "return %": lambda m: _num(m.total_return_pct),
    "annualised %": lambda m: _num(m.annualised_return_pct),
    "Sharpe": lambda m: _num(m.sharpe_ratio),
    "Sortino": lambda m: _num(m.sortino_ratio),
    "Calmar": lambda m: _num(m.calmar_ratio),
    "max DD %": lambda m: _num(m.max_drawdown_pct),
    "profit factor": lambda m: _num(m.profit_factor),
    "win rate %": lambda m: _num(m.win_rate_pct),
    "round trips": lambda m: f"{m.total_trades:,}",
    "fees": lambda m: _num(m.fees_paid),
}


def _comparison_table(
    metrics_by_name: Mapping[str, PerformanceMetrics], run_dir: Path, best: str | None
) -> str:
    """One row per member (the best highlighted), with a link to its own report.html if it has one."""
    rows, classes = [], []
    for name, metrics in metrics_by_name.items():
        own = Path(run_dir) / name / FILE_NAME
        link = _Raw(f'<a href="{quote(name)}/{FILE_NAME}">open</a>' if own.is_file() else "")
        rows.append((name, *(cell(metrics) for cell in COMPARISON_COLUMNS.values()), link))
        classes.append("best" if name == best else "")
    columns = ["name", *COMPARISON_COLUMNS, "report"]
    return _table(columns, rows, text_columns=1, row_classes=classes, element_id="comparison-metrics")


def _note(text: str, element_id: str | None = None) -> str:
    identifier = f' id="{element_id}"' if element_id else ""
    return f'<p class="empty"{identifier}>{html.escape(text)}</p>'


class _Raw(str):
    """Markup the page itself built (a link): written into a table cell unescaped."""


def _table(
    columns: list[str],
    rows: list[tuple],
    *,
    text_columns: int = 0,
    row_classes: list[str] | None = None,
    element_id: str | None = None,
) -> str:
    """An HTML table in a scrolling box; the first ``text_columns`` columns are left-aligned text."""

    def cell(tag: str, index: int, value: object) -> str:
        align = ' class="text"' if index < text_columns else ""
        content = value if isinstance(value, _Raw) else html.escape(str(value))
        return f"<{tag}{align}>{content}</{tag}>"

    head = "".join(cell("th", i, c) for i, c in enumerate(columns))
    body = []
    for number, row in enumerate(rows):
        css = f' class="{row_classes[number]}"' if row_classes and row_classes[number] else ""
        body.append(f"<tr{css}>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    identifier = f' id="{element_id}"' if element_id else ""
    return (
        f'<div class="scroll"><table class="data"{identifier}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f} %"


__all__ = ["FILE_NAME", "write_comparison_tearsheet", "write_run_tearsheet"]
