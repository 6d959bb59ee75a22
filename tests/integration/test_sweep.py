"""`qa sweep` end to end on the committed sample catalog (real Bybit BTCUSDT 5m, January 2025):

- a sweep on a real Ray cluster started on 127.0.0.1 (`ray start --head` in a fixture), by address: every
  trial ran, in Ray's worker processes; the invalid point (fast >= slow) is a failed row with its error,
  the rest went on; the results equal the same sweep through the process-pool fallback;
- kill the sweep (SIGINT, as Ctrl-C) and run the same command again: the finished backtests are not run
  again (their files untouched), the rest is, each once;
- walk-forward: each fold's best trial on its train window is run on its test window, and the stitched
  equity holds test days only; TPE (Optuna) runs its trials and resumes a study from finished rows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.sweep.config import SweepConfig
from qa_engine.sweep.engine import PoolExecutor
from qa_engine.sweep.engine import SweepPlan
from qa_engine.sweep.engine import run_sweep
from qa_engine.sweep.report import stitched_walk_forward
from tests.ops_receivers import free_port

pytest.importorskip("ray", reason="the sweep extra is not installed: pip install -e '.[sweep]'")
REPO_ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"


def sweep_config(catalog: Path, out: Path, days: int = 3, **extra) -> SweepConfig:
    search = extra.pop(
        "search",
        {
            "method": "grid",
            "params": [
                {"path": "strategies.0.params.fast_ema_period", "name": "fast", "values": [6, 12, 30]},
                {"path": "strategies.0.params.slow_ema_period", "name": "slow", "values": [26, 40]},
            ],
        },
    )
    return SweepConfig.model_validate(
        {
            "id": "ema-test",
            "base": str(REPO_ROOT / "configs" / "backtest" / "default.toml"),
            "set": [f"data.catalog={catalog}", f"data.end=2025-01-{1 + days:02d}T00:00:00Z"],
            "search": search,
            "output": str(out),
            **extra,
        }
    )


def plan_of(sweep: SweepConfig) -> SweepPlan:
    return SweepPlan.build(sweep, load_config(BacktestConfig, sweep.base, sweep.set))


@pytest.fixture(scope="module")
def ray_cluster():
    """A one-node Ray cluster on 127.0.0.1, as a user's head node would be, with token authentication (Ray
    2.59+ requires it; the token travels in RAY_AUTH_TOKEN, as it would to a user's driver); stopped after
    the module."""
    import secrets

    port = free_port()
    token = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    saved = {name: os.environ.get(name) for name in token}
    os.environ.update(token)  # the driver (this process) joins with the same token
    command = [
        str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
        "--include-dashboard=false", "--disable-usage-stats",
    ]  # fmt: skip
    try:
        started = subprocess.run(command, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=120)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_sweep(sweep: SweepConfig, path: Path) -> Path:
    import tomli_w

    path.write_text(tomli_w.dumps(sweep.model_dump(mode="json", exclude_none=True)))
    return path


@pytest.mark.timeout(600)
def test_a_sweep_on_a_ray_cluster_by_address_equals_the_process_pool(ray_cluster, sample_catalog, tmp_path):
    sweep = sweep_config(sample_catalog, tmp_path)
    toml = write_sweep(sweep, tmp_path / "s.toml")
    command = [
        sys.executable, "-m", "qa_engine.cli.main", "sweep", "--config", str(toml),
        "--address", ray_cluster, "--out", str(tmp_path / "ray"),
    ]  # fmt: skip
    run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "6 backtests (1 failed)" in run.stdout
    on_ray = pl.read_parquet(tmp_path / "ray" / "results" / "*.parquet")
    assert on_ray.height == 6 and sorted(on_ray["trial"].to_list()) == list(range(6))
    failed = on_ray.filter(pl.col("status") == "failed")
    assert failed["params"].to_list() == ['{"fast": 30, "slow": 26}']
    assert "fast_ema_period (30) must be less than slow_ema_period (26)" in failed["error"][0]
    ok = on_ray.filter(pl.col("status") == "ok")
    assert ok.height == 5 and all(len(days) == 4 for days in ok["days"].to_list())  # open + 3 closes
    assert len(set(ok["pid"].to_list())) >= 1 and (tmp_path / "ray" / "report.html").exists()

    # `--address auto` finds the running cluster (Ray's address file); everything is finished: nothing runs
    auto = [*command[:-4], "--address", "auto", "--out", str(tmp_path / "ray")]
    again = subprocess.run(auto, cwd=REPO_ROOT, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "6 backtests (1 failed)" in again.stdout
    assert "Connecting to existing Ray cluster" in again.stderr + again.stdout

    pool = PoolExecutor(workers=2)
    try:
        local = run_sweep(plan_of(sweep), tmp_path / "pool", executor=pool)
    finally:
        pool.close()
    columns = ["key", "status", "sharpe_ratio", "final_equity", "total_trades"]
    assert on_ray.select(columns).sort("key").equals(local.select(columns).sort("key"))


@pytest.mark.timeout(600)
def test_an_interrupted_sweep_resumes_without_repeating_finished_backtests(sample_catalog, tmp_path):
    sweep = sweep_config(
        sample_catalog,
        tmp_path,
        days=4,
        search={
            "method": "grid",
            "params": [
                {
                    "path": "strategies.0.params.fast_ema_period",
                    "name": "fast",
                    "values": [4, 6, 8, 10, 12, 14],
                }
            ],
        },
    )
    toml = write_sweep(sweep, tmp_path / "sweep.toml")
    command = [sys.executable, "-m", "qa_engine.cli.main", "sweep", "--config", str(toml), "--workers", "1"]
    results = tmp_path / "ema-test" / "results"
    first = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 240
    while len(list(results.glob("*.parquet"))) < 2:
        assert first.poll() is None, first.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no two results before the deadline"
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)
    first.wait(60)
    before = {p.name: p.stat().st_mtime_ns for p in results.glob("*.parquet")}
    assert 2 <= len(before) < 6, "the sweep was not interrupted midway"

    second = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    after = {p.name: p.stat().st_mtime_ns for p in results.glob("*.parquet")}
    assert len(after) == 6
    assert all(after[name] == mtime for name, mtime in before.items()), "a finished backtest ran again"
    table = pl.read_parquet(results / "*.parquet")
    assert table["key"].n_unique() == 6 and set(table["status"]) == {"ok"}
    assert (tmp_path / "ema-test" / "report.html").exists()
    stats = json.loads((tmp_path / "ema-test" / "statistics.json").read_text())
    assert stats[0]["trials"] == 6 and 0 <= stats[0]["deflated_sharpe_ratio"] <= 1


@pytest.mark.timeout(600)
def test_walk_forward_runs_each_folds_best_on_its_test_window(sample_catalog, tmp_path):
    sweep = sweep_config(sample_catalog, tmp_path, days=9, walk_forward={"train_days": 3, "test_days": 2})
    pool = PoolExecutor(workers=2)
    try:
        results = run_sweep(plan_of(sweep), tmp_path / "wf", executor=pool)
    finally:
        pool.close()
    search = results.filter(pl.col("phase") == "search")
    tests = results.filter(pl.col("phase") == "test").sort("fold")
    assert sorted(set(search["fold"])) == [0, 1, 2] and search.height == 18
    assert tests["fold"].to_list() == [0, 1, 2]
    for test in tests.iter_rows(named=True):
        fold = search.filter((pl.col("fold") == test["fold"]) & (pl.col("status") == "ok"))
        best = fold.sort(["sharpe_ratio", "trial"], descending=[True, False]).row(0, named=True)
        assert test["params"] == best["params"]
        assert test["window_start"] == best["window_end"]  # the test window follows the train window
    stitched = stitched_walk_forward(results)
    days = tests["days"].to_list()
    assert stitched["day"].to_list() == days[0] + [d for row in days[1:] for d in row[1:]]
    # test days only: the first point is the close of the first train window (2025-01-03), level 1.0
    assert stitched["day"].to_list()[0] == "2025-01-03" and stitched["growth"][0] == 1.0
    assert stitched["day"].is_sorted() and stitched["day"].n_unique() == stitched.height


@pytest.mark.timeout(600)
def test_tpe_runs_its_trials_and_a_resumed_study_only_adds_the_missing_ones(sample_catalog, tmp_path):
    search = {
        "method": "tpe",
        "trials": 5,
        "seed": 7,
        "params": [
            {"path": "strategies.0.params.fast_ema_period", "name": "fast", "low": 3, "high": 20},
            {"path": "strategies.0.params.slow_ema_period", "name": "slow", "low": 25, "high": 60},
        ],
    }
    pool = PoolExecutor(workers=2)
    try:
        first = run_sweep(
            plan_of(sweep_config(sample_catalog, tmp_path, search=search)), tmp_path / "tpe", executor=pool
        )
        more = {**search, "trials": 7}
        second = run_sweep(
            plan_of(sweep_config(sample_catalog, tmp_path, search=more)), tmp_path / "tpe", executor=pool
        )
    finally:
        pool.close()
    assert first.height == 5 and second.height == 7
    assert set(first["key"]) <= set(second["key"])
    assert sorted(second["trial"].to_list()) == list(range(7))
    for params in second["params"].to_list():
        values = json.loads(params)
        assert 3 <= values["fast"] <= 20 and 25 <= values["slow"] <= 60
