"""What `qa new` generates passes `make lint` as it is: ruff check and ruff format --check, with the
project's own settings (pyproject.toml: line length 110, isort single-line imports)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qa_engine.cli.new import new_app
from qa_engine.cli.new import scaffold_strategy

# One entry per `qa new` kind: a kind added without a case here fails test_every_scaffold_kind_is_linted.
SCAFFOLDS = {
    "strategy": [
        ("breakout", "a momentum strategy"),  # the README's example, the default description
        ("mean_reversion_after_funding_spikes_v2", "a momentum strategy"),  # a long name
        (
            "wordy",
            "a strategy whose author wrote a very long one-line description of what it does, much longer "
            "than a line of the project's code may be, to see that the docstring is wrapped",
        ),
    ],
}


def _ruff(*args: str, cwd: Path, repo_root: Path) -> subprocess.CompletedProcess[str]:
    """ruff from the running interpreter's environment, with the repository's configuration.

    `src` names both the repository and the scratch project, so `qa_engine` and the generated package
    are first-party imports, as they are when `qa new` runs in the repository itself.
    """
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            *args,
            "--config",
            str(repo_root / "pyproject.toml"),
            "--config",
            f"src = [{str(repo_root)!r}, {str(cwd)!r}]",
            "--no-cache",
            ".",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_scaffold_kind_is_linted():
    assert {command.name for command in new_app.registered_commands} == set(SCAFFOLDS)


@pytest.mark.parametrize(("name", "description"), SCAFFOLDS["strategy"])
def test_generated_strategy_passes_ruff_check_and_format(tmp_path, repo_root, name, description):
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "__init__.py").write_text("")
    created = scaffold_strategy(name, tmp_path, "strategies", description)
    assert sorted(path.suffix for path in created) == [".py", ".py", ".toml"]
    check = _ruff("check", "--output-format", "concise", cwd=tmp_path, repo_root=repo_root)
    assert check.returncode == 0, check.stdout + check.stderr
    form = _ruff("format", "--check", "--diff", cwd=tmp_path, repo_root=repo_root)
    assert form.returncode == 0, form.stdout + form.stderr
    # ruff really looked at the generated files (an empty run also exits 0)
    python_files = len(list(tmp_path.rglob("*.py")))  # the two generated ones and strategies/__init__.py
    assert f"{python_files} files already formatted" in form.stdout + form.stderr
