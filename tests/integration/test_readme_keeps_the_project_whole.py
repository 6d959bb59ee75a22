"""Following the README never breaks the project: the README's data, signals and compare commands, run
in a fresh clone exactly as written, leave the committed sample catalog as committed, and the suite's own
fixtures (tests/pristine.py) still pass there. Also: the pristine copy is what the manifest says."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pristine import CATALOG
from tests.pristine import MANIFEST
from tests.pristine import check_and_copy
from tests.pristine import manifest_entries
from tests.pristine import pristine_catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
README_COMMANDS = [  # as the README writes them (`.venv/bin/qa` -> this interpreter's module)
    "qa catalog ingest data/klines/bybit_linear_BTCUSDT_5m.parquet --venue bybit-linear --symbol BTCUSDT "
    "--interval 5m --catalog my_catalog",
    "qa catalog list --catalog my_catalog",
    "python run_backtest.py --set data.catalog=my_catalog --set data.end=2025-03-01",
    "qa signals build --catalog catalog --instrument-id BTCUSDT-LINEAR.BYBIT --interval 5m "
    "--oracle artifacts/oracle --guardian artifacts/guardian --strategist artifacts/strategist",
    "qa backtest run --config configs/backtest/trinity_replay.toml",
    "qa backtest compare",
]


def _tracked_catalog_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "catalog/data"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return sorted(name.removeprefix("catalog/") for name in listed)


def test_the_manifest_lists_every_committed_catalog_file_with_its_hash():
    entries = manifest_entries()
    assert sorted(name for _, name in entries) == _tracked_catalog_files()
    for digest, name in entries:
        assert hashlib.sha256((CATALOG / name).read_bytes()).hexdigest() == digest, name


def test_the_pristine_copy_leaves_out_a_users_additions_and_names_a_changed_file(tmp_path):
    work = tmp_path / "work"
    shutil.copytree(pristine_catalog(), work)
    (work / "data" / "custom_forecast").mkdir(parents=True)
    (work / "data" / "custom_forecast" / "x.parquet").write_bytes(b"a user's replay records")
    copy = tmp_path / "copy"
    assert check_and_copy(work, copy, MANIFEST) == []
    assert not (copy / "data" / "custom_forecast").exists()

    first = manifest_entries()[0][1]
    (work / first).write_bytes(b"overwritten")
    assert check_and_copy(work, tmp_path / "again", MANIFEST) == [f"{first} (changed)"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A clone of the committed project with the README's commands run in it, in order."""
    target = tmp_path_factory.mktemp("clone") / "project"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(target)], check=True)
    for command in README_COMMANDS:
        program, *args = command.split()
        argv = (
            [sys.executable, "-m", "qa_engine.cli.main", *args]
            if program == "qa"
            else [sys.executable, *args]
        )
        done = subprocess.run(argv, cwd=target, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stderr[-2000:]}"
    return target


def test_readme_commands_leave_the_committed_catalog_as_committed(clone):
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout
    assert status == ""  # nothing tracked changed, nothing untracked that git would commit
    assert any((clone / "catalog" / "data").glob("custom_*"))  # the replay records are there, ignored
    assert (
        check_and_copy(clone / "catalog", clone.parent / "copy", clone / "catalog" / "MANIFEST.sha256") == []
    )


def test_the_suites_own_fixtures_still_pass_in_that_clone(clone):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_backtest_sample.py",
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:]
