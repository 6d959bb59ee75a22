"""Long backtests show a progress bar: bars replayed of the expected total, bars/s and an ETA."""

from __future__ import annotations

import os
import subprocess
import sys

from qa_engine.backtest.runner import estimated_bars
from qa_engine.backtest.runner import run_backtest
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig


def test_the_runner_reports_progress_every_thousand_bars(sample_catalog, repo_root, tmp_path):
    config = load_config(
        BacktestConfig,
        repo_root / "configs" / "backtest" / "default.toml",
        [f"data.catalog={sample_catalog}", "data.end=2025-01-08T00:00:00Z"],
    )
    seen: list[int] = []
    outcome = run_backtest(config, run_dir=tmp_path, on_bars=seen.append)
    assert outcome.bars == estimated_bars(config) == 7 * 288
    assert seen == [1000, 2000]


def test_the_cli_draws_the_bar_on_a_terminal(sample_catalog, repo_root, tmp_path):
    # TTY_COMPATIBLE: rich treats the pipe as a terminal; QA_PROGRESS_MIN_BARS: a bar for 2 days of bars
    env = os.environ | {"TTY_COMPATIBLE": "1", "COLUMNS": "160", "QA_PROGRESS_MIN_BARS": "100"}
    command = [
        sys.executable, "-m", "qa_engine.cli.main", "backtest", "run",
        "--config", str(repo_root / "configs" / "backtest" / "default.toml"),
        "--set", f"data.catalog={sample_catalog}", "--set", "data.end=2025-01-03T00:00:00Z",
        "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=repo_root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "576/576" in result.stderr and "bars/s" in result.stderr and "ETA" in result.stderr
    assert "576/576" not in result.stdout  # the bar stays on stderr: `> file` keeps only the results
