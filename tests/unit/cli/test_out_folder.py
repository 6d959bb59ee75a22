"""`--out` of an existing run folder: refused (exit 2, one line, nothing touched) unless `--overwrite`, which
replaces the folder only once the new run has succeeded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qa_engine.backtest import runner
from qa_engine.cli.backtest import out_folder
from qa_engine.cli.console import stdout_console
from qa_engine.cli.main import main
from qa_engine.errors import ConfigError
from qa_engine.errors import PluginError


def _previous_run(folder: Path) -> dict[str, bytes]:
    """A run folder as an earlier run left it; returns its files and contents."""
    folder.mkdir(parents=True)
    files = {"config.toml": b'id = "earlier"\n', "trades.csv": b"a,b\n1,2\n", "notes.txt": b"keep me\n"}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return files


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["backtest", "run"],
        ["backtest", "run", "--dry-run"],
        ["backtest", "compare"],
    ],
)
def test_an_existing_non_empty_out_folder_is_refused_with_exit_2_and_left_untouched(
    tmp_path, capsys, command
):
    out = tmp_path / "runs" / "try1"
    _previous_run(out)
    before = _snapshot(out)

    code = main([*command, "--out", str(out)])
    line = _one_error_line(capsys.readouterr().err)

    assert code == 2
    assert str(out) in line and "--overwrite" in line
    assert _snapshot(out) == before
    assert _siblings(out) == []


def test_run_backtest_py_refuses_an_existing_out_folder_before_any_work(repo_root, tmp_path):
    out = tmp_path / "try1"
    _previous_run(out)
    before = _snapshot(out)

    result = subprocess.run(
        [sys.executable, "run_backtest.py", "--out", str(out)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert str(out) in line and "--overwrite" in line
    assert _snapshot(out) == before and _siblings(out) == []


def test_overwrite_refuses_a_folder_that_is_not_a_run_folder(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work\n")

    code = main(["backtest", "run", "--out", str(out), "--overwrite"])
    line = _one_error_line(capsys.readouterr().err)

    assert code == 2 and "not a run folder" in line
    assert (out / "thesis.tex").read_text() == "years of work\n"


def test_overwrite_refuses_the_working_directory(tmp_path, monkeypatch, capsys):
    _previous_run(tmp_path / "here")
    monkeypatch.chdir(tmp_path / "here")

    code = main(["backtest", "run", "--out", ".", "--overwrite"])

    assert code == 2 and "working directory" in capsys.readouterr().err
    assert (tmp_path / "here" / "notes.txt").exists()


def test_a_missing_or_empty_out_folder_is_written_in_place(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with out_folder(empty) as run_dir:
        assert run_dir == empty
    with out_folder(tmp_path / "new") as run_dir:
        assert run_dir == tmp_path / "new"
    with out_folder(None) as run_dir:
        assert run_dir is None


def test_overwrite_swaps_the_new_run_in_only_when_it_succeeds(tmp_path):
    out = tmp_path / "try1"
    _previous_run(out)
    before = _snapshot(out)

    with pytest.raises(PluginError), out_folder(out, overwrite=True) as run_dir:
        assert run_dir != out and run_dir.parent == out.parent
        run_dir.mkdir()
        (run_dir / "config.toml").write_text("half a run\n")
        raise PluginError("the run failed")
    assert _snapshot(out) == before and _siblings(out) == []

    with out_folder(out, overwrite=True) as run_dir:
        run_dir.mkdir()
        (run_dir / "config.toml").write_text("the new run\n")
    assert sorted(p.name for p in out.iterdir()) == ["config.toml"]
    assert (out / "config.toml").read_text() == "the new run\n"
    assert _siblings(out) == []


def test_a_failed_run_with_overwrite_leaves_the_old_folder(tmp_path, capsys, monkeypatch, sample_catalog):
    out = tmp_path / "try1"
    _previous_run(out)
    before = _snapshot(out)

    def failing_run(config, run_dir=None, inspect=None):
        run_dir.mkdir(parents=True)
        (run_dir / "config.toml").write_text("partial\n")
        raise ConfigError("an actor refused its artifact")

    monkeypatch.setattr(runner, "run_backtest", failing_run)
    code = main(
        ["backtest", "run", "--out", str(out), "--overwrite", "--set", f'data.catalog="{sample_catalog}"']
    )

    assert code == 2 and "refused its artifact" in capsys.readouterr().err
    assert _snapshot(out) == before and _siblings(out) == []


def test_overwrite_replaces_a_previous_run_with_the_new_one(tmp_path, capsys, monkeypatch, sample_catalog):
    monkeypatch.setattr(stdout_console, "width", 400)  # the run folder on one line
    out = tmp_path / "try1"
    _previous_run(out)

    code = main(
        ["backtest", "run", "--out", str(out), "--overwrite", "--set", f'data.catalog="{sample_catalog}"']
    )
    stdout = capsys.readouterr().out

    assert code == 0
    names = {p.name for p in out.iterdir()}
    # nautilus.log is left out: Nautilus' logger writes a file only for the first engine of a process
    assert {"config.toml", "performance_metrics.json", "trades.csv", "fills.csv"} <= names
    assert "notes.txt" not in names  # the folder is replaced as a whole
    assert 'id = "earlier"' not in (out / "config.toml").read_text()
    assert _siblings(out) == []
    assert f"{out} " in stdout and ".incomplete-" not in stdout  # the summary names the final folder
