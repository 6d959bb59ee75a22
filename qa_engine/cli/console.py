"""The one place that builds rich consoles, progress bars and tables for every CLI command.

Progress goes to stderr, result tables to stdout, so `qa ... > out.txt` keeps only results.
"""

from __future__ import annotations

import os
import shutil
import sys

from rich.console import Console
from rich.progress import BarColumn
from rich.progress import MofNCompleteColumn
from rich.progress import Progress
from rich.progress import ProgressColumn
from rich.progress import TextColumn
from rich.progress import TimeElapsedColumn
from rich.progress import TimeRemainingColumn
from rich.table import Table
from rich.text import Text

HELP_MAX_WIDTH = 120  # `--help` never wider than this: longer lines are hard to read
HELP_MIN_WIDTH = 60

# Piped output (CI logs, `> file`) gets a wide fixed width instead of rich's 80 columns.
stdout_console = Console() if sys.stdout.isatty() else Console(width=160)
stderr_console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)


def progress(transient: bool = True) -> Progress:
    """A progress bar on stderr with count, elapsed time and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr_console,
        transient=transient,
        disable=not stderr_console.is_terminal,
    )


class RateColumn(ProgressColumn):
    """Items per second over rich's recent-speed window ("12,345 bars/s")."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}/s" if speed else f"- {self.unit}/s", style="cyan")


def bars_progress() -> Progress:
    """The backtest's progress bar: bars replayed of the expected total, bars/s, elapsed, ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn("bars"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr_console,
        transient=False,
        disable=not stderr_console.is_terminal,
    )


def table(title: str, columns: list[str]) -> Table:
    result = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        result.add_column(column, overflow="fold")
    return result


def help_width() -> int:
    """Columns for `--help`: the terminal's (COLUMNS first, as rich and click read it), at most 120.

    Piped output (no terminal, no COLUMNS) gets 120 instead of rich's 80, which squeezed the help text
    of the wider commands into a narrow column.
    """
    columns = shutil.get_terminal_size(fallback=(HELP_MAX_WIDTH, 24)).columns
    return max(HELP_MIN_WIDTH, min(columns, HELP_MAX_WIDTH))


def configure_help() -> None:
    """Set how typer renders `--help` and usage errors; called by `qa`'s entry point before each run.

    - Width: `help_width()`, unless TERMINAL_WIDTH (typer's own setting) is set.
    - Flags: an option that takes no value (`--strict`, `--help`) shows no value type; typer 0.29's rich
      help printed `<bool>` beside every flag, as if `--strict true` were expected.
    """
    from typer import core
    from typer import rich_utils

    if not os.environ.get("TERMINAL_WIDTH"):
        rich_utils.MAX_WIDTH = help_width()
    option = getattr(core, "TyperOption", None)
    original = getattr(option, "display_type_rich", None)
    if original is None or getattr(original, "_qa_flags_untyped", False):
        return  # another typer (the method is absent) or already done

    def display_type_rich(self, ctx):
        if self.is_flag or self.count:
            return None
        return original(self, ctx)

    display_type_rich._qa_flags_untyped = True
    option.display_type_rich = display_type_rich
