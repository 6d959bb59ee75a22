"""`qa live run`: a Nautilus TradingNode on Bybit from a live run config; `run_live.py` is a shim over it.

Testnet by default; `--environment mainnet` prints what it is about to trade and refuses to start
without `--yes`. API keys come from the environment only (BYBIT_TESTNET_API_KEY / _SECRET,
BYBIT_DEMO_API_KEY / _SECRET, BYBIT_API_KEY / _SECRET); `--paper` needs none for orders.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from qa_engine.cli.backtest import DryRunOption
from qa_engine.cli.backtest import JsonLogsOption
from qa_engine.cli.backtest import SetOption
from qa_engine.cli.backtest import check_out_folder
from qa_engine.cli.console import stdout_console
from qa_engine.cli.console import table
from qa_engine.config.loader import dump_toml
from qa_engine.config.loader import load_config
from qa_engine.config.models import LiveConfig
from qa_engine.errors import ConfigError
from qa_engine.logging import configure_logging

live_app = typer.Typer(
    help="Live trading on Bybit (testnet by default) or paper trading.", no_args_is_help=True
)


def _banner(plan) -> None:
    banner = table(f"Live run {plan.config.id}", ["", ""])
    for key, value in plan.banner.items():
        banner.add_row(key, str(value))
    banner.add_row("run folder", str(plan.run_dir))
    stdout_console.print(banner)


@live_app.command("run")
def run_command(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="live run config (TOML), e.g. configs/live/*.toml")
    ],
    environment: Annotated[
        str | None, typer.Option("--environment", help="testnet | demo | mainnet (default: the config's)")
    ] = None,
    paper: Annotated[
        bool, typer.Option("--paper", help="sandbox execution on live data with the backtest's venue rules")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="confirm trading real money on mainnet")] = False,
    set_: SetOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="run folder (default runs/<utc>_<config-id>/)")
    ] = None,
    dry_run: DryRunOption = False,
    json_logs: JsonLogsOption = False,
) -> None:
    """Start a TradingNode; SIGINT / SIGTERM cancel open orders (and flatten if configured) and exit."""
    configure_logging(json_logs=json_logs)
    overrides = list(set_ or [])
    if environment is not None:
        if environment not in ("testnet", "demo", "mainnet"):
            raise ConfigError(f"--environment {environment}: choose testnet, demo or mainnet")
        overrides.append(f"live.environment={environment}")
    if paper:
        overrides.append("live.execution=paper")
    run_config = load_config(LiveConfig, config, overrides)
    if dry_run:
        typer.echo(dump_toml(run_config), nl=False)
        return
    if out is not None:
        check_out_folder(out)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = out or run_config.output.directory / f"{stamp}_{run_config.id}_live"

    from qa_engine.live.node import plan_live_run
    from qa_engine.live.node import run_live_node

    plan = plan_live_run(run_config, run_dir)
    _banner(plan)
    live = run_config.live
    if live.environment == "mainnet" and live.execution == "bybit" and not yes:
        raise ConfigError("mainnet trades real money: check the table above and run again with --yes")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(dump_toml(run_config))
    summary = run_live_node(plan)
    result = table("Stopped", ["", ""])
    for key in ("runtime_secs", "orders", "orders_open", "fills", "positions_open", "accounts"):
        result.add_row(key, str(summary[key]))
    stdout_console.print(result)
