"""Every `qa` (and `run_backtest.py`) command the docs show exists, with every flag they give it: the
commands are read from the README's and the package READMEs' code blocks and checked against the CLI's
own parameter declarations (what `--help` prints)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from qa_engine.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "qa_engine").rglob("README.md")),
    *sorted(ROOT.glob("*/README.md")),
]
BLOCK = re.compile(r"```(?:bash|sh|shell|console)?\n(.*?)```", re.DOTALL)


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(doc, command line, argv after `qa`) for every qa / run_backtest.py line of a code block."""
    found = []
    for doc in DOCS:
        for block in BLOCK.findall(doc.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                tokens = line.split()
                if not tokens:
                    continue
                if tokens[0].endswith("bin/qa") or tokens[0] == "qa":
                    found.append((doc.relative_to(ROOT).as_posix(), line, tokens[1:]))
                elif any(t.endswith("run_backtest.py") for t in tokens[:2]):
                    start = next(i for i, t in enumerate(tokens) if t.endswith("run_backtest.py"))
                    found.append(
                        (doc.relative_to(ROOT).as_posix(), line, ["backtest", "run", *tokens[start + 1 :]])
                    )
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands_of_every_group():
    groups = {argv[0] for _, _, argv in COMMANDS if argv}
    assert {"backtest", "catalog", "data", "features", "train", "signals", "new"} <= groups


def resolve(argv: list[str]) -> tuple[list[str], object, list[str]]:
    """(command path, the command or None if a name is unknown, flags it lacks)."""
    command = typer.main.get_command(app)
    path: list[str] = []
    rest = list(argv)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        path.append(name)
        if name not in command.commands:
            return path, None, []
        command = command.commands[name]
    known = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
    flags = [token.strip("[]").split("=")[0] for token in rest if token.strip("[]").startswith("--")]
    return path, command, [flag for flag in flags if flag not in known]


def test_the_check_sees_an_unknown_command_and_an_unknown_flag():
    assert resolve(["catalog", "ingestt"])[1] is None
    assert resolve(["catalog", "list", "--catalgo", "x"])[2] == ["--catalgo"]
    assert resolve(["features", "build", "--instrument", "X"])[2] == []  # the alias


@pytest.mark.parametrize(
    ("doc", "line", "argv"), COMMANDS, ids=[f"{d}: {line[:60]}" for d, line, _ in COMMANDS]
)
def test_a_documented_command_and_its_flags_exist(doc, line, argv):
    path, command, unknown = resolve(argv)
    assert command is not None, f"{doc}: `{line}`: no command `qa {' '.join(path)}`"
    assert not hasattr(command, "commands"), f"{doc}: `{line}` names a group, not a command"
    assert unknown == [], f"{doc}: `{line}`: `qa {' '.join(path)}` has no {', '.join(unknown)}"
