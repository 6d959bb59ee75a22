"""`qa parity`: does a live node trade exactly like the backtest of the same config?

Runs the backtest, then a live node (child process) against the loopback Bybit venue replaying the same
catalog bars in lockstep, and prints whether the two order sequences are identical (side, type,
quantity, price to the tick, bar) and the final equities equal to the cent, and where they first
differ. Exit 0 identical, 1 different. `--paper`: the node's own sandbox fills the orders (same fee,
margin and funding rules as the backtest, funding rates from the venue's ticker stream).
"""

from __future__ import annotations

import statistics
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from qa_engine.cli.backtest import ConfigOption
from qa_engine.cli.backtest import SetOption
from qa_engine.cli.backtest import check_out_folder
from qa_engine.cli.console import stdout_console
from qa_engine.cli.console import table
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.logging import configure_logging


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def parity_command(
    config: ConfigOption,
    set_: SetOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="run folder (default runs/<utc>_<config-id>_parity/)")
    ] = None,
    quiet_ms: Annotated[
        int,
        typer.Option(
            "--quiet-ms", min=5, help="lockstep: the venue publishes the next bar after this much quiet"
        ),
    ] = 50,
    paper: Annotated[
        bool,
        typer.Option(
            "--paper", help="the node trades in its own sandbox (paper) on the venue's bars, not on the venue"
        ),
    ] = False,
) -> None:
    """Backtest vs live node on the loopback venue: identical order sequences? (exit 0 yes, 1 no)"""
    configure_logging()
    run_config = load_config(BacktestConfig, config, set_)
    if out is not None:
        check_out_folder(out)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = out or run_config.output.directory / f"{stamp}_{run_config.id}_parity"

    from qa_engine.live.parity import check_parity_config
    from qa_engine.live.parity import run_parity

    check_parity_config(run_config)
    report = run_parity(run_config, run_dir, quiet_ms=quiet_ms, execution="paper" if paper else "bybit")
    result = report.result
    summary = table(
        f"Parity {run_config.id}", ["", "backtest", "live node (paper)" if paper else "live node"]
    )
    summary.add_row("orders", str(result.backtest_orders), str(result.live_orders))
    summary.add_row("final equity", f"{report.backtest_equity:.2f}", f"{report.venue_equity:.2f}")
    summary.add_row("bars", str(report.bars), f"{report.live_wall_secs:.1f} s wall")
    if report.latencies_ms:
        p50, p99 = statistics.median(report.latencies_ms), _percentile(report.latencies_ms, 0.99)
        summary.add_row("bar close -> order at venue", "", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    stdout_console.print(summary)
    if result.identical:
        verdict = "IDENTICAL" if report.identical else "orders identical, final equity differs"
        stdout_console.print(f"{verdict}: {result.backtest_orders} orders; run folder {run_dir}")
    else:
        index = result.first_difference
        stdout_console.print(f"DIFFERENT from order {index} on ({', '.join(result.differing_fields)}):")
        stdout_console.print(f"  backtest: {result.backtest_order}")
        stdout_console.print(f"  live:     {result.live_order}")
        stdout_console.print(f"run folder {run_dir}")
    if not report.identical:
        raise typer.Exit(1)
