"""Peak memory of long backtests: the EMA cross over N SYNTHETIC 1m bars, loading the whole range at
once (Nautilus' one-shot run) against streaming it in windows (`engine.chunk_size_bars`), each run in a
fresh child process whose peak RSS (ru_maxrss) is read by the parent.

    .venv/bin/python bench/bench_memory.py --bars 1000000,5000000 [--chunk-bars 100000]
        [--modes bare,oneshot,chunked]

Data: a seeded geometric random walk of 1m bars from 2015-01-01 (NOT market data: only how memory
scales with the run length is measured), ingested with the project's ingest into a temporary catalog.
Three modes per size: "bare" is bare Nautilus (a BacktestEngine, the venue, the instrument, the bars
read at once, Nautilus' own example EMACross with the same periods: no actors, no report), "oneshot"
and "chunked" are this project's `run_backtest` (recorder, risk guard, report) without and with
`engine.chunk_size_bars`. Printed per size and mode: peak RSS (GiB), wall time, bars, fills; the ratios
to bare Nautilus's peak at the same size, and (chunked at the largest size) / (chunked at the
smallest). One-shot and chunked make the same orders and fills (the fill counts are printed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENT_ID = "BTCUSDT-PERP.BINANCE"
START = datetime(2015, 1, 1, tzinfo=UTC)


def synthetic_klines(count: int, path: Path) -> Path:
    rng = np.random.default_rng(20150101)
    close = np.round(40_000 * np.exp(np.cumsum(rng.normal(0, 0.0007, count))), 1)
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.round(np.abs(rng.normal(0, 0.0004, count)) * close, 1)
    start_ns = int(START.timestamp()) * 1_000_000_000
    pl.DataFrame(
        {
            "ts_open": pl.Series(np.arange(count, dtype=np.int64) * 60_000_000_000 + start_ns).cast(
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


def config(catalog: Path, bars: int, chunk_bars: int | None) -> dict:
    end = START + timedelta(minutes=bars)
    engine = {"purge_closed_orders_every_bars": 1000}
    if chunk_bars:
        engine["chunk_size_bars"] = chunk_bars
    return {
        "id": "bench-memory",
        "venues": [{"name": "BINANCE"}],
        "data": {
            "catalog": str(catalog),
            "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "1m"}],
            "start": START.isoformat(),
            "end": end.isoformat(),
        },
        "strategies": [
            {
                "name": "ema_cross",
                "params": {
                    "instrument_id": INSTRUMENT_ID,
                    "bar_type": f"{INSTRUMENT_ID}-1-MINUTE-LAST-EXTERNAL",
                    # slow EMAs: a few thousand round trips, so the run measures data, not orders
                    "fast_ema_period": 240,
                    "slow_ema_period": 720,
                },
            }
        ],
        "engine": engine,
    }


def bare_nautilus(catalog: Path, bars: int) -> dict:
    """Bare Nautilus: a BacktestEngine, the venue, the instrument, the bars read from the catalog at
    once and Nautilus' own example EMACross (same periods) - no actors, no recorder, no report."""
    from decimal import Decimal

    from nautilus_trader.backtest.engine import BacktestEngine
    from nautilus_trader.backtest.engine import BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.examples.strategies.ema_cross import EMACross
    from nautilus_trader.examples.strategies.ema_cross import EMACrossConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.data import BarType
    from nautilus_trader.model.enums import AccountType
    from nautilus_trader.model.enums import OmsType
    from nautilus_trader.model.identifiers import Venue
    from nautilus_trader.model.objects import Money
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    from qa_engine.plugins import load_instrument

    started = time.perf_counter()
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR")))
    engine.add_venue(
        venue=Venue("BINANCE"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(10_000, USDT)],
        base_currency=USDT,
    )
    instrument = load_instrument("binance-futures", "BTCUSDT")
    engine.add_instrument(instrument)
    bar_type = f"{INSTRUMENT_ID}-1-MINUTE-LAST-EXTERNAL"
    end = START + timedelta(minutes=bars)
    engine.add_data(ParquetDataCatalog(str(catalog)).bars(bar_types=[bar_type], start=START, end=end))
    engine.add_strategy(
        EMACross(
            EMACrossConfig(
                instrument_id=instrument.id,
                bar_type=BarType.from_str(bar_type),
                trade_size=Decimal("0.010"),
                fast_ema_period=240,
                slow_ema_period=720,
                request_bars=False,
                subscribe_trade_ticks=False,
            )
        )
    )
    engine.run()
    fills = sum(
        type(event).__name__ == "OrderFilled" for order in engine.cache.orders() for event in order.events
    )
    secs = time.perf_counter() - started
    engine.dispose()
    return {"bars": bars, "fills": fills, "secs": secs}


def child(spec: dict) -> None:
    """One run in this process; prints a JSON line with its peak RSS."""
    from qa_engine.backtest.runner import run_backtest
    from qa_engine.config.models import BacktestConfig

    if spec["mode"] == "bare":
        figures = bare_nautilus(Path(spec["catalog"]), spec["bars"])
    else:
        fills = {}

        def inspect(engine) -> None:
            recorder = next(a for a in engine.trader.actors() if type(a).__name__ == "RunRecorderActor")
            fills["n"] = len(recorder.fill_rows)

        run_dir = Path(tempfile.mkdtemp(prefix="bench-memory-run-"))
        outcome = run_backtest(
            BacktestConfig.model_validate(config(Path(spec["catalog"]), spec["bars"], spec["chunk"])),
            run_dir=run_dir,
            inspect=inspect,
        )
        shutil.rmtree(run_dir, ignore_errors=True)
        figures = {"bars": outcome.bars, "fills": fills.get("n", 0), "secs": outcome.wall_secs}
    figures["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("RESULT " + json.dumps(figures), flush=True)


def run_child(catalog: Path, bars: int, mode: str, chunk: int | None) -> dict:
    spec = json.dumps({"catalog": str(catalog), "bars": bars, "mode": mode, "chunk": chunk})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", spec], capture_output=True, text=True, env=env, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][7:]) | {"process_secs": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", default="1000000,5000000", help="run lengths, comma-separated")
    parser.add_argument("--chunk-bars", type=int, default=100_000)
    parser.add_argument("--modes", default="bare,oneshot,chunked")
    parser.add_argument("--keep", type=Path, help="work folder to keep (the catalog)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    sizes = sorted(int(item) for item in args.bars.split(","))
    modes = args.modes.split(",")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    catalog = work / "catalog"
    report: dict = {"load_average_start": os.getloadavg(), "chunk_bars": args.chunk_bars, "runs": {}}
    try:
        if not (catalog / "data" / "bar").is_dir():
            from qa_engine.data.ingest import ingest_klines
            from qa_engine.plugins import load_instrument

            started = time.perf_counter()
            klines = synthetic_klines(sizes[-1], work / "synthetic_1m.parquet")
            ingest_klines([klines], load_instrument("binance-futures", "BTCUSDT"), "1m", catalog)
            print(f"ingested {sizes[-1]:,} SYNTHETIC 1m bars in {time.perf_counter() - started:.0f} s")
        for size in sizes:
            for mode in modes:
                run = run_child(catalog, size, mode, args.chunk_bars if mode == "chunked" else None)
                report["runs"][f"{mode}_{size}"] = run
                print(
                    f"{mode:8s} {size:>10,} bars: peak RSS {run['peak_rss_gib']:.2f} GiB, "
                    f"run {run['secs']:.0f} s, "
                    f"{run['bars']:,} bars, {run['fills']:,} fills  (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
            runs = {mode: report["runs"][f"{mode}_{size}"] for mode in modes}
            if "bare" in runs:
                ratios = ", ".join(
                    f"{mode} {run['peak_rss_gib'] / runs['bare']['peak_rss_gib']:.2f}"
                    for mode, run in runs.items()
                    if mode != "bare"
                )
                print(f"  {size:,} bars: peak RSS / bare Nautilus's: {ratios} (target <= 1.00)")
        if "chunked" in modes and len(sizes) > 1:
            small, large = report["runs"][f"chunked_{sizes[0]}"], report["runs"][f"chunked_{sizes[-1]}"]
            print(
                f"chunked peak RSS at {sizes[-1]:,} / at {sizes[0]:,} bars: "
                f"{large['peak_rss_gib'] / small['peak_rss_gib']:.2f} (flat = 1.00)"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    report["load_average_end"] = os.getloadavg()
    print(f"load average at start {report['load_average_start']}, at end {report['load_average_end']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
