"""Sweep throughput: 64 EMA-cross backtests of one year of real 5m bars, serial vs Ray, on this machine.

Data: Bybit linear BTCUSDT 5m of 2025 (data/klines/bybit_linear_BTCUSDT_5m.parquet, real bars; see its
PROVENANCE.md), ingested into a temporary catalog. Each backtest: configs/backtest/default.toml (EMA cross,
always in the market) with one (fast, slow) pair of an 8 x 8 grid, 2025-01-01 .. 2026-01-01.

- serial: the 64 backtests one after another in this process (`run_task`, what a worker runs);
- ray: `qa_engine.sweep.engine.run_sweep` on a local Ray cluster with `--workers` CPUs (one process per
  backtest), counting Ray's start-up;
- per-task overhead: Ray wall time x workers / tasks - the serial mean per backtest.

    .venv/bin/python bench/bench_sweep.py [--workers 2] [--grid 8] [--months 12]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.data.funding import merge_funding_rates
from qa_engine.data.funding import read_funding_file
from qa_engine.data.ingest import catalog_writer
from qa_engine.data.ingest import ingest_klines
from qa_engine.data.ingest import write_instrument
from qa_engine.plugins import load_instrument
from qa_engine.sweep.config import SweepConfig
from qa_engine.sweep.engine import SweepPlan
from qa_engine.sweep.engine import run_sweep
from qa_engine.sweep.task import run_task

ROOT = Path(__file__).resolve().parents[1]


def build_catalog(folder: Path, months: int) -> Path:
    instrument = load_instrument("bybit-linear", "BTCUSDT")
    end = date(2025 + months // 12, months % 12 + 1, 1)
    ingest_klines([ROOT / "data/klines/bybit_linear_BTCUSDT_5m.parquet"], instrument, "5m", folder,
                  start=date(2025, 1, 1), end=end)  # fmt: skip
    with catalog_writer(folder) as root:
        write_instrument(root, instrument)
        merge_funding_rates(  # real 8-hourly funding rates: the backtests settle funding as the default does
            root,
            instrument.id.value,
            read_funding_file(ROOT / "data/funding/bybit_linear_BTCUSDT_funding.parquet"),
        )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--grid", type=int, default=8, help="grid side: grid x grid backtests")
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = build_catalog(Path(tmp) / "catalog", args.months)
        end_month = args.months % 12 + 1
        end = f"{2025 + args.months // 12}-{end_month:02d}-01T00:00:00Z"
        fast = [4 + 2 * i for i in range(args.grid)]
        slow = [30 + 5 * i for i in range(args.grid)]
        sweep = SweepConfig.model_validate({
            "id": "bench", "base": str(ROOT / "configs/backtest/default.toml"),
            "set": [f"data.catalog={catalog}", "data.start=2025-01-01T00:00:00Z", f"data.end={end}"],
            "search": {"method": "grid", "params": [
                {"path": "strategies.0.params.fast_ema_period", "name": "fast", "values": fast},
                {"path": "strategies.0.params.slow_ema_period", "name": "slow", "values": slow},
            ]},
            "output": str(Path(tmp) / "sweeps"),
        })  # fmt: skip
        plan = SweepPlan.build(sweep, load_config(BacktestConfig, sweep.base, sweep.set))
        tasks = plan.search_tasks()
        print(f"{len(tasks)} backtests of {args.months} months of 5m bars, {args.workers} workers")

        started = time.perf_counter()
        serial = [run_task(task) for task in tasks]
        serial_secs = time.perf_counter() - started
        per_task = [row["wall_secs"] for row in serial]
        bars = serial[0].get("bars") or 0
        failed = sum(row["status"] != "ok" for row in serial)
        mean = statistics.mean(per_task)
        rate = bars * len(tasks) / serial_secs
        print(f"serial  {serial_secs:8.1f} s  ({mean:.2f} s per backtest, {bars:,} bars each, "
              f"{rate:,.0f} bars/s, {failed} failed)")  # fmt: skip

        started = time.perf_counter()
        results = run_sweep(plan, Path(tmp) / "sweeps" / "bench", workers=args.workers)
        ray_secs = time.perf_counter() - started
        ray_failed = int((results["status"] != "ok").sum())
        print(f"ray     {ray_secs:8.1f} s  ({bars * len(tasks) / ray_secs:,.0f} bars/s, {ray_failed} failed)")
        overhead = ray_secs * args.workers / len(tasks) - mean
        print(f"speed-up {serial_secs / ray_secs:.2f}x on {args.workers} workers; "
              f"per-task overhead {overhead:+.2f} s ({overhead / mean:+.1%} of a backtest)")  # fmt: skip
        same = {r["key"]: r["final_equity"] for r in serial} == dict(
            zip(results["key"].to_list(), results["final_equity"].to_list(), strict=True)
        )
        print(f"serial and Ray final equities identical: {same}")


if __name__ == "__main__":
    main()
