"""What a finished sweep says: the ranked table, the overfitting statistics, and `report.html`.

The statistics (qa_engine/sweep/overfitting.py) are computed per search group (one window and symbol):
- deflated Sharpe ratio of the group's best trial, from its daily returns, given how many trials were
  tried and how much their Sharpe ratios varied;
- probability of backtest overfitting (CSCV) over the daily returns of every trial of the group.
The page: heat maps of the metric over the first two parameters (mean over the others and the groups), the
walk-forward equity stitched from test windows only, and the distribution of Sharpe over all trials.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from qa_engine.sweep.config import SweepConfig

PBO_MAX_SPLITS = 16


def daily_returns(equity: list[float]) -> np.ndarray:
    values = np.asarray(equity, dtype=float)
    if values.size < 2:
        return np.empty(0)
    return values[1:] / values[:-1] - 1.0


def group_statistics(results: pl.DataFrame, sweep: SweepConfig) -> list[dict[str, Any]]:
    """DSR of the best trial and PBO, for every search group with at least two finished trials."""
    from qa_engine.sweep import overfitting

    rows = []
    ok = results.filter((pl.col("phase") == "search") & (pl.col("status") == "ok"))
    for (fold, symbol), group in ok.group_by(["fold", "symbol"], maintain_order=True):
        group = group.sort("trial")
        series = [daily_returns(e) for e in group["equity"].to_list()]
        length = min((len(s) for s in series), default=0)
        entry: dict[str, Any] = {"fold": fold, "symbol": symbol or "(base)", "trials": group.height}
        if group.height < 2 or length < 4:
            entry["note"] = "too few trials or days for the statistics"
            rows.append(entry)
            continue
        matrix = np.column_stack([s[:length] for s in series])  # days x trials
        sharpes = matrix.mean(axis=0) / np.where(
            matrix.std(axis=0, ddof=1) > 0, matrix.std(axis=0, ddof=1), np.nan
        )
        metric = group[sweep.metric].to_numpy().astype(float)
        best = int(np.nanargmax(metric) if sweep.maximize else np.nanargmin(metric))
        try:
            dsr = overfitting.deflated_sharpe_from_returns(matrix[:, best], sharpes[np.isfinite(sharpes)])
        except ValueError as error:  # e.g. a best trial that never traded: no Sharpe ratio
            entry["note"] = f"no deflated Sharpe ratio: {error}"
            rows.append(entry)
            continue
        entry.update(
            best_trial=int(group["trial"][best]),
            best_params=group["params"][best],
            best_metric=float(metric[best]),
            best_daily_sharpe=dsr.sharpe,
            expected_max_sharpe=dsr.expected_max_sharpe,
            deflated_sharpe_ratio=dsr.deflated_sharpe_ratio,
        )
        splits = _splits(length)
        if splits >= 2:
            pbo = overfitting.pbo_cscv(matrix, n_splits=splits)
            entry.update(
                pbo=pbo.pbo,
                probability_of_loss=pbo.probability_of_loss,
                pbo_splits=splits,
                pbo_combinations=pbo.n_combinations,
                pbo_days_dropped=pbo.rows_dropped,  # days beyond splits x equal blocks, cut from the end
            )
        else:
            entry["note"] = "too few days for CSCV"
        rows.append(entry)
    return rows


def _splits(days: int) -> int:
    """The largest even number of CSCV blocks, at most 16, with at least 2 days per block."""
    splits = min(PBO_MAX_SPLITS, days // 2)
    return splits - splits % 2


def stitched_walk_forward(results: pl.DataFrame) -> pl.DataFrame:
    """Test windows only, in fold order, each rescaled to start where the previous one ended."""
    tests = results.filter((pl.col("phase") == "test") & (pl.col("status") == "ok")).sort(["symbol", "fold"])
    rows = []
    for (symbol,), group in tests.group_by(["symbol"], maintain_order=True):
        level = 1.0
        for row in group.iter_rows(named=True):
            equity = row["equity"]
            if not equity:
                continue
            start = equity[0]
            # a fold's opening point is the previous fold's last close: kept once, for the first fold only
            points = list(zip(row["days"], equity, strict=True))[0 if not rows else 1 :]
            for day, value in points:
                rows.append(
                    {
                        "symbol": symbol or "(base)",
                        "fold": row["fold"],
                        "day": day,
                        "growth": level * value / start,
                    }
                )
            level = level * equity[-1] / start
    return pl.DataFrame(
        rows, schema={"symbol": pl.Utf8, "fold": pl.Int64, "day": pl.Utf8, "growth": pl.Float64}
    )


def ranked(results: pl.DataFrame, sweep: SweepConfig, limit: int = 20) -> pl.DataFrame:
    ok = results.filter((pl.col("phase") == "search") & (pl.col("status") == "ok"))
    columns = [
        "fold",
        "symbol",
        "trial",
        "params",
        sweep.metric,
        "total_return_pct",
        "max_drawdown_pct",
        "total_trades",
    ]
    columns = list(dict.fromkeys(c for c in columns if c in ok.columns))
    return ok.sort(sweep.metric, descending=sweep.maximize, nulls_last=True).select(columns).head(limit)


def write_sweep_report(
    results: pl.DataFrame, sweep: SweepConfig, folder: Path, stats: list[dict[str, Any]]
) -> Path:
    """report.html (self-contained: plotly.js inlined once) and statistics.json."""
    import plotly.graph_objects as go
    import plotly.io as pio

    (folder / "statistics.json").write_text(json.dumps(stats, indent=2, default=str) + "\n")
    figures: list[tuple[str, Any]] = []
    search = results.filter((pl.col("phase") == "search") & (pl.col("status") == "ok"))
    params = [p.label for p in sweep.search.params]
    if not search.is_empty():
        decoded = search.with_columns(
            [
                pl.col("params")
                .map_elements(lambda s, k=k: float(json.loads(s)[k]), return_dtype=pl.Float64)
                .alias(f"p_{k}")
                for k in params
                if _numeric(search, k)
            ]
        )
        if len(params) >= 2 and f"p_{params[0]}" in decoded.columns and f"p_{params[1]}" in decoded.columns:
            grid = (
                decoded.group_by([f"p_{params[0]}", f"p_{params[1]}"])
                .agg(pl.col(sweep.metric).mean())
                .sort([f"p_{params[1]}", f"p_{params[0]}"])
            )
            xs = sorted(set(grid[f"p_{params[0]}"].to_list()))
            ys = sorted(set(grid[f"p_{params[1]}"].to_list()))
            lookup = {(r[0], r[1]): r[2] for r in grid.iter_rows()}
            z = [[lookup.get((x, y)) for x in xs] for y in ys]
            heat = go.Figure(
                go.Heatmap(
                    x=[f"{x:g}" for x in xs],
                    y=[f"{y:g}" for y in ys],
                    z=z,
                    colorscale="RdYlGn" if sweep.maximize else "RdYlGn_r",
                    colorbar={"title": sweep.metric},
                )
            )
            heat.update_xaxes(type="category")  # the grid's own values, evenly spaced
            heat.update_yaxes(type="category")
            heat.update_layout(
                title=f"{sweep.metric} over {params[0]} x {params[1]} "
                "(mean over other parameters, folds, symbols)",
                xaxis_title=params[0],
                yaxis_title=params[1],
            )
            figures.append(("heatmap", heat))
        sharpe = search["sharpe_ratio"].drop_nulls().to_list()
        if sharpe:
            hist = go.Figure(go.Histogram(x=sharpe, nbinsx=min(40, max(5, len(sharpe) // 2))))
            hist.update_layout(
                title=f"Sharpe ratio (365-day annualisation) over all {len(sharpe)} trials",
                xaxis_title="Sharpe",
                yaxis_title="trials",
            )
            figures.append(("sharpe", hist))
    stitched = stitched_walk_forward(results)
    if not stitched.is_empty():
        wf = go.Figure()
        for (symbol,), group in stitched.group_by(["symbol"], maintain_order=True):
            wf.add_trace(
                go.Scatter(x=group["day"].to_list(), y=group["growth"].to_list(), name=symbol, mode="lines")
            )
        wf.update_layout(
            title="Walk-forward equity (growth of 1), stitched from test windows only",
            xaxis_title="day (UTC)",
            yaxis_title="growth",
        )
        figures.append(("walk_forward", wf))

    parts = [
        f"<h1>Sweep {sweep.id}</h1><p>{sweep.description}</p>",
        _stats_table(stats),
        f"<h2>Best trials by {sweep.metric} (search windows)</h2>",
        _table(ranked(results, sweep)),
    ]
    failed = results.filter(pl.col("status") != "ok")
    if not failed.is_empty():
        parts.append(
            f"<h2>Failed runs ({failed.height})</h2>"
            + _table(failed.select(["fold", "symbol", "trial", "params", "error"]))
        )
    for index, (name, figure) in enumerate(figures):
        parts.append(
            f'<div class="chart" id="{name}">'
            + pio.to_html(figure, full_html=False, include_plotlyjs=index == 0)
            + "</div>"
        )
    path = folder / "report.html"
    style = (
        "body{font-family:sans-serif;margin:24px;}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px}"
    )
    head = f"<meta charset='utf-8'><title>Sweep {sweep.id}</title><style>{style}</style>"
    path.write_text(f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>")
    return path


def _numeric(frame: pl.DataFrame, key: str) -> bool:
    values = [json.loads(s).get(key) for s in frame["params"].head(20).to_list()]
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _stats_table(stats: list[dict[str, Any]]) -> str:
    if not stats:
        return "<p>No statistics (no finished search group).</p>"
    head = (
        "<h2>Overfitting statistics</h2><p>Deflated Sharpe ratio: the probability that the best trial's true "
        "Sharpe is above zero after accounting for the number of trials and their spread (Bailey & López de "
        "Prado, 2014). PBO: the probability that the in-sample best is below the median out of sample "
        "(combinatorially symmetric cross-validation, Bailey et al., 2017). Both are estimates "
        "with wide error: one PBO figure from one sweep varies by about +-0.25 between equally overfit "
        "searches; with an odd number of pure-noise trials its expected value is (N + 1) / 2N, not 0.5.</p>"
    )
    return head + _table(pl.DataFrame(stats, strict=False))


def _table(frame: pl.DataFrame) -> str:
    header = "".join(f"<th>{c}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in frame.iter_rows()
    )
    return f"<table><tr>{header}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:,.4g}"
    return "" if value is None else str(value).replace("<", "&lt;")
