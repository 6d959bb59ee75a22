"""Strategist (Decision Transformer) speed: onnxruntime single-sample latency on one thread, and, with
--train, CPU training time per epoch plus an out-of-sample rollout on real bars.

    .venv/bin/python bench/bench_strategist.py [--runs 5000] [--json FILE]
    .venv/bin/python bench/bench_strategist.py --train [--epochs 12] [--out runs/strategist_bench]

Latency (always): the default-size model (state size from the default feature set, 52) exported with
the shared exporter; p50 / p99 microseconds of `session.run` with batch 1, one intra-op thread,
sequential execution, after a warm-up, as wall time and as the calling thread's CPU time (on a busy
shared machine the wall p99 measures the scheduler). Measured in the same run:
- baseline: a trivial ONNX graph with the same four inputs (a few slices and adds), i.e. onnxruntime's
  fixed per-call cost for these input sizes;
- per bar: what a strategy does at each bar close: `StrategistContext.observe` + `session.run` +
  argmax + `commit`.

--train: real Bybit BTCUSDT 5m bars (data/klines/bybit_linear_BTCUSDT_5m.parquet), one fold:
train 2025-01-01 .. 2025-09-01, validation 2025-09-01 .. 2025-11-01 (early stopping), test
2025-11-01 .. 2026-02-09 (bar close times, UTC), which neither training nor early stopping sees.
Reports seconds per epoch (torch CPU) and the test-range rollouts of the exported policy at three
target returns next to flat, always-long and the behaviour policies, all with the same after-fee
reward accounting. The machine is shared: read the load average it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch import nn

from qa_engine.contract.policy_context import StrategistContext
from qa_engine.features.sets import default_feature_set
from qa_engine.models.export import export_onnx
from qa_engine.models.export import onnx_session
from qa_engine.models.strategist.network import INPUT_NAMES
from qa_engine.models.strategist.network import DecisionTransformer
from qa_engine.models.strategist.network import DecisionTransformerConfig
from qa_engine.models.strategist.network import count_parameters
from qa_engine.models.strategist.train import export_strategist

ROOT = Path(__file__).resolve().parents[1]
KLINES = ROOT / "data" / "klines"  # see data/klines/PROVENANCE.md


class TrivialGraph(nn.Module):
    """Same inputs, almost no work: the last step's first A state values + its return-to-go + ids."""

    def __init__(self, n_actions: int) -> None:
        super().__init__()
        self.n_actions = n_actions

    def forward(self, returns_to_go: Tensor, states: Tensor, actions: Tensor, timesteps: Tensor) -> Tensor:
        ids = (actions[:, -1:] + timesteps[:, -1:]).float()  # (B, 1)
        return states[:, -1, : self.n_actions] + returns_to_go[:, -1] + ids  # (B, A)


def percentiles(wall_ns: list[int], cpu_ns: list[int]) -> dict[str, float]:
    """Wall-clock and thread-CPU percentiles. On a loaded machine the wall p99 is mostly the scheduler
    preempting the process; the CPU-time p99 is the work itself (with one intra-op thread onnxruntime
    runs in the calling thread, so its CPU time is all in this thread)."""
    wall = np.asarray(wall_ns, dtype=np.float64) / 1_000.0
    cpu = np.asarray(cpu_ns, dtype=np.float64) / 1_000.0
    return {
        "p50_us": float(np.percentile(wall, 50)),
        "p99_us": float(np.percentile(wall, 99)),
        "mean_us": float(wall.mean()),
        "cpu_p50_us": float(np.percentile(cpu, 50)),
        "cpu_p99_us": float(np.percentile(cpu, 99)),
    }


def time_session(session, feed: dict[str, np.ndarray], runs: int) -> dict[str, float]:
    for _ in range(min(500, runs)):
        session.run(None, feed)
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
        session.run(None, feed)
        cpu.append(time.thread_time_ns() - started_cpu)
        wall.append(time.perf_counter_ns() - started)
    return percentiles(wall, cpu)


def latency(runs: int) -> dict[str, object]:
    state_dim = len(default_feature_set().names)
    config = DecisionTransformerConfig(state_dim=state_dim)
    torch.manual_seed(0)
    model = DecisionTransformer(config).eval()
    rng = np.random.default_rng(0)
    steps = config.context_length
    feed = {
        "returns_to_go": rng.normal(0, 1, (1, steps, 1)).astype(np.float32),
        "states": rng.normal(0, 1, (1, steps, state_dim)).astype(np.float32),
        "actions": rng.integers(0, config.n_actions, (1, steps)).astype(np.int64),
        "timesteps": np.arange(steps, dtype=np.int64)[None],
    }
    with tempfile.TemporaryDirectory() as folder:
        exported = export_strategist(model, Path(folder) / "model.onnx", feed)
        trivial = export_onnx(
            TrivialGraph(config.n_actions),
            {name: torch.from_numpy(feed[name]) for name in INPUT_NAMES},
            ["action_logits"],
            Path(folder) / "trivial.onnx",
        )
        session, baseline = onnx_session(exported.path), onnx_session(trivial.path)
        results: dict[str, object] = {
            "parameters": count_parameters(model),
            "config": {
                k: getattr(config, k) for k in ("context_length", "n_layer", "n_head", "n_embd", "state_dim")
            },
            "opset": exported.opset,
            "onnx_bytes": exported.path.stat().st_size,
        }
        # Interleave the two graphs in rounds so that load changes hit both alike.
        rounds = 5
        model_rounds, baseline_rounds = [], []
        for _ in range(rounds):
            baseline_rounds.append(time_session(baseline, feed, runs // rounds))
            model_rounds.append(time_session(session, feed, runs // rounds))
        results["decision_transformer"] = {
            k: statistics.median(r[k] for r in model_rounds) for k in model_rounds[0]
        }
        results["baseline_trivial_graph"] = {
            k: statistics.median(r[k] for r in baseline_rounds) for k in baseline_rounds[0]
        }
        context = StrategistContext(
            steps, state_dim, config.n_actions, config.max_timestep, 0.02, 0.01, 0.0006
        )
        states = rng.normal(0, 1, (runs + steps, state_dim)).astype(np.float32)
        close = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, runs + steps)))
        wall, cpu = [], []
        for t in range(runs + steps):
            started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
            inputs = context.observe(states[t], float(close[t]))
            action = 1 if inputs is None else int(np.argmax(session.run(None, inputs)[0][0]))
            context.commit(action)
            if inputs is not None:
                cpu.append(time.thread_time_ns() - started_cpu)
                wall.append(time.perf_counter_ns() - started)
        results["per_bar_context_plus_model"] = percentiles(wall, cpu)
    return results


def train_run(epochs: int, out: Path, threads: int) -> dict[str, object]:
    import polars as pl

    from qa_engine.features.build import build_feature_table
    from qa_engine.features.io import interval_ns
    from qa_engine.features.io import load_kline_file
    from qa_engine.models.data import FoldConfig
    from qa_engine.models.data import to_ns
    from qa_engine.models.strategist.train import train_strategist
    from qa_engine.models.training import TrainerConfig

    path = KLINES / "bybit_linear_BTCUSDT_5m.parquet"
    fold = FoldConfig(
        name="btc-2025-11",
        train_start=datetime(2025, 1, 1),
        validation_start=datetime(2025, 9, 1),
        test_start=datetime(2025, 11, 1),
        test_end=datetime(2026, 2, 9),
    )
    step = interval_ns("5m")
    bars = load_kline_file(path, "5m")
    started = time.perf_counter()
    table = build_feature_table(bars, default_feature_set(), step, train_end_ns=to_ns(fold.validation_start))
    closes = bars.join(table.table.select("ts"), on="ts", how="semi").get_column("close").to_numpy()
    feature_secs = time.perf_counter() - started
    result = train_strategist(
        table.table,
        closes,
        DecisionTransformerConfig(),
        fold=fold,
        run_dir=out,
        feature_set=table.feature_set,
        interval_ns=step,
        trainer_config=TrainerConfig(max_epochs=epochs, threads=threads),
        evaluate_test=True,
        source_label=f"BTCUSDT={path.name}",
        declared_feature_set_hash=table.declared_hash,
    )
    episodes = result.trajectories["train"].episodes
    by_behaviour = (
        episodes.group_by("behaviour")
        .agg(
            pl.col("return").mean().alias("mean_episode_return"),
            pl.col("turnover").mean().alias("mean_turnover"),
        )
        .sort("behaviour")
    )
    return {
        "feature_secs": feature_secs,
        "secs_per_epoch": result.training.secs_per_epoch,
        "epochs_run": len(result.training.history),
        "best_epoch": result.training.best_epoch,
        "validation_metrics": result.validation_metrics,
        "parity_max_abs_diff": result.parity_max_abs_diff,
        "train_behaviour_episodes": by_behaviour.to_dicts(),
        "out_of_sample": result.out_of_sample,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5_000)
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "strategist_bench")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    results: dict[str, object] = {"latency": latency(args.runs)}
    lat = results["latency"]
    assert isinstance(lat, dict)
    for name in ("decision_transformer", "baseline_trivial_graph", "per_bar_context_plus_model"):
        p50, p99, cpu50, cpu99 = (lat[name][k] for k in ("p50_us", "p99_us", "cpu_p50_us", "cpu_p99_us"))
        print(f"{name:28s} wall p50={p50:6.1f} p99={p99:7.1f} us | cpu p50={cpu50:6.1f} p99={cpu99:6.1f} us")
    print(f"parameters={lat['parameters']:,} config={lat['config']} opset={lat['opset']}")
    if args.train:
        results["train"] = train_run(args.epochs, args.out, args.threads)
        print(json.dumps(results["train"], indent=2))
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
