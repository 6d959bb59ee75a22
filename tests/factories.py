"""Short builders for tests. Market data comes from ../shared/data (real bars, see its PROVENANCE.md);
nothing here invents a price."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import polars as pl
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_FIXTURES = REPO_ROOT / "tests" / "unit" / "data" / "fixtures"
BINANCE_SPOT_KLINES_2021 = DATA_FIXTURES / "binance_spot_BTCUSDT_1m_klines_20211022.json"
INTERVAL_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


def shared_data_dir() -> Path:
    """../shared/data beside the repository (real klines, read-only); skips the test if it is absent."""
    path = (REPO_ROOT / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip(f"shared real-data folder not found at {path}")
    return path


def real_klines(name: str, n: int, offset: int = 0, start: str | None = None) -> pl.DataFrame:
    """`n` consecutive real bars of ../shared/data/<name>.parquet (ts_open, open, high, low, close, volume),
    from row `offset`, or from the first bar opening at or after `start` (ISO, UTC)."""
    file = shared_data_dir() / (name if name.endswith(".parquet") else f"{name}.parquet")
    frame = pl.scan_parquet(file)
    if start is not None:
        frame = frame.filter(
            pl.col("ts_open") >= pl.lit(start).str.to_datetime(time_zone="UTC", time_unit="ns")
        )
    return frame.slice(offset, n).collect()


def binance_dump_rows(frame: pl.DataFrame, interval: str, units: list[str] | str = "ms") -> list[str]:
    """Lines of a Binance kline dump (12 fields, no header) for real bars, open/close time in `units`
    ('ms' or 'us', one per row or one for all). The shared data has no quote volume, trade count or
    taker-buy volumes: those fields are written as 0 (placeholders; tests do not read them as data)."""
    per_row = [units] * frame.height if isinstance(units, str) else units
    lines = []
    open_times_ms = frame["ts_open"].dt.epoch("ms").to_list()
    for row, unit, open_ms in zip(frame.iter_rows(named=True), per_row, open_times_ms, strict=True):
        scale = 1000 if unit == "us" else 1
        open_time = open_ms * scale
        close_time = (open_ms + INTERVAL_MS[interval]) * scale - 1
        prices = [repr(row[column]) for column in ("open", "high", "low", "close", "volume")]
        lines.append(",".join([str(open_time), *prices, str(close_time), "0", "0", "0", "0", "0"]))
    return lines


def write_text(path: Path, lines: list[str], header: str | None = None) -> Path:
    path.write_text("\n".join(([header] if header else []) + lines) + "\n")
    return path


def write_zip(path: Path, member: str, lines: list[str]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, "\n".join(lines) + "\n")
    return path


def binance_spot_klines_2021_lines() -> list[str]:
    """The ten real Binance spot BTCUSDT 1m klines of the fixture, as dump CSV lines (ms times)."""
    rows = json.loads(BINANCE_SPOT_KLINES_2021.read_text())
    return [",".join(str(value) for value in row) for row in rows]
