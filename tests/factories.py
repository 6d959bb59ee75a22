"""Short builders for tests. Market data comes from the real slices shipped in the repository:
`data/klines/` (the research klines the training configs read) and `tests/data/` (test-only slices, tick
samples and Bybit API payloads); `tests/data/PROVENANCE.md` and `data/klines/PROVENANCE.md` name the
upstream repositories. Nothing here invents a price, and nothing is skipped: a missing file fails."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl

REPO_ROOT = Path(__file__).resolve().parents[1]
KLINES_DIR = REPO_ROOT / "data" / "klines"  # research klines (configs/train/*.toml read these)
TEST_DATA = REPO_ROOT / "tests" / "data"
TEST_KLINES_DIR = TEST_DATA / "klines"  # test-only kline slices
TICKS_DIR = TEST_DATA / "ticks"
BYBIT_SAMPLES = TEST_DATA / "bybit_api_samples"
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


# ---- the shipped kline slices -------------------------------------------------------------------------
#
# Each kline series is named after its upstream file (a real, merged series: see the PROVENANCE.md files)
# and addressed by UPSTREAM row numbers, so a test asks for "rows 5,000..7,000" or "2,880 rows from
# 2025-05-05" exactly as it would of the whole series. Only the slices below are shipped; asking for a row
# outside them raises (the test fails, it is never skipped). tests/data/build_test_data.py re-creates every
# slice from the upstream files and checks it.

UPSTREAM_ROWS = {  # rows of each whole upstream series
    "binance_futures_BTCUSDT_1m": 73_139,
    "binance_futures_ETHUSDT_1m": 73_140,
    "binance_futures_BTCUSDT_5m": 263_624,
    "binance_futures_ETHUSDT_5m": 263_625,
    "binance_spot_ETHUSDT_5m": 279_504,
    "bybit_linear_BTCUSDT_5m": 116_350,
    "bybit_linear_ETHUSDT_5m": 116_350,
}


@dataclass(frozen=True)
class KlineSlice:
    """Upstream rows [first_row, end_row) of series `name`, shipped as one Parquet file."""

    name: str
    first_row: int
    end_row: int
    research: bool = False  # True: data/klines/<name>.parquet; False: tests/data/klines/<name>__rows_<a>_<b>

    @property
    def path(self) -> Path:
        if self.research:
            return KLINES_DIR / f"{self.name}.parquet"
        return TEST_KLINES_DIR / f"{self.name}__rows_{self.first_row}_{self.end_row}.parquet"

    @property
    def rows(self) -> int:
        return self.end_row - self.first_row


KLINE_SLICES = (
    # Binance USD-M BTCUSDT 5m: the head (2023-01-01 ..), 20 bars from 2024-03-01, the last 1,341 bars
    # before the 230-day hole (2024-05-09 23:55 .. 2024-05-14 15:35) and, in data/klines, everything after
    # it (2024-12-31 00:00 .. 2026-02-19 16:55: the training data of the committed artifacts).
    KlineSlice("binance_futures_BTCUSDT_5m", 0, 30_000),
    KlineSlice("binance_futures_BTCUSDT_5m", 122_400, 122_420),
    KlineSlice("binance_futures_BTCUSDT_5m", 142_559, 143_900),
    KlineSlice("binance_futures_BTCUSDT_5m", 143_900, 263_624, research=True),
    # Binance USD-M ETHUSDT 5m: the head, 1,200 bars from 2025-02-28 23:55, the last 6,000 bars.
    KlineSlice("binance_futures_ETHUSDT_5m", 0, 20_000),
    KlineSlice("binance_futures_ETHUSDT_5m", 161_180, 162_380),
    KlineSlice("binance_futures_ETHUSDT_5m", 257_625, 263_625),
    # Binance USD-M 1m: the head and the last 6,000 bars of each.
    KlineSlice("binance_futures_BTCUSDT_1m", 0, 30_507),
    KlineSlice("binance_futures_BTCUSDT_1m", 67_139, 73_139),
    KlineSlice("binance_futures_ETHUSDT_1m", 0, 5_000),
    KlineSlice("binance_futures_ETHUSDT_1m", 67_140, 73_140),
    # Binance spot ETHUSDT 5m: the head, and 1,250 bars around the 2023-03-24 spot trading halt.
    KlineSlice("binance_spot_ETHUSDT_5m", 0, 20_000),
    KlineSlice("binance_spot_ETHUSDT_5m", 32_096, 33_346),
    # Bybit linear 5m: BTCUSDT whole (data/klines, the baselines' training data), ETHUSDT's head.
    KlineSlice("bybit_linear_BTCUSDT_5m", 0, 116_350, research=True),
    KlineSlice("bybit_linear_ETHUSDT_5m", 0, 20_000),
)


def _series_name(name: str) -> str:
    name = name.removesuffix(".parquet")
    if name not in UPSTREAM_ROWS:
        raise LookupError(
            f"no real kline series '{name}' is shipped; known: {', '.join(sorted(UPSTREAM_ROWS))}"
        )
    return name


def data_file(path: Path) -> Path:
    """`path` if it is a file, else an error naming it (a missing shipped data file fails, never skips)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"shipped test data {path} is missing: restore it from git or re-create it with "
            "tests/data/build_test_data.py (see tests/data/PROVENANCE.md)"
        )
    return path


def research_klines(name: str) -> Path:
    """Path of data/klines/<name>.parquet (a whole research series, as the training configs name it)."""
    return data_file(KLINES_DIR / f"{_series_name(name)}.parquet")


@cache
def kline_stretches(name: str) -> tuple[tuple[int, pl.DataFrame], ...]:
    """The shipped rows of series `name` as (first upstream row, frame) per contiguous stretch; adjacent
    slices are joined (e.g. the rows before the BTCUSDT 5m hole and data/klines' rows after it)."""
    name = _series_name(name)
    stretches: list[tuple[int, pl.DataFrame]] = []
    for piece in sorted((s for s in KLINE_SLICES if s.name == name), key=lambda s: s.first_row):
        frame = pl.read_parquet(data_file(piece.path))
        if frame.height != piece.rows:
            raise ValueError(f"{piece.path} holds {frame.height} rows, expected {piece.rows}: re-create it")
        if stretches and stretches[-1][0] + stretches[-1][1].height == piece.first_row:
            stretches[-1] = (stretches[-1][0], pl.concat([stretches[-1][1], frame]))
        else:
            stretches.append((piece.first_row, frame))
    return tuple(stretches)


def _ts_open_ns(start: str | int) -> int:
    if isinstance(start, int):
        return start
    return int(pl.Series([start]).str.to_datetime(time_zone="UTC", time_unit="ns").dt.epoch("ns")[0])


def _first_row_at(name: str, start_ns: int) -> int:
    """Upstream row of the first bar opening at or after `start_ns`, found in a shipped stretch that
    provably holds it (the stretch starts the series or opens at or before `start_ns`)."""
    total = UPSTREAM_ROWS[name]
    for first, frame in kline_stretches(name):
        ts = frame.get_column("ts_open").dt.epoch("ns").to_numpy()
        if first == 0 or ts[0] <= start_ns:
            row = int(np.searchsorted(ts, start_ns, side="left"))
            if row < len(ts) or first + len(ts) == total:
                return first + row
    raise LookupError(
        f"the first bar of {name} opening at or after {start_ns} ns is not in a shipped slice; "
        f"shipped rows: {_describe(name)}"
    )


def _describe(name: str) -> str:
    return ", ".join(f"{first}..{first + frame.height}" for first, frame in kline_stretches(name))


def real_klines(
    name: str, n: int | None = None, offset: int = 0, start: str | int | None = None
) -> pl.DataFrame:
    """`n` consecutive real bars (ts_open, open, high, low, close, volume) of the upstream series `name`,
    from upstream row `offset` (negative: from the end, like polars' slice), or from the `offset`-th bar
    opening at or after `start` (ISO text, UTC, or int ns). n=None: to the end of the series. Exactly the
    rows the whole series would give; rows that are not shipped raise LookupError (never a skip)."""
    name = _series_name(name)
    total = UPSTREAM_ROWS[name]
    if start is not None:
        first = _first_row_at(name, _ts_open_ns(start)) + offset
    else:
        first = offset if offset >= 0 else max(total + offset, 0)
    first = min(first, total)
    end = total if n is None else min(first + n, total)
    for stretch_first, frame in kline_stretches(name):
        if stretch_first <= first and end <= stretch_first + frame.height:
            return frame.slice(first - stretch_first, end - first)
    raise LookupError(
        f"rows {first}..{end} of {name} are not shipped (shipped rows: {_describe(name)}); add a slice to "
        "tests/factories.KLINE_SLICES and run tests/data/build_test_data.py"
    )


def real_bars(
    name: str, n: int | None = None, offset: int = 0, start: str | int | None = None
) -> pl.DataFrame:
    """`real_klines` as a bar table stamped at close, exactly as qa_engine.features.io.load_kline_file
    returns it (open, high, low, close, volume, ts = bar close time in int ns)."""
    interval = _series_name(name).rsplit("_", 1)[1]
    step = INTERVAL_MS[interval] * 1_000_000
    frame = real_klines(name, n, offset, start)
    return frame.with_columns((pl.col("ts_open").dt.epoch("ns") + step).alias("ts")).drop("ts_open")


def bybit_sample(file: str) -> Path:
    """A Bybit v5 API payload (tests/data/bybit_api_samples), byte-for-byte as upstream."""
    return data_file(BYBIT_SAMPLES / file)


def tick_file(file: str) -> Path:
    """A tick-level sample (tests/data/ticks), byte-for-byte as upstream."""
    return data_file(TICKS_DIR / file)


def binance_dump_rows(frame: pl.DataFrame, interval: str, units: list[str] | str = "ms") -> list[str]:
    """Lines of a Binance kline dump (12 fields, no header) for real bars, open/close time in `units`
    ('ms' or 'us', one per row or one for all). The shipped klines have no quote volume, trade count or
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
