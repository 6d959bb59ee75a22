"""The `qa` command: one typer app; sub-commands live one file each beside this one."""

from __future__ import annotations

import sys

import typer

from qa_engine.cli.backtest import backtest_app
from qa_engine.cli.catalog import catalog_app
from qa_engine.cli.console import HELP_MAX_WIDTH
from qa_engine.cli.console import configure_help
from qa_engine.cli.console import stderr_console
from qa_engine.cli.data import data_app
from qa_engine.cli.features import features_app
from qa_engine.cli.live import live_app
from qa_engine.cli.new import new_app
from qa_engine.cli.parity import parity_command
from qa_engine.cli.research import research_app
from qa_engine.cli.signals import signals_app
from qa_engine.cli.sweep import sweep_command
from qa_engine.cli.train import train_app
from qa_engine.cli.venue import venue_app
from qa_engine.errors import QAError

app = typer.Typer(
    name="qa",
    help="QUANTUM ALPHA: event-driven crypto-futures trading on NautilusTrader.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # click's own help formatter (used where rich is not) wraps at the terminal, at most 120 columns
    context_settings={"max_content_width": HELP_MAX_WIDTH},
)
app.add_typer(backtest_app, name="backtest")
app.add_typer(catalog_app, name="catalog")
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(live_app, name="live")
app.add_typer(train_app, name="train")
app.add_typer(new_app, name="new")
app.add_typer(research_app, name="research")
app.add_typer(signals_app, name="signals")
app.add_typer(venue_app, name="venue")
app.command("parity")(parity_command)
app.command("sweep")(sweep_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: a QAError becomes one readable line and its exit code, never a traceback.

    Usage errors (unknown option, bad value) are printed by typer with exit code 2.
    """
    configure_help()
    try:
        app(args=argv, prog_name="qa")
    except QAError as exc:
        stderr_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def run() -> None:
    """Console-script entry (`qa`)."""
    sys.exit(main())


if __name__ == "__main__":
    run()
