"""What a ParquetDataCatalog holds, read from directory names and Parquet footers (no data pages)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.funcs import class_to_filename
from nautilus_trader.persistence.funcs import urisafe_identifier

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
    """Where ParquetDataCatalog keeps the bars of `bar_type`."""
    return Path(catalog_path) / "data" / class_to_filename(Bar) / urisafe_identifier(bar_type)


def _data_root(catalog_path: str | Path) -> Path:
    root = Path(catalog_path)
    if not root.is_dir():
        raise DataError(f"{root}: no catalog there; create one with `qa catalog ingest ... --catalog {root}`")
    return root / "data"


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
    metadata = pq.read_metadata(file)
    names = [metadata.schema.column(index).name for index in range(metadata.num_columns)]
    column = names.index("ts_event")
    minimum, maximum = None, None
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(column).statistics
        if statistics is None or not statistics.has_min_max:
            values = pq.read_table(file, columns=["ts_event"]).column(
                "ts_event"
            )  # no statistics: read the column
            return int(values.to_numpy().min()), int(values.to_numpy().max()), metadata.num_rows
        minimum = statistics.min if minimum is None else min(minimum, statistics.min)
        maximum = statistics.max if maximum is None else max(maximum, statistics.max)
    if minimum is None or maximum is None:
        return 0, 0, 0
    return int(minimum), int(maximum), metadata.num_rows


def catalog_coverage(catalog_path: str | Path) -> list[CatalogCoverage]:
    """Every bar type in the catalog with its first and last ts_event and bar count, sorted by bar type."""
    bar_root = _data_root(catalog_path) / class_to_filename(Bar)
    coverage = []
    for directory in sorted(bar_root.iterdir()) if bar_root.is_dir() else []:
        files = sorted(directory.glob("*.parquet"))
        if not directory.is_dir() or not files:
            continue
        ranges = [_ts_event_range(file) for file in files]
        ranges = [item for item in ranges if item[2] > 0]
        if not ranges:
            continue
        bar_type = BarType.from_str(directory.name)
        coverage.append(
            CatalogCoverage(
                bar_type=directory.name,
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
        class_root = data_root / class_name
        if class_root.is_dir():
            found.update(path.name for path in class_root.iterdir() if any(path.glob("*.parquet")))
    return sorted(found)
