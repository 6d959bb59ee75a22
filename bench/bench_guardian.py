"""Guardian (contrastive VAE regime detector): speed, and regime statistics on real bars.

    .venv/bin/python bench/bench_guardian.py speed [--epochs 2] [--runs 5000] [--json FILE]
    .venv/bin/python bench/bench_guardian.py latency [--runs 5000] [--repeats 5]
    .venv/bin/python bench/bench_guardian.py regimes [--epochs 8] [--out DIR]

speed (Binance USD-M BTCUSDT 5m, data/klines/binance_futures_BTCUSDT_5m.parquet: 2024-12-31 .. 2026-02-19):
- training: epochs over EVERY window of one year of 5m bars (2025-01-01 .. 2026-01-01, ~105k windows;
  train_windows_per_epoch=None), CPU, one torch thread (on the shared 2-core machine, two threads were
  up to 90x slower per step under load: OpenMP spin-waits); seconds per epoch and windows per second;
- inference: onnxruntime, one intra-op thread, sequential, one window (1, T, F) per call: p50 / p99 /
  mean microseconds over --runs calls after 200 warm-up calls; in the same run and the same way, a
  baseline graph that takes the same input and only averages it (the fixed cost of an ORT call);
  wall clock and thread CPU time (the latter leaves out preemption by other processes);
latency: the inference part alone, repeated (Guardian and baseline alternately), best repeat kept;

regimes: two models fitted on disjoint training folds of the same market, each evaluated on its own
out-of-sample test range, and both on a common later range that neither saw:
- fold A: train 2025-01-01 .. 2025-04-01, validation .. 2025-05-01, test .. 2025-09-01;
- fold B: train 2025-05-01 .. 2025-08-01, validation .. 2025-09-01, test 2025-09-01 .. 2026-02-20;
- common range 2025-09-01 .. 2026-02-20 (out of sample for both): per-regime statistics, fold
  stability (adjusted Rand index, agreement after label matching), and the same for a naive baseline
  (quartiles of realised_volatility_20 with thresholds from each training fold): if the Guardian
  agrees with it closely, its regimes are volatility buckets.
Writes regimes.json, one plot per fold and range, training curves and artifacts under --out
(default runs/guardian_eval). The machine is shared: read the load average the script prints.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KLINES = ROOT / "data" / "klines" / "binance_futures_BTCUSDT_5m.parquet"  # see data/klines/PROVENANCE.md
COMMON_RANGE = ("2025-09-01", "2026-02-20")
FOLDS = {  # train_start, validation_start, test_start, test_end
    "A": ("2025-01-01", "2025-04-01", "2025-05-01", "2025-09-01"),
    "B": ("2025-05-01", "2025-08-01", "2025-09-01", "2026-02-20"),
}


def guardian_table():
    """(bars, feature table, resolved set, declared hash) of the whole BTCUSDT 5m file."""
    from qa_engine.features.build import build_feature_table
    from qa_engine.features.io import interval_ns
    from qa_engine.features.io import load_kline_file
    from qa_engine.models.guardian.train import guardian_feature_set

    bars = load_kline_file(KLINES, "5m")
    declared = guardian_feature_set()
    table = build_feature_table(bars, declared, interval_ns("5m"))
    return bars, table.table, table.feature_set, declared.hash


def ns(text: str) -> int:
    from qa_engine.features.io import parse_time

    value = parse_time(text, "time")
    assert value is not None
    return value


def latency_us(path: Path, window: np.ndarray, runs: int) -> dict[str, float]:
    """Wall-clock and thread-CPU microseconds per single-window call (CPU time leaves out the time the
    thread was preempted, which on a shared machine dominates the wall-clock p99)."""
    from qa_engine.models.export import onnx_session

    session = onnx_session(path, threads=1)
    name = session.get_inputs()[0].name
    for _ in range(200):
        session.run(None, {name: window})
    wall = np.empty(runs)
    cpu = np.empty(runs)
    for i in range(runs):
        began, began_cpu = time.perf_counter_ns(), time.thread_time_ns()
        session.run(None, {name: window})
        cpu[i] = (time.thread_time_ns() - began_cpu) / 1e3
        wall[i] = (time.perf_counter_ns() - began) / 1e3
    return {
        "p50_us": float(np.percentile(wall, 50)),
        "p99_us": float(np.percentile(wall, 99)),
        "mean_us": float(wall.mean()),
        "cpu_p50_us": float(np.percentile(cpu, 50)),
        "cpu_p99_us": float(np.percentile(cpu, 99)),
    }


def run_latency(runs: int, repeats: int) -> dict:
    """Latency only, untrained weights (the graph and its cost do not depend on them): Guardian and
    baseline measured alternately `repeats` times; the best (least disturbed) repeat of each is kept."""
    import torch
    from torch import nn

    from qa_engine.models.export import export_onnx
    from qa_engine.models.guardian.network import ContrastiveVAE
    from qa_engine.models.guardian.network import GuardianConfig
    from qa_engine.models.guardian.network import GuardianInference
    from qa_engine.models.guardian.regimes import fit_regimes

    config = GuardianConfig(n_features=20)
    network = ContrastiveVAE(config).eval()
    rng = np.random.default_rng(0)
    regimes = fit_regimes(
        rng.standard_normal((64, 8)), rng.uniform(1e-3, 2e-3, 64), np.zeros(64), config.regimes
    )
    window = rng.standard_normal((1, config.window_bars, 20)).astype(np.float32)
    out = ROOT / "runs" / "guardian_bench"

    class Baseline(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(1, 2))

    example = {"window": torch.from_numpy(window)}
    guardian = export_onnx(
        GuardianInference(network.encoder, regimes), example, ["p", "z"], out / "latency.onnx"
    )
    baseline = export_onnx(Baseline(), example, ["mean"], out / "baseline.onnx")
    results: dict[str, list[dict[str, float]]] = {"guardian": [], "baseline": []}
    for _ in range(repeats):
        results["guardian"].append(latency_us(guardian.path, window, runs))
        results["baseline"].append(latency_us(baseline.path, window, runs))
    best = {name: min(rows, key=lambda row: row["p99_us"]) for name, rows in results.items()}
    return {
        "load_average": os.getloadavg(),
        "runs_per_repeat": runs,
        "repeats": repeats,
        "best": best,
        "all": results,
    }


def run_speed(epochs: int, runs: int) -> dict:
    import torch
    from torch import nn

    from qa_engine.models.data import FoldConfig
    from qa_engine.models.export import export_onnx
    from qa_engine.models.guardian.network import GuardianConfig
    from qa_engine.models.guardian.train import export_guardian
    from qa_engine.models.guardian.train import train_guardian
    from qa_engine.models.training import TrainerConfig

    _, table, feature_set, declared = guardian_table()
    fold = FoldConfig(
        name="year-2025",
        train_start="2025-01-01",
        validation_start="2026-01-01",
        test_start="2026-02-01",
        test_end="2026-02-19T17:00",
    )
    trainer = TrainerConfig(
        max_epochs=epochs,
        train_windows_per_epoch=None,
        validation_windows=8192,
        patience_epochs=epochs,
        threads=1,
    )
    out = ROOT / "runs" / "guardian_bench"
    began = time.perf_counter()
    trained = train_guardian(table, fold, out, GuardianConfig(), trainer, "5m", feature_set, declared)
    model = trained.model
    windows = len(trained.splits["train"])
    epoch_secs = [record.secs for record in trained.result.history]
    manifest = export_guardian(model, out / "artifact")
    config = model.config
    window = trained.splits["test"].batch(np.arange(1))["x"].astype(np.float32)  # (1, T, F)

    class Baseline(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(1, 2))

    baseline = export_onnx(Baseline(), {"window": torch.from_numpy(window)}, ["mean"], out / "baseline.onnx")
    return {
        "load_average": os.getloadavg(),
        "parameters": model.network.parameter_count(),
        "config": {
            "window_bars": config.window_bars,
            "n_features": config.n_features,
            "latent_dim": config.latent_dim,
        },
        "train_windows_per_epoch": windows,
        "epoch_secs": epoch_secs,
        "windows_per_sec": [windows / secs for secs in epoch_secs],
        "total_train_secs": time.perf_counter() - began,
        "onnx_parity_max_abs_diff": manifest["validation_metrics"]["onnx_parity_max_abs_diff"],
        "ort_guardian": latency_us(out / "artifact" / "model.onnx", window, runs),
        "ort_baseline_mean_graph": latency_us(baseline.path, window, runs),
    }


def run_regimes(epochs: int, out: Path, windows_per_epoch: int = 16_384) -> dict:
    import polars as pl

    from qa_engine.models.data import FoldConfig
    from qa_engine.models.data import iso
    from qa_engine.models.guardian.network import GuardianConfig
    from qa_engine.models.guardian.report import fold_stability
    from qa_engine.models.guardian.report import plot_regimes
    from qa_engine.models.guardian.report import regime_statistics
    from qa_engine.models.guardian.train import export_guardian
    from qa_engine.models.guardian.train import feature_means
    from qa_engine.models.guardian.train import segment_starts
    from qa_engine.models.guardian.train import train_guardian
    from qa_engine.models.guardian.train import volatility_quartiles
    from qa_engine.models.training import TrainerConfig

    bars, table, feature_set, declared = guardian_table()
    ts_all = table.get_column("ts").to_numpy()
    close = dict(
        zip(bars.get_column("ts").to_numpy().tolist(), bars.get_column("close").to_numpy(), strict=True)
    )
    returns_all = table.get_column("log_return_1").to_numpy()
    trainer = TrainerConfig(
        max_epochs=epochs, train_windows_per_epoch=windows_per_epoch, validation_windows=8192, threads=1
    )
    report: dict = {"data": str(KLINES.name), "load_average_start": os.getloadavg(), "folds": {}}
    assigned: dict[str, pl.DataFrame] = {}
    buckets: dict[str, np.ndarray] = {}
    common = (ns(COMMON_RANGE[0]), ns(COMMON_RANGE[1]))

    def describe(model, frame: pl.DataFrame, label: str, name: str, sample: str) -> dict:
        ts = frame.get_column("ts").to_numpy()
        rows = np.searchsorted(ts_all, ts)
        labels = frame.get_column("regime").to_numpy()
        starts = segment_starts(rows)
        stats = regime_statistics(labels, returns_all[rows], model.regimes.n_regimes, starts)
        stats["range"] = [iso(int(ts[0])), iso(int(ts[-1]))]
        stats["sample"] = sample
        stats["raw_switches"] = int(np.sum(np.diff(frame.get_column("regime_raw").to_numpy()) != 0))
        stats["feature_means"] = feature_means(table, rows, labels, model.regimes.n_regimes)
        plot_regimes(
            ts,
            np.array([close[int(t)] for t in ts]),
            labels,
            out / f"regimes_{name}_{label}.png",
            f"Guardian fold {name}, {label} ({sample}) {stats['range'][0]} .. {stats['range'][1]}",
            model.regimes.n_regimes,
            starts,
            model.regimes.risk_scale,
        )
        return stats

    for name, (train_start, validation_start, test_start, test_end) in FOLDS.items():
        fold = FoldConfig(
            name=name,
            train_start=train_start,
            validation_start=validation_start,
            test_start=test_start,
            test_end=test_end,
        )
        trained = train_guardian(
            table, fold, out / f"fold_{name}", GuardianConfig(), trainer, "5m", feature_set, declared
        )
        model = trained.model
        export_guardian(model, out / f"fold_{name}" / "artifact")
        regimes = model.regimes
        train_bounds = fold.bounds_ns("train")
        entry = {
            "train": [train_start, validation_start],
            "validation": [validation_start, test_start],
            "test": [test_start, test_end],
            "epochs_run": len(trained.result.history),
            "best_epoch": trained.result.best_epoch,
            "secs_per_epoch": trained.result.secs_per_epoch,
            "validation_metrics": model.validation_metrics,
            "regime_model": {
                "risk_scale": regimes.risk_scale.tolist(),
                "training_volatility_per_bar": regimes.training_volatility.tolist(),
                "training_share": regimes.training_share.tolist(),
                "training_drawdown_pct": regimes.training_drawdown_pct.tolist(),
                "dangerous": regimes.dangerous,
                "temperature": regimes.temperature,
            },
            "in_sample_train": describe(
                model, model.assign(table, *train_bounds), "train", name, "IN-SAMPLE (training fold)"
            ),
            "out_of_sample_test": describe(
                model,
                model.assign(table, *fold.bounds_ns("test")),
                "test",
                name,
                "OUT-OF-SAMPLE (fold test range)",
            ),
        }
        frame = model.assign(table, *common)
        entry["out_of_sample_common"] = describe(model, frame, "common", name, "OUT-OF-SAMPLE (common range)")
        assigned[name] = frame
        bucket = volatility_quartiles(table, train_bounds)
        assert bucket is not None  # the Guardian's feature set has realised_volatility_20
        rows = np.searchsorted(ts_all, frame.get_column("ts").to_numpy())
        buckets[name] = bucket[rows]
        entry["agreement_with_volatility_quartiles_common"] = fold_stability(
            frame.get_column("regime").to_numpy(), buckets[name], regimes.n_regimes
        )
        report["folds"][name] = entry
        print(
            json.dumps(
                {name: {k: entry[k] for k in ("epochs_run", "best_epoch", "regime_model")}}, default=float
            )
        )

    a, b = assigned["A"], assigned["B"]
    if not np.array_equal(a.get_column("ts").to_numpy(), b.get_column("ts").to_numpy()):
        raise RuntimeError("the two folds' common-range bars differ; this is a bug")
    report["stability_common"] = {
        "range": list(COMMON_RANGE),
        "guardian_reported": fold_stability(a["regime"].to_numpy(), b["regime"].to_numpy(), 4),
        "guardian_raw": fold_stability(a["regime_raw"].to_numpy(), b["regime_raw"].to_numpy(), 4),
        "volatility_quartiles_baseline": fold_stability(buckets["A"], buckets["B"], 4),
    }
    report["load_average_end"] = os.getloadavg()
    out.mkdir(parents=True, exist_ok=True)
    (out / "regimes.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    speed = commands.add_parser("speed")
    speed.add_argument("--epochs", type=int, default=2)
    speed.add_argument("--runs", type=int, default=5000)
    speed.add_argument("--json", type=Path)
    latency = commands.add_parser("latency")
    latency.add_argument("--runs", type=int, default=5000)
    latency.add_argument("--repeats", type=int, default=5)
    regimes = commands.add_parser("regimes")
    regimes.add_argument("--epochs", type=int, default=8)
    regimes.add_argument("--windows-per-epoch", type=int, default=16_384)
    regimes.add_argument("--out", type=Path, default=ROOT / "runs" / "guardian_eval")
    arguments = parser.parse_args()
    if arguments.command == "speed":
        result = run_speed(arguments.epochs, arguments.runs)
        text = json.dumps(result, indent=2, default=float)
        print(text)
        if arguments.json:
            arguments.json.write_text(text + "\n")
    elif arguments.command == "latency":
        print(json.dumps(run_latency(arguments.runs, arguments.repeats), indent=2, default=float))
    else:
        result = run_regimes(arguments.epochs, arguments.out, arguments.windows_per_epoch)
        print(json.dumps(result["stability_common"], indent=2, default=float))


if __name__ == "__main__":
    main()
