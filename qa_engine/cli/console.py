"""The one place that builds rich consoles, progress bars and tables for every CLI command.

Progress goes to stderr, result tables to stdout, so `qa ... > out.txt` keeps only results.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn
from rich.progress import MofNCompleteColumn
from rich.progress import Progress
from rich.progress import TextColumn
from rich.progress import TimeElapsedColumn
from rich.progress import TimeRemainingColumn
from rich.table import Table

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


def table(title: str, columns: list[str]) -> Table:
    result = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        result.add_column(column, overflow="fold")
    return result
