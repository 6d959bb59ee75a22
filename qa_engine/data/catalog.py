"""What a ParquetDataCatalog holds, read from directory names and Parquet footers (no data pages)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.funcs import class_to_filename
from nautilus_trader.persistence.funcs import urisafe_identifier

from qa_engine.data import location
from qa_engine.errors import DataError


class CatalogCoverage(NamedTuple):
    """One bar type in a catalog: (bar_type, instrument_id, first_ts_event_ns, last_ts_event_ns, bars)."""

    bar_type: str
    instrument_id: str
    first_ts_event_ns: int
    last_ts_event_ns: int
    bars: int

    @property
    def first_ts_event(self) -> datetime:
        return nanos_to_datetime(self.first_ts_event_ns)

    @property
    def last_ts_event(self) -> datetime:
        return nanos_to_datetime(self.last_ts_event_ns)


def nanos_to_datetime(nanos: int) -> datetime:
    """UNIX nanoseconds -> aware UTC datetime (microsecond resolution), in integer arithmetic."""
    seconds, remainder = divmod(nanos, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=remainder // 1_000)


def bar_directory_of(catalog_path: str | Path, bar_type: str) -> Path:
    """Where ParquetDataCatalog keeps the bars of `bar_type`: a Path in a local catalog (a URI str in a
    remote one, qa_engine.data.location)."""
    directory = location.join(catalog_path, "data", class_to_filename(Bar), urisafe_identifier(bar_type))
    return directory  # type: ignore[return-value]


def _data_root(catalog_path: str | Path) -> Path:
    root = location.catalog_option(catalog_path, "catalog") if isinstance(catalog_path, str) else catalog_path
    if not location.exists(root):
        raise DataError(f"{root}: no catalog there; create one with `qa catalog ingest ... --catalog {root}`")
    return location.join(root, "data")  # type: ignore[return-value]  # a URI str in a remote catalog


def _ts_event_range(file: Path) -> tuple[int, int, int]:
    """(min ts_event, max ts_event, rows) of one Parquet file from its footer statistics."""
    try:
        return _footer_ts_event_range(file)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(
            f"{file}: not a readable Parquet file ({exc}); `qa catalog validate` lists the damage: delete "
            "the affected directory and ingest or download it again"
        ) from None


def _footer_ts_event_range(file: Path) -> tuple[int, int, int]:
    metadata = location.read_parquet_metadata(file)
    names = [metadata.schema.column(index).name for index in range(metadata.num_columns)]
    column = names.index("ts_event")
    minimum, maximum = None, None
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(column).statistics
        if statistics is None or not statistics.has_min_max:
            values = location.read_parquet_table(file, columns=["ts_event"]).column(
                "ts_event"
            )  # no statistics: read the column
            return int(values.to_numpy().min()), int(values.to_numpy().max()), metadata.num_rows
        minimum = statistics.min if minimum is None else min(minimum, statistics.min)
        maximum = statistics.max if maximum is None else max(maximum, statistics.max)
    if minimum is None or maximum is None:
        return 0, 0, 0
    return int(minimum), int(maximum), metadata.num_rows


def catalog_coverage(catalog_path: str | Path) -> list[CatalogCoverage]:
    """Every bar type in the catalog with its first and last ts_event and bar count, sorted by bar type.
    A local folder or a remote catalog (s3://...)."""
    bar_root = location.join(_data_root(catalog_path), class_to_filename(Bar))
    coverage = []
    for name in location.list_directories(bar_root):
        files = location.list_parquet(location.join(bar_root, name))
        if not files:
            continue
        ranges = [_ts_event_range(file) for file in files]
        ranges = [item for item in ranges if item[2] > 0]
        if not ranges:
            continue
        bar_type = BarType.from_str(name)
        coverage.append(
            CatalogCoverage(
                bar_type=name,
                instrument_id=bar_type.instrument_id.value,
                first_ts_event_ns=min(item[0] for item in ranges),
                last_ts_event_ns=max(item[1] for item in ranges),
                bars=sum(item[2] for item in ranges),
            ),
        )
    return coverage


def _instrument_directories() -> set[str]:
    classes: list[type] = [Instrument]
    names: set[str] = set()
    while classes:
        cls = classes.pop()
        for subclass in cls.__subclasses__():
            names.add(class_to_filename(subclass))
            classes.append(subclass)
    return names


def instrument_ids(catalog_path: str | Path) -> list[str]:
    """Ids of the instrument definitions the catalog holds (from directory names), sorted."""
    data_root = _data_root(catalog_path)
    found: set[str] = set()
    for class_name in _instrument_directories():
        class_root = location.join(data_root, class_name)
        for name in location.list_directories(class_root):
            if location.list_parquet(location.join(class_root, name)):
                found.add(name)
    return sorted(found)
