"""Funding rates in the catalog as Nautilus `FundingRateUpdate`.

Files are exactly what NautilusTrader 1.231's own Arrow serializer writes (`ParquetDataCatalog.write_data`),
so `ParquetDataCatalog.query(FundingRateUpdate)` reads them back with no registration of ours:
`data/funding_rate_update/<instrument_id>/<first>_<last>.parquet`, columns rate (the exact decimal text,
JSON-encoded, binary), interval (minutes, null: the venues' history does not say), next_funding_ns,
ts_event, ts_init (UInt64); the instrument id is in the schema metadata. ts_event = ts_init = the venue's
funding time. Rates are the venue's decimal text, never floats. Know this: 1.231's deserializer leaves
`FundingRateUpdate.rate` of a catalog query as that text (a str, not a Decimal): read it as
`Decimal(str(update.rate))`.

Merging and validation work on an in-memory table (FUNDING_SCHEMA: instrument_id, rate as Decimal128,
next_funding_ns, ts_event, ts_init) that `read_funding_table` builds from the files. Files written by the
1.221-era version of this module (rate Decimal128 and an instrument_id column) are still read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from nautilus_trader.core.datetime import unix_nanos_to_iso8601
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.persistence.funcs import class_to_filename
from nautilus_trader.persistence.funcs import urisafe_identifier
from nautilus_trader.serialization.arrow.schema import NAUTILUS_ARROW_SCHEMA

from qa_engine.data import location
from qa_engine.data.catalog import nanos_to_datetime
from qa_engine.data.ingest import replace_directory_with
from qa_engine.errors import DataError

RATE_TYPE = pa.decimal128(38, 18)
FUNDING_SCHEMA = pa.schema(
    [
        pa.field("instrument_id", pa.string(), nullable=False),
        pa.field("rate", RATE_TYPE, nullable=False),
        pa.field("next_funding_ns", pa.uint64(), nullable=True),
        pa.field("ts_event", pa.uint64(), nullable=False),
        pa.field("ts_init", pa.uint64(), nullable=False),
    ],
)
# One funding table per call: ts_event (Int64 ns) and rate (String, the venue's decimal text).
FUNDING_FRAME_SCHEMA = {"ts_event": pl.Int64(), "rate": pl.String()}
CONFLICTS_SHOWN = 3


# The on-disk schema: Nautilus' own for FundingRateUpdate.
NAUTILUS_FUNDING_SCHEMA = NAUTILUS_ARROW_SCHEMA[FundingRateUpdate]


def _rate_text(rate: Decimal) -> str:
    """A rate as plain decimal text ("0.00015", never "1.5E-4"); zero as "0"."""
    return format(rate.normalize(), "f") if rate != 0 else "0"


def _disk_table(table: pa.Table, instrument_id: str) -> pa.Table:
    """Our in-memory table -> the file Nautilus' serializer would write for the same updates."""
    rates = [msgspec.json.encode(_rate_text(rate)) for rate in table.column("rate").to_pylist()]
    return pa.Table.from_arrays(
        [
            pa.array(rates, pa.binary()),
            pa.nulls(table.num_rows, pa.uint16()),
            table.column("next_funding_ns"),
            table.column("ts_event"),
            table.column("ts_init"),
        ],
        schema=NAUTILUS_FUNDING_SCHEMA.with_metadata({"instrument_id": instrument_id}),
    )


def _memory_table(disk: pa.Table, instrument_id: str) -> pa.Table:
    """A funding file (Nautilus' format, or this module's 1.221-era one) -> our in-memory table."""
    if pa.types.is_decimal(disk.schema.field("rate").type):  # 1.221-era file
        return disk.select(FUNDING_SCHEMA.names).cast(FUNDING_SCHEMA)
    rates = [Decimal(msgspec.json.decode(raw)) for raw in disk.column("rate").to_pylist()]
    return pa.Table.from_arrays(
        [
            pa.array([instrument_id] * disk.num_rows, pa.string()),
            pa.array(rates, RATE_TYPE),
            disk.column("next_funding_ns").cast(pa.uint64()),
            disk.column("ts_event").cast(pa.uint64()),
            disk.column("ts_init").cast(pa.uint64()),
        ],
        schema=FUNDING_SCHEMA,
    )


def funding_directory(catalog_root: str | Path, instrument_id: str) -> Path:
    """Where ParquetDataCatalog keeps the funding rates of `instrument_id`: a Path in a local catalog (a
    URI str in a remote one, qa_engine.data.location)."""
    return location.join(  # type: ignore[return-value]
        catalog_root, "data", class_to_filename(FundingRateUpdate), urisafe_identifier(instrument_id)
    )


def funding_table(instrument_id: str, frame: pl.DataFrame) -> pa.Table:
    """A funding frame (ts_event ns, rate text) -> the catalog's FundingRateUpdate table, sorted by time."""
    ordered = frame.sort("ts_event")
    try:
        rates = pa.array([Decimal(text) for text in ordered["rate"].to_list()], type=RATE_TYPE)
    except (ArithmeticError, ValueError, pa.ArrowInvalid) as exc:
        raise DataError(f"{instrument_id}: a funding rate is not a decimal number ({exc})") from exc
    ts = pa.array(ordered["ts_event"].to_numpy().astype(np.uint64))
    return pa.Table.from_arrays(
        [
            pa.array([instrument_id] * ordered.height, pa.string()),
            rates,
            pa.nulls(ordered.height, pa.uint64()),
            ts,
            ts,
        ],
        schema=FUNDING_SCHEMA.with_metadata({"instrument_id": instrument_id}),
    )


def read_funding_table(catalog_root: str | Path, instrument_id: str) -> pa.Table | None:
    """Every funding row the catalog holds for `instrument_id`, sorted by ts_event; None if there are none."""
    files = location.list_parquet(funding_directory(catalog_root, instrument_id))
    if not files:
        return None
    tables = [_memory_table(location.read_parquet_table(file), instrument_id) for file in files]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return table.sort_by("ts_event")


@dataclass(frozen=True)
class FundingMerge:
    added: int
    identical: int
    total: int


def _file_name(first_ns: int, last_ns: int) -> str:
    def stamp(nanos: int) -> str:
        return unix_nanos_to_iso8601(nanos).replace(":", "-").replace(".", "-")

    return f"{stamp(first_ns)}_{stamp(last_ns)}.parquet"


def merge_funding_rates(catalog_root: Path, instrument_id: str, frame: pl.DataFrame) -> FundingMerge:
    """Merge funding rows into the catalog (call inside `ingest.catalog_writer`): rows the catalog already
    holds with the same rate are kept once; the same time with another rate is a DataError; the instrument's
    directory is rewritten atomically as one file."""
    new_table = funding_table(instrument_id, frame)
    existing = read_funding_table(catalog_root, instrument_id)
    if existing is None:
        merged, added, identical = new_table, new_table.num_rows, 0
    else:
        old_ts = existing.column("ts_event").to_numpy()
        new_ts = new_table.column("ts_event").to_numpy()
        _, old_index, new_index = np.intersect1d(old_ts, new_ts, assume_unique=True, return_indices=True)
        old_rates = existing.column("rate").take(pa.array(old_index))
        new_rates = new_table.column("rate").take(pa.array(new_index))
        differs = np.asarray(pc.not_equal(old_rates, new_rates).to_pylist(), dtype=bool)
        if differs.any():
            shown = []
            for position in np.flatnonzero(differs)[:CONFLICTS_SHOWN]:
                when = nanos_to_datetime(int(old_ts[old_index[position]]))
                old_rate, new_rate = old_rates[int(position)].as_py(), new_rates[int(position)].as_py()
                shown.append(
                    f"{when:%Y-%m-%d %H:%M:%S} (catalog {old_rate.normalize()}, venue {new_rate.normalize()})"
                )
            raise DataError(
                f"{instrument_id}: {int(differs.sum())} funding rates differ from the catalog at the same "
                f"time, first at {'; '.join(shown)}; delete {funding_directory(catalog_root, instrument_id)} "
                f"to re-download them",
            )
        keep_new = np.ones(new_ts.size, dtype=bool)
        keep_new[new_index] = False
        merged = pa.concat_tables([existing, new_table.filter(pa.array(keep_new)).cast(existing.schema)])
        merged = merged.sort_by("ts_event")
        added, identical = int(keep_new.sum()), int(new_index.size)
    if added:
        ts = merged.column("ts_event")
        name = _file_name(pc.min(ts).as_py(), pc.max(ts).as_py())
        replace_directory_with(
            catalog_root,
            funding_directory(catalog_root, instrument_id),
            lambda directory: pq.write_table(
                _disk_table(merged, instrument_id), directory / name, compression="zstd"
            ),
        )
    return FundingMerge(added=added, identical=identical, total=merged.num_rows)


@dataclass(frozen=True)
class FundingCoverage:
    instrument_id: str
    first_ts_event: datetime
    last_ts_event: datetime
    rows: int


def funding_coverage(catalog_root: str | Path) -> list[FundingCoverage]:
    """Every instrument with funding rates in the catalog: first and last funding time and row count."""
    root = location.join(catalog_root, "data", class_to_filename(FundingRateUpdate))
    coverage = []
    for name in location.list_directories(root):
        table = read_funding_table(catalog_root, name)
        if table is None or table.num_rows == 0:
            continue
        ts = table.column("ts_event")
        coverage.append(
            FundingCoverage(
                instrument_id=table.column("instrument_id")[0].as_py(),
                first_ts_event=nanos_to_datetime(pc.min(ts).as_py()),
                last_ts_event=nanos_to_datetime(pc.max(ts).as_py()),
                rows=table.num_rows,
            ),
        )
    return coverage


FUNDING_FILE_COLUMNS = {"ts": "funding time (timestamp, UTC)", "funding_rate": "fraction of notional"}
MAX_ABS_FUNDING_RATE = Decimal("0.05")  # no venue caps funding above 5 % per interval: a wrong column


def read_funding_file(path: Path) -> pl.DataFrame:
    """A funding-rate file (Parquet or CSV with columns `ts` and `funding_rate`, the schema of
    data/funding/) -> a funding frame (ts_event ns, rate text) for `merge_funding_rates`.

    Float rates become the shortest decimal text that reads back as the same float (`repr`), which is
    the venue's decimal for every rate a venue publishes (at most 8 decimals)."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a funding-rate file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = (
            pl.read_csv(path, try_parse_dates=True)
            if path.suffix.lower() == ".csv"
            else pl.read_parquet(path)
        )
    except Exception as exc:  # polars raises several types for unreadable files
        raise DataError(
            f"{path}: not a readable {path.suffix or 'Parquet'} file ({type(exc).__name__})"
        ) from None
    missing = [name for name in FUNDING_FILE_COLUMNS if name not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; a funding file has "
            + ", ".join(f"{k} ({v})" for k, v in FUNDING_FILE_COLUMNS.items())
            + f"; it has {', '.join(frame.columns)}"
        )
    ts = frame["ts"]
    if ts.dtype == pl.Utf8:
        ts = ts.str.to_datetime(time_zone="UTC")
    if not isinstance(ts.dtype, pl.Datetime):
        raise DataError(f"{path}: column ts is {ts.dtype}, not a timestamp")
    if ts.dtype.time_zone is None:
        ts = ts.dt.replace_time_zone("UTC")
    nanos = ts.dt.cast_time_unit("ns").dt.epoch("ns")
    rates = frame["funding_rate"]
    if nanos.null_count() or rates.null_count() or (rates.dtype.is_float() and rates.is_nan().any()):
        raise DataError(f"{path}: empty ts or funding_rate values")
    texts = [repr(float(value)) if not isinstance(value, str) else value for value in rates.to_list()]
    try:
        decimals = [Decimal(text) for text in texts]
    except ArithmeticError:
        raise DataError(f"{path}: a funding_rate is not a number") from None
    worst = max((abs(d) for d in decimals), default=Decimal(0))
    if worst > MAX_ABS_FUNDING_RATE:
        raise DataError(f"{path}: a funding rate of {worst} (> {MAX_ABS_FUNDING_RATE}): not a rate column")
    out = pl.DataFrame({"ts_event": nanos, "rate": [format(d.normalize(), "f") for d in decimals]})
    duplicated = out["ts_event"].is_duplicated()
    if duplicated.any():
        when = nanos_to_datetime(int(out.filter(duplicated)["ts_event"][0]))
        raise DataError(f"{path}: two funding rates at {when:%Y-%m-%d %H:%M:%S}")
    return out.cast(FUNDING_FRAME_SCHEMA)
