"""Signal records (Forecast, Regime, FeatureVector) in a ParquetDataCatalog: Arrow tables, one key each.

A record set is identified by (class, instrument, key), where the key is the `model_id` of Forecast and
Regime records and the `feature_set_hash` of FeatureVector records. Several models' records of one
instrument share Nautilus' directory `data/custom_<class>/<instrument id>/`; a backtest picks its own
with a filter on the key (see `qa_engine.config.build`).

Why not `ParquetDataCatalog.write_data`: for a @customdataclass it serialises one Arrow RecordBatch per
object (about 170 us per record on the project machine: 18 s for a year of 5m Forecasts, more than the
inference itself). `records_table` builds the same table (the class's own `_schema`, the same values;
tests/unit/test_replay.py checks it equals Nautilus' serialiser) column by column from numpy, and
`write_records` merges it into the directory atomically with the catalog's writer lock and staging
swap (`qa_engine.data.ingest.catalog_writer`, `replace_directory_with`), so a catalog never holds
overlapping files or half-written ones. `catalog.query(Forecast, ...)` reads them back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from nautilus_trader.core.datetime import unix_nanos_to_iso8601
from nautilus_trader.persistence.funcs import class_to_filename
from nautilus_trader.persistence.funcs import urisafe_identifier

from qa_engine.data import location
from qa_engine.errors import DataError
from qa_engine.signals import FeatureVector
from qa_engine.signals import Forecast
from qa_engine.signals import Regime

SIGNAL_CLASSES: dict[str, type] = {"Forecast": Forecast, "Regime": Regime, "FeatureVector": FeatureVector}
INT64_MAX = 2**63 - 1
KEY_FIELD: dict[str, str] = {
    "Forecast": "model_id",
    "Regime": "model_id",
    "FeatureVector": "feature_set_hash",
}


def signal_directory(catalog_path: str | Path, type_name: str, instrument_id: str) -> Path:
    """Where ParquetDataCatalog keeps records of this class and instrument: a Path in a local catalog (a
    URI str in a remote one, which a backtest reads; writing is local only)."""
    data_cls = SIGNAL_CLASSES[type_name]
    return location.join(  # type: ignore[return-value]
        catalog_path, "data", class_to_filename(data_cls), urisafe_identifier(instrument_id)
    )


def _float64_rows(matrix: np.ndarray) -> pa.Array:
    """(N, ...) float64 -> N binary values, each row's little-endian float64 bytes (`signals.pack`)."""
    rows = np.ascontiguousarray(matrix, dtype="<f8").reshape(len(matrix), int(np.prod(matrix.shape[1:])))
    width = rows.shape[1] * 8
    offsets = np.arange(len(rows) + 1, dtype=np.int32) * width
    return pa.Array.from_buffers(
        pa.binary(), len(rows), [None, pa.py_buffer(offsets), pa.py_buffer(rows.tobytes())]
    )


def _constant(value, count: int, arrow_type: pa.DataType) -> pa.Array:
    return pa.array([value] * count, type=arrow_type) if count else pa.array([], type=arrow_type)


def records_table(
    type_name: str, columns: dict[str, object], ts_event: np.ndarray, ts_init: np.ndarray
) -> pa.Table:
    """The catalog table of N records of one class, in the class's own Arrow schema.

    columns: per field of the class, a scalar (same for every record), a 1-D array (one value per
    record) or, for the `*_f8` byte fields, an (N, ...) float64 array packed row by row.
    """
    data_cls = SIGNAL_CLASSES[type_name]
    schema: pa.Schema = data_cls._schema
    count = len(ts_event)
    arrays = []
    for field in schema:
        if field.name == "type":
            arrays.append(_constant(type_name, count, pa.string()))
        elif field.name in ("ts_event", "ts_init"):
            values = ts_event if field.name == "ts_event" else ts_init
            arrays.append(pa.array(np.asarray(values, dtype=np.int64), type=pa.int64()))
        else:
            value = columns[field.name]
            if field.name.endswith("_f8"):
                matrix = np.asarray(value, dtype=np.float64)
                if matrix.ndim == 1:  # one vector shared by every record (e.g. the quantiles)
                    matrix = np.broadcast_to(matrix, (count, matrix.shape[0]))
                arrays.append(_float64_rows(matrix))
            elif isinstance(value, np.ndarray):
                arrays.append(pa.array(value, type=field.type))
            else:
                arrays.append(_constant(value, count, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def read_directory(
    directory: Path | str, type_name: str, columns: list[str] | None = None
) -> pa.Table | None:
    """Every record of a signal directory as one table (None if there is none); `columns`: only these."""
    files = location.list_parquet(directory)
    if not files:
        return None
    schema: pa.Schema = SIGNAL_CLASSES[type_name]._schema
    tables = []
    for file in files:
        found = location.read_parquet_schema(file).remove_metadata()
        if not found.equals(schema):
            raise DataError(
                f"{file}: its columns {found.names} are not the {type_name} schema {schema.names}; "
                "it was written by another version of qa_engine.signals: delete the directory and rebuild "
                "the signals (`qa signals build ... --replace`)"
            )
        tables.append(location.read_parquet_table(file, columns=columns))
    return pa.concat_tables(tables)


def _in_range(table: pa.Table, key_field: str, key: str, start_ns: int, end_ns: int) -> pa.ChunkedArray:
    ts = table.column("ts_init")
    start, end = (pa.scalar(max(0, min(value, INT64_MAX)), pa.int64()) for value in (start_ns, end_ns))
    return pc.and_(
        pc.equal(table.column(key_field), key),
        pc.and_(pc.greater_equal(ts, start), pc.less_equal(ts, end)),
    )


def count_records(
    catalog_path: str | Path, type_name: str, instrument_id: str, key: str, start_ns: int, end_ns: int
) -> int:
    """How many records of this (class, instrument, key) the catalog holds with start <= ts_init <= end."""
    directory = signal_directory(catalog_path, type_name, instrument_id)
    table = read_directory(directory, type_name, [KEY_FIELD[type_name], "ts_init"])
    if table is None:
        return 0
    return int(pc.sum(_in_range(table, KEY_FIELD[type_name], key, start_ns, end_ns)).as_py() or 0)


@dataclass(frozen=True)
class KeySummary:
    """One record set in the catalog: its key, count and first/last ts_init."""

    key: str
    records: int
    first_ts_ns: int
    last_ts_ns: int


def summarise_keys(catalog_path: str | Path, type_name: str, instrument_id: str) -> list[KeySummary]:
    """The record sets (keys) of one class and instrument, sorted by key."""
    directory = signal_directory(catalog_path, type_name, instrument_id)
    table = read_directory(directory, type_name, [KEY_FIELD[type_name], "ts_init"])
    if table is None:
        return []
    grouped = table.group_by(KEY_FIELD[type_name]).aggregate(
        [("ts_init", "count"), ("ts_init", "min"), ("ts_init", "max")]
    )
    rows = grouped.to_pylist()
    return sorted(
        (
            KeySummary(
                row[KEY_FIELD[type_name]], row["ts_init_count"], row["ts_init_min"], row["ts_init_max"]
            )
            for row in rows
        ),
        key=lambda item: item.key,
    )


def file_name(first_ts_init: int, last_ts_init: int) -> str:
    """Nautilus' catalog file name for a ts_init range (as `ParquetDataCatalog.write_data` names it)."""

    def stamp(nanos: int) -> str:
        return unix_nanos_to_iso8601(nanos).replace(":", "-").replace(".", "-")

    return f"{stamp(first_ts_init)}_{stamp(last_ts_init)}.parquet"


def write_records(
    catalog_path: str | Path,
    type_name: str,
    instrument_id: str,
    key: str,
    table: pa.Table,
    start_ns: int,
    end_ns: int,
    replace: bool,
) -> int:
    """Merge `table` (records of one key) into the catalog; returns how many old records it replaced.

    Records of the same key with start <= ts_init <= end already there are refused (DataError) unless
    `replace`, which drops them first. Other keys and other times stay. The directory is rewritten as
    one file sorted by ts_init (stable: at equal times, older records first), atomically.
    """
    from qa_engine.data.ingest import catalog_writer
    from qa_engine.data.ingest import replace_directory_with

    key_field = KEY_FIELD[type_name]
    directory = signal_directory(catalog_path, type_name, instrument_id)
    with catalog_writer(catalog_path) as root:
        existing = read_directory(directory, type_name)
        replaced = 0
        if existing is not None:
            clash = _in_range(existing, key_field, key, start_ns, end_ns)
            replaced = int(pc.sum(clash).as_py() or 0)
            if replaced and not replace:
                raise DataError(
                    f"{directory} already holds {replaced:,} {type_name} records of {key_field} '{key}' in "
                    "the range; pass --replace to rewrite them"
                )
            table = pa.concat_tables([existing.filter(pc.invert(clash)), table])
        if table.num_rows == 0:
            return replaced
        order = pc.sort_indices(table, sort_keys=[("ts_init", "ascending")])  # stable
        merged = table.take(order)
        ts_init = merged.column("ts_init")
        name = file_name(pc.min(ts_init).as_py(), pc.max(ts_init).as_py())

        def write(new_directory: Path) -> None:
            new_directory.mkdir(parents=True, exist_ok=True)
            pq.write_table(merged, new_directory / name, compression="zstd")

        replace_directory_with(root, directory, write)
    return replaced
