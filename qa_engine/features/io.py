"""Bars in, feature tables out: catalog / kline-file loading and the Parquet writer with metadata."""

from __future__ import annotations

import json
import re
from datetime import UTC
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.features.spec import FeatureSet

INTERVAL_PATTERN = re.compile(r"^(\d+)(s|m|h|d)$")
UNIT_NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}
NAUTILUS_AGGREGATION = {"s": "SECOND", "m": "MINUTE", "h": "HOUR", "d": "DAY"}
METADATA_PREFIX = b"qa."


def interval_ns(interval: str) -> int:
    """'5m' -> 300_000_000_000."""
    match = INTERVAL_PATTERN.match(interval)
    if not match or int(match.group(1)) <= 0:
        raise ConfigError(f"interval '{interval}' is not of the form <n>s|m|h|d, e.g. 1m, 5m, 1h")
    return int(match.group(1)) * UNIT_NS[match.group(2)]


def nautilus_bar_spec(interval: str) -> str:
    """'5m' -> '5-MINUTE' (the step and aggregation of a Nautilus BarType)."""
    interval_ns(interval)
    match = INTERVAL_PATTERN.match(interval)
    assert match is not None
    return f"{int(match.group(1))}-{NAUTILUS_AGGREGATION[match.group(2)]}"


def parse_time(text: str | None, option: str) -> int | None:
    """ISO-8601 (UTC if no zone) -> ns since epoch; None stays None."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{option} '{text}' is not an ISO-8601 time (e.g. 2024-01-31T00:00)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def load_kline_file(path: Path, interval: str) -> pl.DataFrame:
    """A kline file (Parquet, CSV or Binance dump, read and checked by qa_engine.data.klines) as a bar
    table stamped at close (`ts`). A missing, corrupt or malformed file is a DataError naming it."""
    from qa_engine.data.klines import check_interval
    from qa_engine.data.klines import read_klines

    frame = read_klines(path)
    step = interval_ns(interval)
    check_interval(frame, interval, step, str(path))
    return frame.with_columns((pl.col("ts_open").dt.epoch("ns") + step).alias("ts")).drop("ts_open")


def load_catalog_bars(
    catalog_path: Path,
    instrument_id: str,
    interval: str,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> tuple[pl.DataFrame, str]:
    """Bars of one instrument and interval from a Nautilus ParquetDataCatalog, as a bar table.

    Returns (table, bar_type). Bars are stamped at close (ts_event), which becomes `ts`.
    """
    from nautilus_trader.model.data import Bar
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    if not catalog_path.exists():
        raise DataError(f"catalog folder {catalog_path} does not exist")
    catalog = ParquetDataCatalog(str(catalog_path))
    bar_folder = catalog_path / "data" / "bar"
    available = sorted(p.name for p in bar_folder.iterdir()) if bar_folder.exists() else []
    prefix = f"{instrument_id}-{nautilus_bar_spec(interval)}-LAST-"
    matching = [name for name in available if name.startswith(prefix)]
    if not matching:
        raise DataError(
            f"catalog {catalog_path} has no {interval} LAST bars of {instrument_id}; "
            f"bar types there: {', '.join(available) or 'none'}"
        )
    bar_type = next((name for name in matching if name.endswith("-EXTERNAL")), matching[0])
    for file in sorted((bar_folder / bar_type).glob("*.parquet")):  # a damaged file, named, not a Rust panic
        try:
            pq.read_metadata(file)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(
                f"{file}: not a readable Parquet file ({exc}); `qa catalog validate` lists the damage"
            ) from None
    bars = catalog.query(Bar, identifiers=[bar_type], start=start_ns, end=end_ns)
    if not bars:
        raise DataError(f"catalog {catalog_path} has no {bar_type} bars in the requested range")
    frame = pl.DataFrame(
        {
            "ts": [bar.ts_event for bar in bars],
            "open": [bar.open.as_double() for bar in bars],
            "high": [bar.high.as_double() for bar in bars],
            "low": [bar.low.as_double() for bar in bars],
            "close": [bar.close.as_double() for bar in bars],
            "volume": [bar.volume.as_double() for bar in bars],
        },
        schema={"ts": pl.Int64, **{c: pl.Float64 for c in ("open", "high", "low", "close", "volume")}},
    )
    return frame.sort("ts").unique("ts", keep="first", maintain_order=True), bar_type


def write_feature_table(
    table: pl.DataFrame, path: Path, feature_set: FeatureSet, extra_metadata: dict[str, object]
) -> None:
    """Write the table with the feature-set hash, name, version and canonical specs in the file metadata."""
    arrow = table.with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC"))).to_arrow()
    metadata = {
        b"qa.feature_set_hash": feature_set.hash.encode(),
        b"qa.feature_set_name": feature_set.name.encode(),
        b"qa.feature_set_version": str(feature_set.version).encode(),
        b"qa.feature_set_specs": feature_set.canonical_json().encode(),
        b"qa.warmup_bars": str(feature_set.warmup_bars).encode(),
        **{
            METADATA_PREFIX + key.encode(): json.dumps(value).encode()
            for key, value in extra_metadata.items()
        },
    }
    schema = arrow.schema.with_metadata({**(arrow.schema.metadata or {}), **metadata})
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")  # never a half-written table at `path`
    try:
        pq.write_table(pa.Table.from_batches(arrow.to_batches(), schema=schema), partial, compression="zstd")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def check_output_file(path: Path, option: str = "--out") -> None:
    """`path` can be written as a file: not a directory, and its folder exists or can be created.
    Checked before any work so a bad --out never costs a computation."""
    if path.is_dir():
        raise ConfigError(
            f"{option} {path} is a directory; give a file path, e.g. {path / 'features.parquet'}"
        )
    blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"{option} {path}: {blocking} is a file, not a folder")


def read_feature_metadata(path: Path) -> dict[str, str]:
    """The `qa.*` metadata of a feature table (keys without the prefix)."""
    metadata = pq.read_schema(path).metadata or {}
    return {
        key[len(METADATA_PREFIX) :].decode(): value.decode()
        for key, value in metadata.items()
        if key.startswith(METADATA_PREFIX)
    }
