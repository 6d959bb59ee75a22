"""Funding rates in the catalog as Nautilus `FundingRateUpdate`.

NautilusTrader 1.221 defines `FundingRateUpdate` but ships no Arrow serializer for it
(`ParquetDataCatalog.write_data` raises "Cannot serialize object FundingRateUpdate"). We register one through
Nautilus' own extension point (`serialization.arrow.serializer.register_arrow`), so after
`register_funding_rate_arrow()` the catalog's `write_data([...])` and `query(FundingRateUpdate)` both work.

Files follow the catalog's layout and naming:
`data/funding_rate_update/<instrument_id>/<first>_<last>.parquet`.
Columns: the field types of Nautilus' Rust `FundingRateUpdate` (rate Decimal128, next_funding_ns UInt64,
ts_event UInt64, ts_init UInt64) plus `instrument_id`, which is also in the schema metadata (Nautilus'
pyarrow query path reads several instruments' files into one table, so the id must travel with each row).
Rates are exact decimals (the venue's text), never floats. ts_event = ts_init = the venue's funding time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from nautilus_trader.core.datetime import unix_nanos_to_iso8601
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.funcs import class_to_filename
from nautilus_trader.persistence.funcs import urisafe_identifier
from nautilus_trader.serialization.arrow.serializer import list_schemas
from nautilus_trader.serialization.arrow.serializer import register_arrow

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


def register_funding_rate_arrow() -> None:
    """Teach Nautilus' Arrow serializer FundingRateUpdate (idempotent); call before catalog reads/writes."""
    if FundingRateUpdate in list_schemas():
        return
    register_arrow(FundingRateUpdate, FUNDING_SCHEMA, encoder=_encode, decoder=_decode)


def _encode(data: FundingRateUpdate | list[FundingRateUpdate]) -> pa.RecordBatch:
    items = data if isinstance(data, list) else [data]
    instrument_ids = {item.instrument_id.value for item in items}
    metadata = {"instrument_id": next(iter(instrument_ids))} if len(instrument_ids) == 1 else None
    return pa.RecordBatch.from_pydict(
        {
            "instrument_id": [item.instrument_id.value for item in items],
            "rate": [Decimal(item.rate) for item in items],
            "next_funding_ns": [item.next_funding_ns for item in items],
            "ts_event": [item.ts_event for item in items],
            "ts_init": [item.ts_init for item in items],
        },
        schema=FUNDING_SCHEMA.with_metadata(metadata),
    )


def _decode(table: pa.Table | pa.RecordBatch) -> list[FundingRateUpdate]:
    columns = table.to_pydict()
    instrument_ids = {value: InstrumentId.from_str(value) for value in set(columns["instrument_id"])}
    return [
        FundingRateUpdate(
            instrument_id=instrument_ids[instrument_id],
            rate=rate.normalize() if rate != 0 else Decimal(0),
            ts_event=ts_event,
            ts_init=ts_init,
            next_funding_ns=next_funding_ns,
        )
        for instrument_id, rate, next_funding_ns, ts_event, ts_init in zip(
            columns["instrument_id"],
            columns["rate"],
            columns["next_funding_ns"],
            columns["ts_event"],
            columns["ts_init"],
            strict=True,
        )
    ]


def funding_directory(catalog_root: str | Path, instrument_id: str) -> Path:
    """Where ParquetDataCatalog keeps the funding rates of `instrument_id`."""
    return (
        Path(catalog_root) / "data" / class_to_filename(FundingRateUpdate) / urisafe_identifier(instrument_id)
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
    files = sorted(funding_directory(catalog_root, instrument_id).glob("*.parquet"))
    if not files:
        return None
    tables = [pq.read_table(file).cast(FUNDING_SCHEMA.with_metadata(None)) for file in files]
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
    merged = merged.replace_schema_metadata({"instrument_id": instrument_id})
    if added:
        ts = merged.column("ts_event")
        name = _file_name(pc.min(ts).as_py(), pc.max(ts).as_py())
        replace_directory_with(
            catalog_root,
            funding_directory(catalog_root, instrument_id),
            lambda directory: pq.write_table(merged, directory / name, compression="zstd"),
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
    root = Path(catalog_root) / "data" / class_to_filename(FundingRateUpdate)
    coverage = []
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        table = read_funding_table(catalog_root, directory.name)
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
