"""Catalog ingest throughput: bars/s of `ingest_klines` on the whole real files of data/klines, a fresh
catalog each run (read + validate + encode + write), then a re-ingest of the same file (merge, no write),
and the Nautilus object path (Bar.from_raw_arrays_to_list + Arrow serializer) for comparison.

    .venv/bin/python bench/bench_ingest.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import structlog
from nautilus_trader.model.data import BarType

from qa_engine.data.ingest import bars_table_reference
from qa_engine.data.ingest import ingest_klines
from qa_engine.data.intervals import KlineInterval
from qa_engine.data.intervals import bar_type_string
from qa_engine.data.klines import read_klines
from qa_engine.plugins import load_instrument

KLINES = Path(__file__).resolve().parents[1] / "data" / "klines"  # see data/klines/PROVENANCE.md
CASES = [
    ("bybit-linear", "BTCUSDT", "bybit_linear_BTCUSDT_5m.parquet", KlineInterval.MINUTE_5),
    ("binance-futures", "BTCUSDT", "binance_futures_BTCUSDT_5m.parquet", KlineInterval.MINUTE_5),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    for market, symbol, file, interval in CASES:
        instrument = load_instrument(market, symbol)
        path = KLINES / file
        first, again = [], []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as catalog:
                result = ingest_klines([path], instrument, interval, catalog)
                first.append(result.secs)
                again.append(ingest_klines([path], instrument, interval, catalog).secs)
        frame = read_klines(path)
        bar_type = BarType.from_str(bar_type_string(instrument.id.value, interval))
        started = time.perf_counter()
        bars_table_reference(frame, bar_type, instrument, interval)
        reference_secs = time.perf_counter() - started
        bars = result.input_bars
        print(
            f"{file}: {bars:,} bars | ingest median {statistics.median(first):.3f} s "
            f"({bars / statistics.median(first):,.0f} bars/s) | re-ingest {statistics.median(again):.3f} s | "
            f"Nautilus object encoding alone {reference_secs:.3f} s ({bars / reference_secs:,.0f} bars/s)",
        )


if __name__ == "__main__":
    main()
