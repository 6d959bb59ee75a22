"""`qa live run`: live trading on Bybit. Not built yet: it says so instead of pretending."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qa_engine.errors import QAError

live_app = typer.Typer(
    help="Live trading (Bybit testnet by default). Not available yet.", no_args_is_help=True
)


@live_app.command("run")
def run_command(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="live run config (TOML)")] = None,
) -> None:
    """Start a TradingNode from a live run config (not implemented in this release)."""
    raise QAError(
        "live trading is not implemented yet: run_live.py and `qa live run` arrive with the live-trading "
        "issue; backtests (`run_backtest.py`) work today",
    )
