"""`qa ... --help` reads well in an 80- and a 120-column terminal: every option name whole, flags shown
as flags (no `<bool>` value), lines no wider than the terminal and, on a wide one, not wrapped at 80."""

from __future__ import annotations

import re

import pytest
from typer.main import get_command

from qa_engine.cli.console import HELP_MAX_WIDTH
from qa_engine.cli.main import app
from qa_engine.cli.main import main

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _commands(command, path=()):
    """Every command and group of the `qa` tree, with its path."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(get_command(app)))
SAMPLE = {(), ("catalog", "ingest"), ("data", "download"), ("backtest", "run"), ("train", "all")}


def _help(path, columns, monkeypatch, capsys) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.delenv("TERMINAL_WIDTH", raising=False)
    assert main([*path, "--help"]) == 0
    return ANSI.sub("", capsys.readouterr().out)


def _option_names(command) -> list[str]:
    names = []
    for param in command.params:
        names += [name for name in (*param.opts, *param.secondary_opts) if name.startswith("-")]
    return names


def test_the_sample_covers_real_commands():
    assert {path for path, _ in COMMANDS} >= SAMPLE


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "qa" for p, _ in COMMANDS])
def test_help_shows_every_option_whole_and_no_bool_value(path, command, columns, monkeypatch, capsys):
    out = _help(path, columns, monkeypatch, capsys)
    assert "Usage: qa" in out
    assert "<bool>" not in out
    for name in _option_names(command):
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", out), f"{name} broken or missing:\n{out}"
    assert max(len(line) for line in out.splitlines()) <= columns


@pytest.mark.parametrize("path", sorted(SAMPLE))
def test_a_wide_terminal_gets_wide_help(path, monkeypatch, capsys):
    assert max(len(line) for line in _help(path, 120, monkeypatch, capsys).splitlines()) > 80
    # wider than 120 is capped; a long line is hard to read
    assert max(len(line) for line in _help(path, 200, monkeypatch, capsys).splitlines()) == HELP_MAX_WIDTH


def test_flags_take_no_value_in_help(monkeypatch, capsys):
    out = _help(("catalog", "ingest"), 120, monkeypatch, capsys)
    strict = next(line for line in out.splitlines() if "--strict" in line)
    assert re.search(r"--strict\s+treat every validation finding", strict), strict
    catalog = next(line for line in out.splitlines() if "--catalog" in line)
    assert "<path>" in catalog  # options with a value still show its type


def test_piped_help_is_120_columns_not_rich_80(monkeypatch):
    from qa_engine.cli import console

    def no_terminal(*_):
        raise OSError("not a terminal")

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(console.os, "get_terminal_size", no_terminal)  # shutil asks os for the size
    assert console.help_width() == HELP_MAX_WIDTH
    monkeypatch.setenv("COLUMNS", "100")
    assert console.help_width() == 100
    monkeypatch.setenv("COLUMNS", "20")
    assert console.help_width() == console.HELP_MIN_WIDTH
