"""`qa backtest run`: one backtest from a run config; `run_backtest.py` is a shim over it.

`--out` of an existing non-empty folder is refused (exit 2) before any work unless `--overwrite` is given;
with it, the new run replaces the old folder only once it has succeeded (`out_folder`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from qa_engine.cli.console import bars_progress
from qa_engine.cli.console import stdout_console
from qa_engine.cli.console import table
from qa_engine.config.loader import dump_toml
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.errors import ConfigError
from qa_engine.logging import configure_logging

DEFAULT_CONFIG = Path("configs/backtest/default.toml")

backtest_app = typer.Typer(help="Backtests against the Parquet catalog.", no_args_is_help=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="run config (TOML)")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="override a config value: a.b.0.c=value (repeatable)")
]
OutOption = Annotated[
    Path | None,
    typer.Option("--out", help="run folder (default runs/<utc>_<config-id>/); an existing one: --overwrite"),
]
OverwriteOption = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="replace the run in an existing --out folder (swapped in only once the new run succeeded)",
    ),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="print the resolved config and exit")]
JsonLogsOption = Annotated[bool, typer.Option("--json-logs", help="JSON log lines on stderr")]


RUN_FOLDER_MARKERS = ("config.toml", "comparison.json")  # what `run` and `compare` write at the top


def _looks_like_run_folder(folder: Path) -> bool:
    if any((folder / marker).is_file() for marker in RUN_FOLDER_MARKERS):
        return True
    return any(child.is_dir() and (child / "config.toml").is_file() for child in folder.iterdir())


def check_out_folder(out: Path, overwrite: bool = False) -> bool:
    """Refuse `--out` of an existing non-empty folder unless `overwrite` (ConfigError, exit 2, before any
    work); with `overwrite`, refuse a folder that is not a run folder or that holds the working directory.
    True when `out` holds a previous run that the new one is to replace."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a run folder; choose another --out")
    if not out.is_dir() or not any(out.iterdir()):
        return False
    if not overwrite:
        raise ConfigError(
            f"--out {out} already exists and is not empty; pass --overwrite to replace it "
            f"(or choose another --out)"
        )
    resolved, cwd = out.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise ConfigError(f"--out {out} holds the working directory; --overwrite will not replace it")
    if not _looks_like_run_folder(out):
        raise ConfigError(
            f"--out {out} is not empty and is not a run folder (no {' or '.join(RUN_FOLDER_MARKERS)}); "
            f"--overwrite only replaces run folders: choose another --out"
        )
    return True


@contextmanager
def out_folder(out: Path | None, overwrite: bool = False) -> Iterator[Path | None]:
    """The folder a CLI run writes into: `out` itself, or with `--overwrite` of an existing run a fresh
    sibling (`<out>.incomplete-<id>`) that replaces `out` when the block ends without an exception; on an
    exception the sibling is removed and `out` is left as it was. `None` (default folder) passes through."""
    if out is None or not check_out_folder(out, overwrite):
        yield out
        return
    token = uuid.uuid4().hex[:8]
    staging = out.with_name(f"{out.name}.incomplete-{token}")
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = out.with_name(f"{out.name}.replaced-{token}")
    os.replace(out, old)  # two renames in one folder: `out` is missing only between them
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


PROGRESS_MIN_BARS = 50_000  # shorter runs take seconds: no bar


def progress_min_bars() -> int:
    """QA_PROGRESS_MIN_BARS overrides the threshold (tests, or a bar on every run)."""
    value = os.environ.get("QA_PROGRESS_MIN_BARS", "")
    return int(value) if value.isdigit() else PROGRESS_MIN_BARS


@backtest_app.command("run")
def run_command(
    config: ConfigOption = DEFAULT_CONFIG,
    set_: SetOption = None,
    out: OutOption = None,
    overwrite: OverwriteOption = False,
    dry_run: DryRunOption = False,
    json_logs: JsonLogsOption = False,
) -> None:
    """Run one backtest and write its report (metrics JSON, trades/fills CSV, equity plot, report.html)."""
    configure_logging(json_logs=json_logs)
    if out is not None:
        check_out_folder(out, overwrite)  # before any work (a dry run says so too)
    run_config = load_config(BacktestConfig, config, set_)
    if dry_run:
        from qa_engine.config.build import build_backtest_run_config

        build_backtest_run_config(run_config)  # validates plug-ins and catalog coverage too
        typer.echo(dump_toml(run_config), nl=False)
        return
    from qa_engine.backtest.runner import estimated_bars
    from qa_engine.backtest.runner import run_backtest

    expected = estimated_bars(run_config)
    with out_folder(out, overwrite) as run_dir:
        if expected < progress_min_bars():
            outcome = run_backtest(run_config, run_dir=run_dir)
        else:  # long runs: bars replayed of the expected total, bars/s, ETA (stderr, terminals only)
            with bars_progress() as bar:
                task = bar.add_task(run_config.id, total=expected)
                outcome = run_backtest(
                    run_config, run_dir=run_dir, on_bars=lambda n: bar.update(task, completed=n)
                )
                bar.update(task, completed=outcome.bars, total=outcome.bars)
    if out is not None:
        outcome = dataclasses.replace(outcome, run_dir=out)
    print_summary(outcome)


@backtest_app.command("compare")
def compare_command(
    config: ConfigOption = Path("configs/backtest/compare.toml"),
    set_: SetOption = None,
    out: OutOption = None,
    metric: Annotated[
        str,
        typer.Option(
            "--metric",
            help="rank by: sharpe_ratio, sortino_ratio, calmar_ratio, total_return_pct, "
            "profit_factor, max_drawdown_pct (lower wins), win_rate_pct",
        ),
    ] = "sharpe_ratio",
    overwrite: OverwriteOption = False,
    json_logs: JsonLogsOption = False,
) -> None:
    """Run every strategy of the config on the same data; one table, an overlaid equity plot, the best.

    The run folder holds comparison.json, equity_comparison.png, report.html and one run folder each."""
    import typing

    from qa_engine.backtest.compare import RankMetric
    from qa_engine.backtest.compare import compare_strategies
    from qa_engine.config.build import build_backtest_run_config
    from qa_engine.reporting import tearsheet

    configure_logging(json_logs=json_logs)
    if out is not None:
        check_out_folder(out, overwrite)  # before any work
    valid = typing.get_args(RankMetric)
    if metric not in valid:
        raise ConfigError(f"--metric must be one of {', '.join(valid)}; got '{metric}'")
    run_config = load_config(BacktestConfig, config, set_)
    build_backtest_run_config(run_config)  # every strategy validated before the first one runs
    with out_folder(out, overwrite) as run_dir:
        comparison = compare_strategies(run_config, metric, run_dir=run_dir)
    if out is not None:
        comparison = dataclasses.replace(comparison, run_dir=out)
    stdout_console.print(
        metrics_table(
            f"Strategies compared ({run_config.id})",
            {label: o.report.metrics for label, o in comparison.outcomes.items()},
        ),
    )
    stdout_console.print(f"best by {metric}: [bold]{comparison.best or 'n/a (metric undefined for all)'}[/]")
    stdout_console.print(f"run folder: {comparison.run_dir}")
    stdout_console.print(f"report: {comparison.run_dir / tearsheet.FILE_NAME} (interactive, opens offline)")


def _funding_line(funding: dict) -> str:
    if not funding["settled"]:
        reasons = [f"{name}: {why.split(' (')[0]}" for name, why in funding["not_settled"].items()]
        return f"NOT simulated ({'; '.join(reasons) or 'no perpetual in the run'})"
    line = f"{funding['total']:+,.2f} over {funding['settlements']} settlements (> 0: received)"
    if funding["not_settled"]:
        line += f"; not simulated for {', '.join(funding['not_settled'])}"
    return line


def _venue_lines(simulation: dict) -> list[tuple[str, str]]:
    lines = []
    for name, venue in simulation["venues"].items():
        rates = ", ".join(
            f"{i.split('.')[0]} {float(r['rate']) * 100:.2f}%"
            for i, r in venue["maintenance_margin_rates"].items()
        )
        lines.append(
            (
                f"venue model {name}",
                f"{venue['leverage']:g}x, slippage {venue['slippage_bps_market_orders']:g} bp on market "
                "orders, "
                + (
                    f"liquidation at maintenance margin ({rates})"
                    if venue["liquidation"]
                    else "no liquidation"
                ),
            )
        )
    liquidations = simulation["liquidations"]
    lines.append(
        (
            "liquidations",
            "none"
            if not liquidations
            else f"{len(liquidations)} (first {liquidations[0]['ts']} {liquidations[0]['side']} "
            f"{liquidations[0]['instrument_id']} at {liquidations[0]['fill_price']}), "
            f"liquidation fees {simulation['liquidation_fees']:,.2f}",
        )
    )
    denied = simulation["orders_denied"]
    if denied:
        lines.append(("orders denied", f"{denied} (first: {simulation['orders_denied_first'][0]['reason']})"))
    return lines


MAX_RISK_ROWS = 20  # kill-switch events printed; the run folder's risk_events.csv has them all


def print_summary(outcome) -> None:
    from qa_engine.reporting import tearsheet

    metrics = outcome.report.metrics
    reconciliation = outcome.report.reconciliation
    summary = table(f"Backtest {outcome.report.config_id}", ["metric", "value"])

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.2f}%"

    def num(value: float | None, digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:,.{digits}f}"

    rows = [
        ("period", f"{metrics.start_ts:%Y-%m-%d %H:%M} -> {metrics.end_ts:%Y-%m-%d %H:%M} UTC"),
        ("starting balance", num(metrics.starting_balance)),
        ("final equity", num(metrics.final_equity)),
        ("total return", f"{num(metrics.total_return)} ({pct(metrics.total_return_pct)})"),
        ("annualised return (365 d)", pct(metrics.annualised_return_pct)),
        ("max drawdown", f"{num(metrics.max_drawdown)} ({pct(metrics.max_drawdown_pct)})"),
        (
            "Sharpe / Sortino / Calmar",
            " / ".join(num(x) for x in (metrics.sharpe_ratio, metrics.sortino_ratio, metrics.calmar_ratio)),
        ),
        ("round trips (wins / losses)", f"{metrics.total_trades} ({metrics.wins} / {metrics.losses})"),
        ("win rate", pct(metrics.win_rate_pct)),
        ("profit factor", num(metrics.profit_factor)),
        ("average win / loss", f"{num(metrics.average_win)} / {num(metrics.average_loss)}"),
        ("exposure", pct(metrics.exposure_pct)),
        ("fees paid", num(metrics.fees_paid)),
        *(
            (f"fee rates {instrument_id}", rates.describe())
            for instrument_id, rates in outcome.report.fee_rates.items()
        ),
        ("funding", _funding_line(outcome.report.funding)),
        *_venue_lines(outcome.report.venue_simulation),
        ("rating", str(metrics.rating)),
        (
            "reconciliation",
            (
                "balanced to the cent"
                if reconciliation.balanced_to_the_cent
                else f"OFF by {reconciliation.difference}"
            )
            + f" (fees {-reconciliation.fees:,.2f}, funding {reconciliation.funding:+,.2f})",
        ),
        (
            "bars / wall time",
            f"{outcome.bars:,} bars in {outcome.wall_secs:.1f} s ({outcome.bars_per_sec:,.0f} bars/s)",
        ),
        ("run folder", str(outcome.run_dir)),
        ("report", f"{outcome.run_dir / tearsheet.FILE_NAME} (interactive, opens offline)"),
    ]
    for name, value in rows:
        summary.add_row(name, value)
    stdout_console.print(summary)
    events = outcome.report.risk_events
    if events.height:
        guard = table(
            f"Kill switches: {events.height} events (risk_events.csv)", ["time (UTC)", "event", "what"]
        )
        shown = events.head(MAX_RISK_ROWS)
        for row in shown.iter_rows(named=True):
            guard.add_row(f"{row['ts']:%Y-%m-%d %H:%M}", f"{row['kind']} {row['action']}", row["message"])
        if events.height > MAX_RISK_ROWS:
            guard.add_row("...", "", f"{events.height - MAX_RISK_ROWS} more in risk_events.csv")
        stdout_console.print(guard)
    if outcome.report.per_instrument:
        stdout_console.print(
            metrics_table(
                "Per instrument (each on an equal share of the balance)", outcome.report.per_instrument
            )
        )


def metrics_table(title: str, metrics_by_name: dict) -> object:
    """One row per strategy or instrument: the figures people compare side by side."""
    result = table(
        title,
        [
            "name",
            "return",
            "return %",
            "Sharpe",
            "Sortino",
            "max DD %",
            "profit factor",
            "win rate %",
            "round trips",
            "fees",
        ],
    )

    def fmt(value, digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:,.{digits}f}"

    for name, m in metrics_by_name.items():
        result.add_row(
            name,
            fmt(m.total_return),
            fmt(m.total_return_pct),
            fmt(m.sharpe_ratio),
            fmt(m.sortino_ratio),
            fmt(m.max_drawdown_pct),
            fmt(m.profit_factor),
            fmt(m.win_rate_pct),
            str(m.total_trades),
            fmt(m.fees_paid),
        )
    return result


@backtest_app.callback()
def backtest_group() -> None:
    """Backtests against the Parquet catalog."""
