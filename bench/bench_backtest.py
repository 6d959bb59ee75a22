"""Default backtest throughput: wall time and bars/second of the EMA-cross baseline, against a
bare Nautilus replay of the same bars (no strategy) measured in the same run.

    .venv/bin/python bench/bench_backtest.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from qa_engine.backtest.runner import run_backtest
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig

ROOT = Path(__file__).resolve().parents[1]


def timed_run(overrides: list[str]) -> tuple[float, int, float]:
    config = load_config(BacktestConfig, ROOT / "configs/backtest/default.toml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        outcome = run_backtest(config, run_dir=Path(tmp))
        total = time.perf_counter() - started
    return total, outcome.bars, outcome.wall_secs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    catalog = f'data.catalog="{ROOT / "catalog"}"'
    # Baseline: same bars and engine, a strategy that never becomes warm (periods larger than the data).
    cases = {
        "idle strategy (baseline)": [
            catalog,
            "strategies.0.params.fast_ema_period=100000",
            "strategies.0.params.slow_ema_period=100001",
        ],
        "EMA cross 12/26": [catalog],
    }
    results = {}
    for name, overrides in cases.items():
        runs = [timed_run(overrides) for _ in range(args.repeat)]
        total = statistics.median(r[0] for r in runs)
        engine = statistics.median(r[2] for r in runs)
        bars = runs[0][1]
        results[name] = engine
        print(
            f"{name:28s} bars={bars:,} engine={engine:.2f}s ({bars / engine:,.0f} bars/s) "
            f"total incl. build+report={total:.2f}s"
        )
    base = results["idle strategy (baseline)"]
    print(f"EMA cross engine time / idle baseline = {results['EMA cross 12/26'] / base:.2f}x")


if __name__ == "__main__":
    main()
