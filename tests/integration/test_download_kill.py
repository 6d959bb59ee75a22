"""kill -9 in the middle of `qa data download`, then the same command again: complete, exact, no re-fetch.

The CLI runs as a subprocess against the loopback venue (real bars, real clients through --base-url); the
test SIGKILLs it once the server has answered K kline requests (plus a random few milliseconds, so the kill
lands anywhere: between pages, inside a commit, inside a checkpoint write), checks the catalog is a correct
prefix-free subset of the served bars, and that the next run asks for no window holding a stored bar.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog

from qa_engine.data.catalog_validation import validate_catalog
from tests.factories import REPO_ROOT
from tests.factories import real_klines
from tests.loopback_venue import LoopbackVenue

MINUTE_NS = 60_000_000_000


def _command(market: str, interval: str, start: str, end: str, catalog, base_url: str) -> list[str]:
    return [
        sys.executable, "-m", "qa_engine.cli.main", "data", "download", "--venue", market, "--symbols",
        "BTCUSDT", "--interval", interval, "--start", start, "--end", end, "--catalog", str(catalog),
        "--base-url", base_url, "--commit-every-pages", "2", "--json-logs",
    ]  # fmt: skip


def _stored(catalog, bar_type: str, interval_ns: int) -> pl.DataFrame:
    if not (catalog / "data").is_dir():
        return pl.DataFrame(schema={"ts_open": pl.Datetime("ns", "UTC")})
    bars = ParquetDataCatalog(str(catalog)).bars(bar_types=[bar_type])
    return pl.DataFrame(
        {
            "ts_open": [bar.ts_event - interval_ns for bar in bars],
            "open": [float(str(bar.open)) for bar in bars],
            "high": [float(str(bar.high)) for bar in bars],
            "low": [float(str(bar.low)) for bar in bars],
            "close": [float(str(bar.close)) for bar in bars],
            "volume": [float(str(bar.volume)) for bar in bars],
        }
    ).with_columns(pl.col("ts_open").cast(pl.Datetime("ns", "UTC")))


def _run_until_killed(
    command: list[str], server: LoopbackVenue, kline_requests: int, rng: random.Random
) -> int:
    """Start the CLI, SIGKILL it after the server answered `kline_requests` more kline requests; returns
    the exit code (-9 when killed, 0 if it finished first)."""
    already = len(server.requests("kline"))
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if len(server.requests("kline")) - already >= kline_requests:
            time.sleep(rng.uniform(0, 0.06))
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode in (0, -signal.SIGKILL), stderr.decode()[-2000:]
    return process.returncode


@pytest.mark.parametrize(
    ("market", "file", "interval", "interval_ns", "start", "end", "kills"),
    [
        (
            "binance-futures",
            "binance_futures_BTCUSDT_1m",
            "1m",
            MINUTE_NS,
            "2025-05-05",
            "2025-05-24",
            [3, 4, 5],
        ),
        ("bybit-linear", "bybit_linear_BTCUSDT_5m", "5m", 5 * MINUTE_NS, "2025-01-01", "2025-02-19", [2, 4]),
    ],
)
def test_kill_minus_9_and_rerun_gives_the_served_bars_exactly(
    tmp_path, market, file, interval, interval_ns, start, end, kills
):
    served = real_klines(file, 30_000, start=start).filter(
        pl.col("ts_open").dt.date() <= pl.lit(end).str.to_date()
    )
    symbol_id = "BTCUSDT-PERP.BINANCE" if market.startswith("binance") else "BTCUSDT-LINEAR.BYBIT"
    bar_type = f"{symbol_id}-{interval[:-1]}-MINUTE-LAST-EXTERNAL"
    rng = random.Random(20250505)
    catalog = tmp_path / "catalog"
    with LoopbackVenue({(market, "BTCUSDT", interval): served}, kline_delay_secs=0.03) as server:
        command = _command(market, interval, start, end, catalog, server.base_url)
        killed = 0
        for pages in kills:
            stored_before = set(_stored(catalog, bar_type, interval_ns)["ts_open"].dt.epoch("ms").to_list())
            windows_before = len(server.kline_windows())
            code = _run_until_killed(command, server, pages, rng)
            killed += code == -signal.SIGKILL
            asked = server.kline_windows()[windows_before:]
            assert not any(start_ms in stored_before for start_ms, _ in asked), "re-fetched stored bars"
            stored = _stored(catalog, bar_type, interval_ns)
            assert stored["ts_open"].is_unique().all()
            assert stored.equals(served.join(stored.select("ts_open"), on="ts_open").select(stored.columns))
        final = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, timeout=300)

    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert killed == len(kills)  # every kill landed mid-download
    stored = _stored(catalog, bar_type, interval_ns)
    assert stored.equals(served.select(stored.columns))
    assert not validate_catalog(catalog).errors
