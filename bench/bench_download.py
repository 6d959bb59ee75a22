"""Download throughput and memory: `qa data download` against the loopback venue (tests/loopback_venue.py).

1. Download, real bars: the whole data/klines/binance_futures_BTCUSDT_5m.parquet (119,724 bars of 5m,
   gap-free) through the real python-binance client; bars/s end to end (HTTP + parse + validate + write),
   and the fetch part alone.
2. Catalog writes: the download's commit path (validate + encode + add one file per 30,000-bar chunk + final
   compaction) on the same bars, against the baseline measured in the same run: a plain `ingest_klines` of
   the same bars from one Parquet file (read + validate + encode + write).
3. One year of 1m bars of one symbol (525,600 bars, SYNTHETIC: a seeded random walk, because the repository
   holds no year of real 1m bars): `qa data download` as a subprocess; wall time and the subprocess' peak RSS.

    PYTHONPATH=. .venv/bin/python bench/bench_download.py [--repeat 3] [--year-days 365]

(PYTHONPATH=. because the loopback venue lives in tests/.)
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import structlog
from nautilus_trader.model.instruments import Instrument

from adapters.binance.historical import BinanceHistoricalVenue
from qa_engine.data.download import CatalogBarStore
from qa_engine.data.download import VenueCaller
from qa_engine.data.download import download_klines
from qa_engine.data.download import resolve_instruments
from qa_engine.data.ingest import catalog_writer
from qa_engine.data.ingest import encode_bars
from qa_engine.data.ingest import ingest_klines
from qa_engine.data.intervals import KlineInterval
from qa_engine.data.markets import Market
from qa_engine.data.validation import validate_klines
from qa_engine.plugins import load_instrument
from tests.loopback_venue import LoopbackVenue

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real bars: Binance USD-M BTCUSDT 5m, 2024-12-31 .. 2026-02-19 (data/klines/PROVENANCE.md).
REAL_KLINES = REPO_ROOT / "data" / "klines" / "binance_futures_BTCUSDT_5m.parquet"
REAL_KEY = ("binance-futures", "BTCUSDT", "5m")
KEY = ("binance-futures", "BTCUSDT", "1m")  # the synthetic year
CHUNK_BARS = 30_000  # 20 pages of 1,500: the default commit size


def synthetic_year(days: int) -> pl.DataFrame:
    """A seeded random walk of 1m bars from 2024-01-01 (NOT market data): prices at 0.1, volume at 0.001."""
    rng = np.random.default_rng(20240101)
    count = days * 1_440
    close = np.round(40_000 + np.cumsum(rng.normal(0, 8, count)), 1)
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.round(np.abs(rng.normal(0, 6, count)), 1)
    start_ns = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
    return pl.DataFrame(
        {
            "ts_open": pl.Series(np.arange(count, dtype=np.int64) * 60_000_000_000 + start_ns).cast(
                pl.Datetime("ns", "UTC")
            ),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": np.round(np.abs(rng.normal(50, 20, count)), 3),
        }
    )


def bench_download(bars: pl.DataFrame, repeat: int) -> None:
    first, last = bars["ts_open"][0].date(), bars["ts_open"][-1].date()
    totals, fetches, writes = [], [], []
    with LoopbackVenue({REAL_KEY: bars}) as server:
        venue = BinanceHistoricalVenue(Market.BINANCE_FUTURES, server.base_url)
        instrument = resolve_instruments(venue, ["BTCUSDT"])["BTCUSDT"]
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as catalog:
                result = download_klines(
                    venue, instrument, "BTCUSDT", REAL_KEY[2], first, last, catalog, caller=VenueCaller()
                )
                totals.append(result.secs)
                fetches.append(result.fetch_secs)
                writes.append(result.write_secs)
    n = result.bars_written
    print(
        f"download (loopback, python-binance, {n:,} real bars, {result.pages} pages): "
        f"end to end {n / statistics.median(totals):,.0f} bars/s ({statistics.median(totals):.2f} s); "
        f"fetch+parse {n / statistics.median(fetches):,.0f} bars/s; "
        f"commits {n / statistics.median(writes):,.0f} bars/s"
    )


def bench_writes(bars: pl.DataFrame, instrument: Instrument, repeat: int) -> None:
    interval = KlineInterval.MINUTE_5  # the real 5m bars of bench_download
    ours, baseline = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as catalog:
            started = time.perf_counter()
            with catalog_writer(catalog) as root:
                store = CatalogBarStore(root, instrument, interval)
                for offset in range(0, bars.height, CHUNK_BARS):
                    chunk = bars.slice(offset, CHUNK_BARS)
                    validate_klines(
                        chunk,
                        interval,
                        price_precision=instrument.price_precision,
                        size_precision=instrument.size_precision,
                    )
                    store.add(encode_bars(chunk, instrument, interval))
                store.compact()
            ours.append(time.perf_counter() - started)
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / "bars.parquet"
            bars.write_parquet(source)
            started = time.perf_counter()
            ingest_klines([source], instrument, interval, Path(folder) / "catalog")
            baseline.append(time.perf_counter() - started)
    n, ours_secs, baseline_secs = bars.height, statistics.median(ours), statistics.median(baseline)
    print(
        f"catalog writes ({n:,} bars): download commit path {n / ours_secs:,.0f} bars/s "
        f"({ours_secs:.3f} s, {CHUNK_BARS:,}-bar chunks + compaction); "
        f"baseline plain ingest_klines {n / baseline_secs:,.0f} bars/s ({baseline_secs:.3f} s)"
    )


def bench_year(days: int) -> None:
    bars = synthetic_year(days)
    start, end = bars["ts_open"][0].date(), bars["ts_open"][-1].date()
    with LoopbackVenue({KEY: bars}) as server, tempfile.TemporaryDirectory() as catalog:
        command = [
            sys.executable, "-m", "qa_engine.cli.main", "data", "download", "--venue", "binance-futures",
            "--symbols", "BTCUSDT", "--interval", "1m", "--start", start.isoformat(),
            "--end", end.isoformat(), "--catalog", catalog, "--base-url", server.base_url, "--json-logs",
        ]  # fmt: skip
        started = time.perf_counter()
        finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True)
        secs = time.perf_counter() - started
        if finished.returncode != 0:
            raise SystemExit(finished.stderr.decode()[-3000:])
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"one year of 1m bars, SYNTHETIC ({bars.height:,} bars, {days} days): `qa data download` subprocess "
        f"{secs:.1f} s wall incl. start-up ({bars.height / secs:,.0f} bars/s), peak RSS {peak_mib:,.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--year-days", type=int, default=365)
    arguments = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    bars = pl.read_parquet(REAL_KLINES)
    bench_download(bars, arguments.repeat)
    bench_writes(bars, load_instrument("binance-futures", "BTCUSDT"), arguments.repeat)
    if arguments.year_days:
        bench_year(arguments.year_days)


if __name__ == "__main__":
    main()
