"""Pure series behind the tearsheet's charts: polars in, polars out, no plotly.

Conventions are ``statistics``': a 365-day year (``DAYS_PER_YEAR``), returns of account equity, the
curve's first row is the starting mark, and a mark at exactly 00:00 closes the period before it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

import numpy as np
import polars as pl

from qa_engine.reporting.statistics import MIN_DEVIATION

MAX_POINTS_PER_LINE: Final = 10_000  # per plotted line; beyond it the line is thinned (bucketed)
ROLLING_SHARPE_DAYS: Final = 30  # window of the rolling Sharpe; shorter runs get a quarter of their span


def monthly_returns(equity: pl.DataFrame, starting_balance: float) -> pl.DataFrame:
    """(year, month, return_pct): each calendar month's last mark over the previous month's (the
    starting balance for the first). The first row is the starting mark and a mark at exactly 00:00 on
    the 1st closes the month before (as ``statistics`` closes days). Months after ruin are null."""
    marks = equity.slice(1).with_columns((pl.col("ts") - pl.duration(nanoseconds=1)).alias("period"))
    month_end = (
        marks.group_by(pl.col("period").dt.year().alias("year"), pl.col("period").dt.month().alias("month"))
        .agg(pl.col("equity").last())
        .sort("year", "month")
    )
    previous = month_end["equity"].shift(1, fill_value=starting_balance)
    returns = [
        (value / base - 1.0) * 100.0 if base > 0 else None
        for value, base in zip(month_end["equity"], previous, strict=True)
    ]
    return month_end.select("year", "month").with_columns(pl.Series("return_pct", returns, pl.Float64))


def bar_interval_secs(equity: pl.DataFrame) -> float:
    """The typical spacing of the curve's marks (median; several bar series: the shortest one's)."""
    gaps_ns = np.diff(equity["ts"].cast(pl.Int64).to_numpy())
    return float(np.median(gaps_ns)) / 1e9 if len(gaps_ns) else float("nan")


def rolling_window_days(duration_days: float) -> int:
    """``ROLLING_SHARPE_DAYS``, or a quarter of a run shorter than twice that (at least 1 day)."""
    if duration_days >= 2 * ROLLING_SHARPE_DAYS:
        return ROLLING_SHARPE_DAYS
    return max(1, math.floor(duration_days / 4))


def rolling_sharpe(equity: pl.DataFrame, window_bars: int, periods_per_year: float) -> pl.DataFrame:
    """(ts, sharpe) over bar returns: ``statistics.sharpe_ratio`` of each window of ``window_bars``
    returns ending at ts (mean / std(ddof=1) * sqrt(periods_per_year)); null where the window is not
    full or flat. The curve stops at the first mark <= 0 (ruin), like the daily returns."""
    values = equity["equity"].to_numpy()
    ruined = np.flatnonzero(values <= 0)
    end = ruined[0] + 1 if ruined.size else len(values)
    curve = equity.slice(0, end).select("ts", returns=pl.col("equity").pct_change()).slice(1)
    mean = pl.col("returns").rolling_mean(window_bars)
    std = pl.col("returns").rolling_std(window_bars, ddof=1)
    sharpe = pl.when(std > MIN_DEVIATION).then(mean / std * math.sqrt(periods_per_year))
    return curve.select("ts", sharpe.alias("sharpe"))


def thin(frame: pl.DataFrame, aggregations: Mapping[str, str]) -> tuple[pl.DataFrame, int]:
    """At most ``MAX_POINTS_PER_LINE`` rows for display: buckets of ``k`` rows (ts: the bucket's last),
    each column by its aggregation ("last", "max" or "min"). Returns (frame, k); k == 1: unchanged."""
    k = math.ceil(frame.height / MAX_POINTS_PER_LINE)
    if k <= 1:
        return frame, 1
    columns = [getattr(pl.col(name), how)() for name, how in {"ts": "last", **aggregations}.items()]
    bucketed = frame.with_row_index("row").group_by(pl.col("row") // k, maintain_order=True).agg(columns)
    return bucketed.drop("row"), k


def fill_markers(fills: pl.DataFrame) -> pl.DataFrame:
    """Each fill as an entry and/or exit: the position before it is position_after - signed quantity;
    a fill that reduces or closes it exits, one that opens or grows it enters, a flip does both."""
    columns = {"ts": fills["ts"].dtype if fills.height else pl.Datetime("ns", "UTC")}
    schema = {**columns, "instrument_id": pl.Utf8, "price": pl.Float64, "kind": pl.Utf8, "hover": pl.Utf8}
    if not fills.height:
        return pl.DataFrame(schema=schema)
    rows = []
    for fill in fills.iter_rows(named=True):
        quantity, after = Decimal(fill["quantity"]), Decimal(fill["position_after"])  # exact: strings
        before = after - (quantity if fill["side"] == "BUY" else -quantity)
        kinds = []
        if before != 0 and (after == 0 or before * after < 0 or abs(after) < abs(before)):
            kinds.append("Exit")
        if after != 0 and (before == 0 or before * after < 0 or abs(after) > abs(before)):
            kinds.append("Long entry" if after > 0 else "Short entry")
        lines = [
            f"{fill['side']} {fill['quantity']} @ {fill['price']}, fee {fill['fee']}",
            f"position after: {fill['position_after']}",
            f"{fill.get('signal') or ''} {fill.get('reasoning') or ''}".strip(),
        ]
        hover = "<br>".join(html.escape(line, quote=False) for line in lines if line)
        rows.extend((fill["ts"], fill["instrument_id"], float(fill["price"]), kind, hover) for kind in kinds)
    return pl.DataFrame(rows, schema=schema, orient="row")
