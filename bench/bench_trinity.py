"""Trinity throughput: the EMA-cross baseline, TrinityStrategy with streamed inference (FeatureActors +
OracleActor + GuardianActor + the Strategist in the strategy) and with replayed signals (records built
by `qa_engine.replay` and read from the catalog), all on the same bars in one run.

    .venv/bin/python bench/bench_trinity.py                       # everything (long: ~30-60 min here)
    .venv/bin/python bench/bench_trinity.py --only ema,streamed,replayed --days 30       # quick
    .venv/bin/python bench/bench_trinity.py --only scale --scale-bars 20000,100000       # quick scale
    .venv/bin/python bench/bench_trinity.py --only anatomy --days 31 --repeat 3   # where streamed time goes

Data: ONE YEAR of real Binance USD-M BTCUSDT 5m bars (data/klines/binance_futures_BTCUSDT_5m.parquet,
bars opening 2025-01-01 .. 2025-12-31, see its PROVENANCE.md), ingested into a temporary catalog with
the project's own ingest (`qa_engine.data.ingest.ingest_klines`). The scale part uses a SYNTHETIC seeded
geometric random walk of 5m bars (not market data: there is no real 1M-bar 5m series), ingested the
same way, because only the engine's scaling is measured there.

What is printed:
- bars/s of each run: bars / the wall time of `BacktestNode.run` (catalog reads + engine), median of
  `--repeat` runs; the signals build time of the replayed run is reported on its own line;
- streamed: seconds inside raw onnxruntime calls (Oracle + Guardian sessions, timed by the actors'
  `TimedSession`, + the Strategist's `session.run`, timed by `StrategistPolicy`) against the rest of the
  run; target: the run costs at most 50% on top of its raw onnxruntime time, i.e. rest / ORT <= 0.5;
- per-bar decision latency, in process: from the moment bar t reaches the message bus (a
  highest-priority subscriber stamps it) to the moment the strategy publishes its Action for t (the
  end of its decision, orders included); p50 / p99 over every decided bar; target p99 <= 1 ms at load 1
  (issue 19; the load average at the end of each run is printed with it);
- scale: bars/s of the replayed Trinity and of the EMA cross on the first 100k and on 1M bars of the
  same synthetic series, and the ratio; target: throughput at 1M >= 0.8 x that at 100k.
- anatomy (--only anatomy): the streamed run taken apart, in interleaved rounds of the EMA run, the
  streamed run, and the streamed run with onnxruntime answered from a cache (each session's first output
  returned at once: everything but the models' arithmetic), plus each session's calls timed alone in a
  loop on the inputs the run gave it. It prints what the rest/ORT target leaves room for: the EMA
  engine's share, the features + model actors + strategy Python, and how much slower the rest runs when
  the models run between its steps (the two evict each other's caches).
With --repeat N the real-bar cases run in N interleaved rounds (ema, streamed, replayed, ema, ...) and
each reports its median run.
Ratios are against baselines measured in the same run (EMA cross; the same strategy at 100k bars).

Trinity runs with the `full` preset and, unless --skip-idle-inference, `skip_idle_inference = False`:
the Strategist runs on every bar. With the committed Oracle the forecast gate (|median| > round-trip
cost) rarely or never passes, and the default (skipping the Strategist while flat and no entry can
pass) would then never call it; every-bar inference is the worst case, and the one the 1 ms target is
about. Artifacts: --oracle / --guardian / --strategist (defaults artifacts/<name>); a Guardian or
Strategist artifact that does not exist yet is replaced by a tiny one trained here on real bars (the
tests' builders), which the output says (its onnxruntime cost is then not the real model's).

The machine is shared (2 cores, other jobs): the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import DataType
from nautilus_trader.model.identifiers import InstrumentId

from qa_engine.backtest.runner import run_backtest
from qa_engine.config.models import BacktestConfig
from qa_engine.signals import Action
from qa_engine.signals import subscribe_bus

ROOT = Path(__file__).resolve().parents[1]
REAL_KLINES = ROOT / "data" / "klines" / "binance_futures_BTCUSDT_5m.parquet"
INSTRUMENT_ID = "BTCUSDT-PERP.BINANCE"
BAR_TYPE = f"{INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL"
STEP = timedelta(minutes=5)
YEAR_START = date(2025, 1, 1)
SYNTHETIC_START = datetime(2015, 1, 1, tzinfo=UTC)
CLOCK_PATH = "bench_trinity:DecisionClockActor"  # this file, imported by the engine by module name


# ---- in-process decision latency ------------------------------------------------------------------


class DecisionClockConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType


class DecisionClockActor(Actor):
    """Stamps each bar as it reaches the message bus (subscribed at the highest priority, so before any
    other handler) and, when the strategy publishes its Action for that bar, records the elapsed time."""

    def __init__(self, config: DecisionClockConfig) -> None:
        super().__init__(config)
        self.arrivals: dict[int, float] = {}
        self.latencies_secs: list[float] = []

    def on_start(self) -> None:
        self.msgbus.subscribe(topic=f"data.bars.{self.config.bar_type}", handler=self._stamp, priority=1_000)
        subscribe_bus(self, DataType(Action, metadata={"instrument_id": self.config.instrument_id.value}))

    def _stamp(self, bar) -> None:
        self.arrivals[bar.ts_event] = time.perf_counter()

    def on_data(self, data) -> None:
        if isinstance(data, Action):
            started = self.arrivals.pop(data.ts_event, None)
            if started is not None:
                self.latencies_secs.append(time.perf_counter() - started)

    def on_stop(self) -> None:
        """Records stay in memory for the bench."""


# ---- data --------------------------------------------------------------------------------------


def ingest(klines: Path, catalog: Path, start: date | None = None, end: date | None = None) -> int:
    from qa_engine.data.ingest import ingest_klines
    from qa_engine.plugins import load_instrument

    result = ingest_klines(
        [klines], load_instrument("binance-futures", "BTCUSDT"), "5m", catalog, start=start, end=end
    )
    return result.bars_total


def synthetic_klines(count: int, path: Path) -> Path:
    """A seeded geometric random walk of `count` 5m bars from 2015-01-01 (NOT market data)."""
    rng = np.random.default_rng(20150101)
    close = np.round(40_000 * np.exp(np.cumsum(rng.normal(0, 0.0015, count))), 1)
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.round(np.abs(rng.normal(0, 0.0008, count)) * close, 1)
    start_ns = int(SYNTHETIC_START.timestamp()) * 1_000_000_000
    pl.DataFrame(
        {
            "ts_open": pl.Series(np.arange(count, dtype=np.int64) * 300_000_000_000 + start_ns).cast(
                pl.Datetime("ns", "UTC")
            ),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.maximum(np.minimum(open_, close) - spread, 0.1),
            "close": close,
            "volume": np.round(np.abs(rng.normal(50, 20, count)) + 0.001, 3),
        }
    ).write_parquet(path)
    return path


# ---- artifacts -------------------------------------------------------------------------------------


@dataclass
class Artifacts:
    oracle: Path
    guardian: Path
    strategist: Path
    notes: list[str] = field(default_factory=list)


def resolve_artifacts(args: argparse.Namespace, work: Path) -> Artifacts:
    """The given artifacts; a missing Guardian / Strategist is replaced by a tiny one (tests' builders)."""
    import sys

    sys.path.insert(0, str(ROOT))  # the tests' builders (tests/ is a package at the repository root)
    notes = []
    guardian, strategist = args.guardian, args.strategist
    if not (guardian / "manifest.json").is_file():
        import pytest

        from tests.unit.actors.harness import tiny_guardian_artifact

        class Factory:
            def getbasetemp(self) -> Path:
                return work

            def mktemp(self, name: str) -> Path:
                return Path(tempfile.mkdtemp(prefix=name, dir=work))

        try:
            guardian = tiny_guardian_artifact(Factory())
        except pytest.skip.Exception as exc:
            raise SystemExit(f"no Guardian artifact and none can be trained: {exc}") from None
        notes.append(f"{args.guardian} missing: a TINY Guardian trained here stands in ({guardian})")
    if not (strategist / "manifest.json").is_file():
        from tests.unit.inference.strategist_artifact import tiny_strategist_artifact

        strategist = tiny_strategist_artifact()
        notes.append(f"{args.strategist} missing: a TINY Strategist trained here stands in ({strategist})")
    return Artifacts(args.oracle, guardian, strategist, notes)


# ---- runs --------------------------------------------------------------------------------------


def component(name: str, **params) -> dict:
    return {"name": name, "params": {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE, **params}}


def backtest_config(
    catalog: Path, start: datetime, end: datetime, strategy: dict, actors: list[dict], signals: list[dict]
) -> BacktestConfig:
    return BacktestConfig.model_validate(
        {
            "id": "bench-trinity",
            "venues": [{"name": "BINANCE"}],
            "data": {
                "catalog": str(catalog),
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "5m"}],
                "start": start.isoformat(),
                "end": end.isoformat(),
                "signals": signals,
            },
            "strategies": [strategy],
            "actors": actors,
        }
    )


@dataclass
class RunFigures:
    bars: int
    wall_secs: float
    onnx_secs: float = 0.0
    onnx_parts: dict[str, float] = field(default_factory=dict)
    latencies_secs: list[float] = field(default_factory=list)
    orders: int = 0
    fills: int = 0
    strategist_calls: int = 0
    load_average: float = float("nan")  # 1-minute load average at the end of the run

    @property
    def bars_per_sec(self) -> float:
        return self.bars / self.wall_secs


def timed_run(config: BacktestConfig, work: Path) -> RunFigures:
    figures: dict = {}

    def inspect(engine) -> None:
        parts = {}
        for item in [*engine.trader.actors(), *engine.trader.strategies()]:
            name = type(item).__name__
            if hasattr(item, "onnx_secs") and name in ("OracleActor", "GuardianActor"):
                parts[name] = item.onnx_secs
            if name == "TrinityStrategy" and item.policy is not None:
                parts["Strategist"] = item.policy.inference_secs
                figures["strategist_calls"] = item.policy.calls
            if name == "DecisionClockActor":
                figures["latencies"] = list(item.latencies_secs)
            if name == "RunRecorderActor":
                figures["fills"] = len(item.fill_rows)
        figures["parts"] = parts
        figures["orders"] = len(engine.cache.orders())

    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    gc.collect()
    outcome = run_backtest(config, run_dir=run_dir, inspect=inspect)
    shutil.rmtree(run_dir, ignore_errors=True)
    parts = figures.get("parts", {})
    return RunFigures(
        bars=outcome.bars,
        wall_secs=outcome.wall_secs,
        onnx_secs=sum(parts.values()),
        onnx_parts=parts,
        latencies_secs=figures.get("latencies", []),
        orders=figures.get("orders", 0),
        fills=figures.get("fills", 0),
        strategist_calls=figures.get("strategist_calls", 0),
        load_average=os.getloadavg()[0],
    )


def interleaved_median_runs(
    configs: dict[str, BacktestConfig], repeat: int, work: Path, contexts: dict | None = None
) -> dict[str, RunFigures]:
    """`repeat` rounds of one run per case (ema, streamed, replayed, ...), so that the load of a shared
    machine drifts over every case alike; per case, the run of median wall time. A case named in
    `contexts` runs inside that context manager (the anatomy's cached onnxruntime)."""
    contexts = contexts or {}
    runs: dict[str, list[RunFigures]] = {name: [] for name in configs}
    for _ in range(repeat):
        for name, config in configs.items():
            with contexts.get(name) or nullcontext():
                runs[name].append(timed_run(config, work))
    return {
        name: sorted(items, key=lambda run: run.wall_secs)[len(items) // 2] for name, items in runs.items()
    }


class CachedOnnx:
    """While active, every onnxruntime `InferenceSession.run` returns that session's first output (computed
    once) and counts the call; the first feed of each session is kept, to time the model alone later."""

    def __init__(self) -> None:
        self.first: dict[int, tuple[str, list | None, dict, object]] = {}  # id -> (path, names, feed, out)
        self.calls: dict[int, int] = {}
        self._original = None

    def __enter__(self) -> CachedOnnx:
        import onnxruntime as ort

        original = self._original = ort.InferenceSession.run
        first, calls = self.first, self.calls
        first.clear()
        calls.clear()

        def run(session, output_names, input_feed, run_options=None):
            key = id(session)
            if key not in first:
                feed = {name: np.array(value, copy=True) for name, value in input_feed.items()}
                output = original(session, output_names, input_feed, run_options)
                first[key] = (session._model_path, output_names, feed, output)
            calls[key] = calls.get(key, 0) + 1
            return first[key][3]

        ort.InferenceSession.run = run
        return self

    def __exit__(self, *exc) -> None:
        import onnxruntime as ort

        ort.InferenceSession.run = self._original

    def alone_secs(self, rounds: int = 3) -> float:
        """Seconds the run's calls take with each model alone: per session, its first feed run in a loop
        (after a warm-up), the median of `rounds` loops' per-call time x the calls the run made."""
        from qa_engine.inference.artifact import cpu_session

        total = 0.0
        for key, (path, names, feed, _) in self.first.items():
            session = cpu_session(Path(path))
            for _ in range(20):
                session.run(names, feed)
            loop = max(50, min(self.calls[key], 2000))
            per_call = []
            for _ in range(rounds):
                started = time.perf_counter()
                for _ in range(loop):
                    session.run(names, feed)
                per_call.append((time.perf_counter() - started) / loop)
            total += statistics.median(per_call) * self.calls[key]
        return total


def print_anatomy(runs: dict[str, RunFigures], cached: CachedOnnx, report: dict) -> None:
    """The streamed run taken apart from the rounds of `ema`, `streamed` and `cached` (the streamed run
    with onnxruntime answered by `cached`), with each session then timed alone."""
    ema_secs, streamed, cached_run = runs["ema"].wall_secs, runs["streamed"], runs["cached"]
    onnx, rest = streamed.onnx_secs, streamed.wall_secs - streamed.onnx_secs
    python = cached_run.wall_secs - ema_secs
    interference = rest - cached_run.wall_secs
    alone = cached.alone_secs()
    figures = {
        "ema_secs": ema_secs,
        "streamed_secs": streamed.wall_secs,
        "onnx_in_run_secs": onnx,
        "rest_secs": rest,
        "cached_onnx_secs": cached_run.wall_secs,
        "actors_python_secs": python,
        "interference_secs": interference,
        "onnx_alone_secs": alone,
        "floor_ratio_no_interference": (cached_run.wall_secs + alone) / alone,
        "load_average": streamed.load_average,
    }
    report["anatomy"] = figures
    bars = streamed.bars

    def per_bar(secs: float) -> str:
        return f"{secs / bars * 1e6:5.0f} us/bar"

    print(f"anatomy of the streamed run ({bars:,} bars; medians; load {streamed.load_average:.1f}):")
    print(f"  EMA cross (Nautilus engine, recorder, same bars)      {ema_secs:5.2f} s {per_bar(ema_secs)}")
    print(
        f"  streamed, onnxruntime answered from a cache           {cached_run.wall_secs:5.2f} s "
        f"{per_bar(cached_run.wall_secs)} (features, model actors, Trinity and their messages: "
        f"+{python:.2f} s over EMA; orders {cached_run.orders})"
    )
    print(
        f"  streamed                                              {streamed.wall_secs:5.2f} s "
        f"{per_bar(streamed.wall_secs)} = ORT {onnx:.2f} s + rest {rest:.2f} s (orders {streamed.orders})"
    )
    print(
        f"  the rest runs {interference:.2f} s slower when the models run between its steps; ORT takes "
        f"{onnx:.2f} s in the run, {alone:.2f} s alone (the same calls in a loop)"
    )
    print(
        f"  rest/ORT {rest / onnx:.2f} (target <= 0.50); the EMA engine alone is "
        f"{ema_secs / onnx:.2f} x ORT; with no interference at all (cached run + ORT alone)"
        f" wall/ORT would be "
        f"{figures['floor_ratio_no_interference']:.2f}"
    )


def trinity(args: argparse.Namespace, artifacts: Artifacts) -> dict:
    return component(
        "trinity",
        strategist_artifact=str(artifacts.strategist),
        preset="full",
        skip_idle_inference=args.skip_idle_inference,
    )


def ema() -> dict:
    return component("ema_cross")


def clock() -> dict:
    return {"name": CLOCK_PATH, "params": {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE}}


def streamed_actors(artifacts: Artifacts) -> list[dict]:
    """The FeatureActor of the Strategist's fitted set, the two model actors, the decision clock.

    A model actor whose features are all in the Strategist's set takes them from its vectors
    (`features_from`, as configs/backtest/trinity.toml does); one whose features are not gets a
    FeatureActor of its own set."""
    from actors.model_actor import source_columns
    from qa_engine.errors import ConfigError
    from qa_engine.inference.artifact import load_artifact

    source = load_artifact(artifacts.strategist).feature_set()
    features = [component("features", artifact=str(artifacts.strategist), component_id="FeatureActor-0")]
    models = []
    for name, folder in (("oracle", artifacts.oracle), ("guardian", artifacts.guardian)):
        try:
            source_columns(load_artifact(folder).feature_set(), source, str(folder))
        except ConfigError:
            index = len(features)
            features.append(component("features", artifact=str(folder), component_id=f"FeatureActor-{index}"))
            models.append(component(name, artifact=str(folder)))
        else:
            models.append(component(name, artifact=str(folder), features_from=str(artifacts.strategist)))
    return [clock(), *features, *models]


def replay_signals(artifacts: Artifacts) -> list[dict]:
    from qa_engine.inference.artifact import load_artifact

    strategist_hash = load_artifact(artifacts.strategist).manifest.feature_set.hash
    return [
        {"type": "FeatureVector", "instrument_id": INSTRUMENT_ID, "feature_set_hash": strategist_hash},
        {"type": "Forecast", "instrument_id": INSTRUMENT_ID},
        {"type": "Regime", "instrument_id": INSTRUMENT_ID},
    ]


def build_signals_timed(catalog: Path, artifacts: Artifacts) -> tuple[float, dict]:
    from qa_engine.replay.build import SignalsRequest
    from qa_engine.replay.build import build_signals

    started = time.perf_counter()
    result = build_signals(
        SignalsRequest(
            catalog=catalog,
            instrument_id=INSTRUMENT_ID,
            interval="5m",
            oracle=artifacts.oracle,
            guardian=artifacts.guardian,
            strategist=artifacts.strategist,
            replace=True,
        )
    )
    return time.perf_counter() - started, {"stage_secs": result.secs, "records": result.records}


def percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q)) if values else float("nan")


# ---- the parts -------------------------------------------------------------------------------------


def run_line(name: str, run: RunFigures) -> str:
    line = f"{name:30s} {run.bars:>10,} bars {run.wall_secs:8.1f} s {run.bars_per_sec:9,.0f} bars/s"
    if name.startswith("Trinity"):
        line += f"  orders {run.orders:,}, fills {run.fills:,}, Strategist calls {run.strategist_calls:,}"
    return line


def latency_line(run: RunFigures) -> str:
    p50, p99 = percentile_ms(run.latencies_secs, 50), percentile_ms(run.latencies_secs, 99)
    return (
        f"  decision latency p50 {p50:.3f} ms, p99 {p99:.3f} ms over {len(run.latencies_secs):,} bars "
        f"(load average {run.load_average:.1f} at the end of that run)"
    )


def trinity_figures(run: RunFigures) -> dict:
    return {
        "bars": run.bars,
        "secs": run.wall_secs,
        "bars_per_sec": run.bars_per_sec,
        "onnx_secs": run.onnx_secs,
        "onnx_parts": run.onnx_parts,
        "latency_p50_ms": percentile_ms(run.latencies_secs, 50),
        "latency_p99_ms": percentile_ms(run.latencies_secs, 99),
        "decisions_timed": len(run.latencies_secs),
        "orders": run.orders,
        "fills": run.fills,
        "strategist_calls": run.strategist_calls,
    }


def real_year_parts(args: argparse.Namespace, artifacts: Artifacts, work: Path, report: dict) -> None:
    catalog = work / "year"
    end_day = YEAR_START + timedelta(days=args.days - 1)
    started = time.perf_counter()
    bars = ingest(REAL_KLINES, catalog, YEAR_START, end_day)
    secs = time.perf_counter() - started
    print(f"ingested {bars:,} real 5m bars (opening {YEAR_START} .. {end_day}) in {secs:.1f} s")
    start = datetime.combine(YEAR_START, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(end_day, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
    configs: dict[str, BacktestConfig] = {}
    if "ema" in args.only:
        configs["ema"] = backtest_config(catalog, start, end, ema(), [], [])
    if "streamed" in args.only:
        configs["streamed"] = backtest_config(
            catalog, start, end, trinity(args, artifacts), streamed_actors(artifacts), []
        )
    if "replayed" in args.only:
        build_secs, build = build_signals_timed(catalog, artifacts)
        report["signals_build"] = {"secs": build_secs, **build}
        stages = ", ".join(f"{stage} {secs:.1f}" for stage, secs in build["stage_secs"].items())
        print(f"signals build (separate): {build_secs:.1f} s ({stages})")
        signals = replay_signals(artifacts)
        configs["replayed"] = backtest_config(
            catalog, start, end, trinity(args, artifacts), [clock()], signals
        )
    cached = CachedOnnx()
    if "anatomy" in args.only:  # its EMA and streamed runs are the table's too: no case runs twice
        configs.setdefault("ema", backtest_config(catalog, start, end, ema(), [], []))
        configs.setdefault(
            "streamed",
            backtest_config(catalog, start, end, trinity(args, artifacts), streamed_actors(artifacts), []),
        )
        configs["cached"] = configs["streamed"]
    runs = interleaved_median_runs(configs, args.repeat, work, contexts={"cached": cached})
    if "anatomy" in args.only:
        print_anatomy(runs, cached, report)
    if "ema" in runs:
        run = runs["ema"]
        report["ema"] = {"bars": run.bars, "secs": run.wall_secs, "bars_per_sec": run.bars_per_sec}
        print(run_line("EMA cross 12/26", run))
    if "streamed" in runs:
        run = runs["streamed"]
        rest = run.wall_secs - run.onnx_secs
        report["streamed"] = trinity_figures(run) | {"rest_over_onnx": rest / max(run.onnx_secs, 1e-9)}
        print(run_line("Trinity streamed", run))
        parts = ", ".join(f"{name} {secs:.1f} s" for name, secs in run.onnx_parts.items())
        share = 100 * run.onnx_secs / run.wall_secs
        print(f"  raw onnxruntime {run.onnx_secs:.1f} s = {share:.0f}% of the run ({parts})")
        print(f"  the rest {rest:.1f} s = {rest / max(run.onnx_secs, 1e-9):.2f} x ORT (target <= 0.50)")
        print(latency_line(run) + " (target p99 <= 1 ms at load 1)")
    if "replayed" in runs:
        run = runs["replayed"]
        report["replayed"] = trinity_figures(run)
        print(run_line("Trinity replayed", run))
        print(latency_line(run))


def scale_part(args: argparse.Namespace, artifacts: Artifacts, work: Path, report: dict) -> None:
    sizes = sorted(args.scale_bars)
    catalog = work / "synthetic"
    klines = synthetic_klines(sizes[-1], work / "synthetic_5m.parquet")
    started = time.perf_counter()
    ingest(klines, catalog)
    print(f"ingested {sizes[-1]:,} SYNTHETIC 5m bars (random walk) in {time.perf_counter() - started:.1f} s")
    build_secs, build = build_signals_timed(catalog, artifacts)
    report["scale_signals_build"] = {"secs": build_secs, **build}
    print(f"signals build over {sizes[-1]:,} bars: {build_secs:.1f} s")
    # Sizes run small -> large -> small again: the machine's load drifts over a long run, and the
    # smallest size, measured on both sides, shows how much (its two figures are averaged).
    order = [*sizes, *sizes[-2::-1]]
    results: dict[str, dict[int, list[float]]] = {"ema": {}, "replayed": {}}
    start = SYNTHETIC_START
    for size in order:
        end = start + size * STEP
        for name, strategy, signals in (
            ("ema", ema(), []),
            ("replayed", trinity(args, artifacts), replay_signals(artifacts)),
        ):
            run = timed_run(backtest_config(catalog, start, end, strategy, [], signals), work)
            results[name].setdefault(size, []).append(run.bars_per_sec)
            print(run_line(f"scale {name}", run) + f"  (load average {os.getloadavg()[0]:.1f})")
    report["scale"] = {name: {str(k): v for k, v in values.items()} for name, values in results.items()}
    for name, values in results.items():
        ratio = statistics.mean(values[sizes[-1]]) / statistics.mean(values[sizes[0]])
        report["scale"][f"{name}_ratio"] = ratio
        runs = ", ".join(f"{value:,.0f}" for value in values[sizes[0]])
        print(
            f"scale {name}: bars/s at {sizes[-1]:,} / at {sizes[0]:,} (mean of {runs}) = {ratio:.2f} "
            "(target >= 0.80)"
        )


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="Trinity throughput (bars/s = bars / BacktestNode.run wall time)", title_justify="left"
    )
    for column in ("run", "bars", "secs", "bars/s", "vs EMA cross", "notes"):
        table.add_column(column)
    base = report.get("ema", {}).get("bars_per_sec")
    for name in ("ema", "streamed", "replayed"):
        if name not in report:
            continue
        item = report[name]
        ratio = f"{item['bars_per_sec'] / base:.3f}x" if base else "-"
        notes = ""
        if name == "streamed":
            notes = (
                f"ORT {item['onnx_secs']:.1f} s, rest/ORT {item['rest_over_onnx']:.2f}; "
                f"latency p50/p99 {item['latency_p50_ms']:.2f}/{item['latency_p99_ms']:.2f} ms"
            )
        if name == "replayed":
            notes = (
                f"+ build {report['signals_build']['secs']:.1f} s; latency p50/p99 "
                f"{item['latency_p50_ms']:.2f}/{item['latency_p99_ms']:.2f} ms"
            )
            if "streamed" in report:
                notes += f"; {item['bars_per_sec'] / report['streamed']['bars_per_sec']:.1f}x streamed"
        table.add_row(
            name, f"{item['bars']:,}", f"{item['secs']:.1f}", f"{item['bars_per_sec']:,.0f}", ratio, notes
        )
    if "scale" in report:
        for name in ("ema", "replayed"):
            values = report["scale"][name]
            for size, runs in values.items():
                figures = " / ".join(f"{value:,.0f}" for value in runs)
                table.add_row(f"scale {name}", f"{int(size):,}", "", figures, "", "synthetic")
            sizes = sorted(int(size) for size in values)
            ratio = report["scale"][f"{name}_ratio"]
            table.add_row(
                f"scale {name}", "", "", "", "", f"bars/s {sizes[-1]:,} / {sizes[0]:,}: {ratio:.2f}"
            )
    Console(width=200).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="ema,streamed,replayed,scale", help="parts to run, comma-separated")
    parser.add_argument("--days", type=int, default=365, help="days of the real year to use (quick runs: 30)")
    parser.add_argument("--scale-bars", default="100000,1000000", help="synthetic sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (median)")
    parser.add_argument("--oracle", type=Path, default=ROOT / "artifacts" / "oracle")
    parser.add_argument("--guardian", type=Path, default=ROOT / "artifacts" / "guardian")
    parser.add_argument("--strategist", type=Path, default=ROOT / "artifacts" / "strategist")
    parser.add_argument(
        "--skip-idle-inference",
        action="store_true",
        help="the strategy's default: no Strategist call while flat when no entry can pass",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--keep", type=Path, help="work folder to keep (catalogs); default: a temp folder")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    args.scale_bars = [int(item) for item in args.scale_bars.split(",")]

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-trinity-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "load_average_start": os.getloadavg()}
    started = time.perf_counter()
    try:
        artifacts = resolve_artifacts(args, work)
        for note in artifacts.notes:
            print(f"NOTE: {note}")
        report["artifacts"] = {
            "oracle": str(artifacts.oracle),
            "guardian": str(artifacts.guardian),
            "strategist": str(artifacts.strategist),
            "notes": artifacts.notes,
        }
        if args.only & {"ema", "streamed", "replayed", "anatomy"}:
            real_year_parts(args, artifacts, work, report)
        if "scale" in args.only:
            scale_part(args, artifacts, work, report)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    report["load_average_end"] = os.getloadavg()
    report["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    report["total_secs"] = time.perf_counter() - started
    if report.keys() & {"ema", "streamed", "replayed", "scale"}:
        print_table(report)
    print(
        f"load average at start {report['load_average_start']}, at end {report['load_average_end']}; "
        f"total {report['total_secs'] / 60:.1f} min; peak RSS {report['peak_rss_gib']:.1f} GiB"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
