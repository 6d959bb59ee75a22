"""Feature library speed and parity: batch on 1,000,000 bars, streaming per bar, batch-vs-streaming diffs.

    .venv/bin/python bench/bench_features.py [--bars 1000000] [--stream-bars 30000] [--repeat 3]
        [--skip-parity] [--skip-backtest] [--backtest-days 60] [--json FILE]

- batch: the default set over N bars made of the real 5m files of data/klines laid end to end
  and re-stamped gap-free (a scale benchmark: the price jumps at the seams do not matter for speed);
  wall seconds (best of --repeat) and peak resident memory of a fresh child process (RSS after
  loading the bars is reported too, so the feature computation's own share is visible);
- streaming: microseconds per bar of StreamingFeatureEngine.update over real BTCUSDT 5m bars
  (best of --repeat, process CPU time and wall time), the whole default set and each heavy family
  alone;
- FeatureActor inside a backtest: the same real BTCUSDT 5m bars (data/klines, the first
  --backtest-days days of 2025) ingested into a temporary catalog with `qa_engine.data.ingest`; the
  EMA-cross run alone and the EMA-cross run + a FeatureActor of the default set, interleaved
  (--repeat pairs), medians of process CPU time and of wall time; printed: us/bar of the FeatureActor
  over EMA alone (CPU and wall) next to the streaming engine's own us/bar measured in this run, and
  the engine's `update` timed per call inside one more backtest run (where the difference goes);
- parity: max |batch - streaming| over every shipped stretch of real BTC/ETH 1m and 5m bars
  (tests.factories.kline_stretches: data/klines and the test slices of tests/data/klines).
The machine is shared: run it when nothing else runs, and read the load average it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "klines"  # see data/klines/PROVENANCE.md
FIVE_MINUTES_NS = 300_000_000_000
SCALE_FILES = (
    "binance_futures_BTCUSDT_5m",
    "bybit_linear_BTCUSDT_5m",
)
PARITY_FILES = (
    ("binance_futures_BTCUSDT_1m", "1m"),
    ("binance_futures_ETHUSDT_1m", "1m"),
    ("binance_futures_BTCUSDT_5m", "5m"),
    ("binance_futures_ETHUSDT_5m", "5m"),
)


def scale_bars(count: int):
    import polars as pl

    from qa_engine.features.io import load_kline_file

    parts = [load_kline_file(DATA / f"{name}.parquet", "5m").drop("ts") for name in SCALE_FILES]
    frame = pl.concat(parts)
    while frame.height < count:
        frame = pl.concat([frame, frame])
    frame = frame.head(count)
    return frame.with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) * FIVE_MINUTES_NS + 1_600_000_000_000_000_000).alias("ts")
    )


def batch_child(count: int, repeat: int) -> None:
    """Runs in a fresh process: prints JSON with seconds and peak RSS."""
    import resource

    from qa_engine.features.batch import compute_features_batch
    from qa_engine.features.sets import default_feature_set

    feature_set = default_feature_set()
    bars = scale_bars(count)
    rss_loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds, cpu_seconds = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        table = compute_features_batch(bars, feature_set, FIVE_MINUTES_NS)
        seconds.append(time.perf_counter() - started)
        cpu_seconds.append(time.process_time() - cpu)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "bars": bars.height,
                "features": table.width - 1,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "peak_rss_mb": peak_mb,
                "rss_after_loading_mb": rss_loaded_mb,
            }
        )
    )


def run_batch(count: int, repeat: int) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--batch-child", str(count), "--repeat", str(repeat)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def streaming_us_per_bar(specs, bars, repeat: int) -> tuple[float, float]:
    from qa_engine.features.spec import FeatureSet
    from qa_engine.features.streaming import StreamingFeatureEngine

    engine = StreamingFeatureEngine(FeatureSet("bench", 1, tuple(specs)), FIVE_MINUTES_NS)
    rows = list(bars.select("ts", "open", "high", "low", "close", "volume").iter_rows())
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        engine.reset()
        update = engine.update
        wall, cpu = time.perf_counter(), time.process_time()
        for row in rows:
            update(*row)
        best_cpu = min(best_cpu, (time.process_time() - cpu) / len(rows) * 1e6)
        best_wall = min(best_wall, (time.perf_counter() - wall) / len(rows) * 1e6)
    return best_cpu, best_wall


def run_streaming(count: int, repeat: int) -> dict:
    from qa_engine.features.io import load_kline_file
    from qa_engine.features.sets import default_feature_set

    feature_set = default_feature_set()
    bars = load_kline_file(DATA / "binance_futures_BTCUSDT_5m.parquet", "5m").head(count)
    heavy = ("volume_profile", "wavelet", "ffd")
    groups = {
        "default set": list(feature_set.specs),
        "without volume profile, wavelet, FFD": [s for s in feature_set.specs if s.kind not in heavy],
        **{f"{kind} only": [s for s in feature_set.specs if s.kind == kind] for kind in heavy},
    }
    return {name: streaming_us_per_bar(specs, bars, repeat) for name, specs in groups.items()}


BACKTEST_INSTRUMENT = "BTCUSDT-PERP.BINANCE"
BACKTEST_BAR_TYPE = f"{BACKTEST_INSTRUMENT}-5-MINUTE-LAST-EXTERNAL"


def run_backtest_actor(days: int, repeat: int) -> dict:
    """EMA cross vs EMA cross + FeatureActor(default set), interleaved; medians of CPU and wall seconds."""
    import gc
    import shutil
    import statistics
    import tempfile
    from datetime import UTC
    from datetime import datetime
    from datetime import timedelta

    from qa_engine.backtest.runner import run_backtest
    from qa_engine.config.models import BacktestConfig
    from qa_engine.data.ingest import ingest_klines
    from qa_engine.plugins import load_instrument

    work = Path(tempfile.mkdtemp(prefix="bench-features-"))
    try:
        start = datetime(2025, 1, 1, tzinfo=UTC)
        end = start + timedelta(days=days)
        catalog = work / "catalog"
        ingest_klines(
            [DATA / "binance_futures_BTCUSDT_5m.parquet"],
            load_instrument("binance-futures", "BTCUSDT"),
            "5m",
            catalog,
            start=start.date(),
            end=end.date(),
        )

        component = {"instrument_id": BACKTEST_INSTRUMENT, "bar_type": BACKTEST_BAR_TYPE}

        def config(actors: list[dict]) -> BacktestConfig:
            return BacktestConfig.model_validate(
                {
                    "id": "bench-features",
                    "venues": [{"name": "BINANCE"}],
                    "data": {
                        "catalog": str(catalog),
                        "bars": [{"instrument_id": BACKTEST_INSTRUMENT, "interval": "5m"}],
                        "start": start.isoformat(),
                        "end": end.isoformat(),
                    },
                    "strategies": [{"name": "ema_cross", "params": component}],
                    "actors": actors,
                }
            )

        runs = {
            "ema": config([]),
            "ema+features": config([{"name": "features", "params": {**component, "feature_set": "default"}}]),
        }
        seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        bars: dict[str, int] = {}
        for _ in range(repeat):
            for name, run_config in runs.items():
                run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
                gc.collect()
                cpu, wall = time.process_time(), time.perf_counter()
                outcome = run_backtest(run_config, run_dir=run_dir)
                seconds[name].append((time.process_time() - cpu, time.perf_counter() - wall))
                bars[name] = outcome.bars
                shutil.rmtree(run_dir, ignore_errors=True)
        # Once more, with the engine's per-bar step (`advance`: checks + the compiled update, what
        # `update` and the actor run) timed per call (perf_counter): how much of the difference is
        # the engine itself when it runs between the bars of Nautilus. Not part of the medians above
        # (the timing wrapper costs a little itself).
        from qa_engine.features.streaming import StreamingFeatureEngine

        untimed = StreamingFeatureEngine.advance
        spent = [0.0, 0]

        def timed_update(self, *args):
            started = time.perf_counter()
            result = untimed(self, *args)
            spent[0] += time.perf_counter() - started
            spent[1] += 1
            return result

        StreamingFeatureEngine.advance = timed_update
        try:
            run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
            run_backtest(runs["ema+features"], run_dir=run_dir)
        finally:
            StreamingFeatureEngine.advance = untimed
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if bars["ema"] != bars["ema+features"]:
        raise AssertionError(f"the two runs saw different bars: {bars}")
    count = bars["ema"]
    medians = {
        name: (statistics.median(c for c, _ in items), statistics.median(w for _, w in items))
        for name, items in seconds.items()
    }
    return {
        "bars": count,
        "seconds_cpu_wall": seconds,
        "median_cpu_wall": medians,
        "us_per_bar_over_ema_cpu": (medians["ema+features"][0] - medians["ema"][0]) / count * 1e6,
        "us_per_bar_over_ema_wall": (medians["ema+features"][1] - medians["ema"][1]) / count * 1e6,
        "engine_update_us_per_bar_inside": spent[0] / max(spent[1], 1) * 1e6,
    }


def run_parity() -> dict:
    import numpy as np

    from qa_engine.features.batch import compute_features_batch
    from qa_engine.features.io import interval_ns
    from qa_engine.features.sets import default_feature_set
    from qa_engine.features.streaming import StreamingFeatureEngine
    from qa_engine.features.streaming import stream_features
    from tests.factories import kline_stretches
    from tests.factories import real_bars

    feature_set = default_feature_set()
    result = {}
    stretches = [
        (name, interval, first, frame.height)
        for name, interval in PARITY_FILES
        for first, frame in kline_stretches(name)
    ]
    for series, interval, first, rows in stretches:
        name = f"{series} rows {first}..{first + rows}"
        bars = real_bars(series, rows, offset=first)
        step = interval_ns(interval)
        batch = compute_features_batch(bars, feature_set, step)
        engine = StreamingFeatureEngine(feature_set, step)
        columns = {c: bars.get_column(c).to_numpy() for c in bars.columns}
        streamed = stream_features(
            engine, *(columns[c] for c in ("ts", "open", "high", "low", "close", "volume"))
        )
        worst, worst_feature = 0.0, ""
        for index, feature in enumerate(feature_set.names):
            values = batch.get_column(feature).fill_null(np.nan).to_numpy()
            valid = ~np.isnan(values)
            if not np.array_equal(valid, ~np.isnan(streamed[:, index])):
                raise AssertionError(f"{name}: warm-up masks differ for {feature}")
            difference = float(np.max(np.abs(values[valid] - streamed[valid, index]))) if valid.any() else 0.0
            if difference > worst:
                worst, worst_feature = difference, feature
        result[f"{name}"] = {"bars": bars.height, "max_abs_diff": worst, "feature": worst_feature}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--stream-bars", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--skip-backtest", action="store_true")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--backtest-days", type=int, default=60)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--batch-child", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.batch_child:
        batch_child(arguments.batch_child, arguments.repeat)
        return
    sys.path.insert(0, str(ROOT))
    report: dict = {"load_average_before": os.getloadavg(), "cpus": os.cpu_count()}
    if not arguments.skip_batch:
        report["batch"] = run_batch(arguments.bars, arguments.repeat)
        batch = report["batch"]
        print(
            f"batch  default set ({batch['features']} features), {batch['bars']:,} bars: "
            f"best {min(batch['seconds']):.2f} s of {[round(s, 2) for s in batch['seconds']]} "
            f"(target <= 2 s), CPU {min(batch['cpu_seconds']):.2f} s (best), "
            f"peak RSS {batch['peak_rss_mb']:.0f} MB "
            f"(after loading the bars: {batch['rss_after_loading_mb']:.0f} MB)"
        )
    report["streaming_us_per_bar_cpu_wall"] = run_streaming(arguments.stream_bars, arguments.repeat)
    for name, (cpu, wall) in report["streaming_us_per_bar_cpu_wall"].items():
        print(f"stream {name:40s} {cpu:7.1f} us/bar CPU  {wall:7.1f} us/bar wall")
    if not arguments.skip_backtest:
        report["backtest"] = actor = run_backtest_actor(arguments.backtest_days, arguments.repeat)
        (ema_cpu, ema_wall), (both_cpu, both_wall) = actor["median_cpu_wall"].values()
        print(
            f"backtest EMA cross alone, {actor['bars']:,} bars: median {ema_cpu:.2f} s CPU, "
            f"{ema_wall:.2f} s wall; + FeatureActor(default): {both_cpu:.2f} s CPU, {both_wall:.2f} s wall"
        )
        print(
            "FeatureActor inside a backtest, us/bar over EMA alone: "
            f"{actor['us_per_bar_over_ema_cpu']:.1f} CPU, {actor['us_per_bar_over_ema_wall']:.1f} wall "
            f"(target <= 35; the streaming engine alone, this run: "
            f"{report['streaming_us_per_bar_cpu_wall']['default set'][0]:.1f} CPU)"
        )
        print(
            "  of which the engine's per-bar step, timed inside the backtest (one more run): "
            f"{actor['engine_update_us_per_bar_inside']:.1f} us/bar wall"
        )
    if not arguments.skip_parity:
        report["parity"] = run_parity()
        for name, item in report["parity"].items():
            print(
                f"parity {name:32s} {item['bars']:>8,} bars  max |batch - streaming| = "
                f"{item['max_abs_diff']:.3e} ({item['feature']})"
            )
    report["load_average_after"] = os.getloadavg()
    print(f"load average before {report['load_average_before']}, after {report['load_average_after']}")
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
