"""Check a whole catalog: every bar type, funding series and instrument, from the Parquet files themselves.

Errors (the catalog is not fit for a backtest): unreadable files, bar-type metadata that does not match the
directory or differs between files, file names that do not match their content (Nautilus selects files by
name), rows out of order, overlapping files, duplicate bars, times off the bar grid, crossed or non-positive
OHLC, negative volume, a bar type without its instrument definition or with other precisions than it.
Warnings: gaps (missing bars, as the venue or the source had them), ts_init != ts_event, leftovers of an
interrupted write. Prices are compared exactly on Nautilus' 128-bit fixed-point values.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.core.datetime import unix_nanos_to_iso8601
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import bar_aggregation_to_str
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog
from nautilus_trader.persistence.funcs import class_to_filename

from qa_engine.data.catalog import nanos_to_datetime
from qa_engine.data.funding import funding_coverage
from qa_engine.data.funding import funding_directory
from qa_engine.data.funding import read_funding_table
from qa_engine.data.ingest import STAGING_DIRNAME
from qa_engine.errors import DataError

NANOS_PER_UNIT = {"MINUTE": 60_000_000_000, "HOUR": 3_600_000_000_000, "DAY": 86_400_000_000_000}
EXAMPLES_SHOWN = 3


class Severity(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class CatalogFinding:
    scope: str  # bar type, instrument id or "catalog"
    check: str
    severity: Severity
    detail: str


@dataclass(frozen=True)
class CatalogReport:
    catalog_path: Path
    findings: tuple[CatalogFinding, ...]
    bar_types: int
    bars: int
    funding_series: int
    instruments: int

    @property
    def errors(self) -> tuple[CatalogFinding, ...]:
        return tuple(item for item in self.findings if item.severity == Severity.ERROR)

    @property
    def warnings(self) -> tuple[CatalogFinding, ...]:
        return tuple(item for item in self.findings if item.severity == Severity.WARNING)


def _time(nanos: int) -> str:
    return f"{nanos_to_datetime(int(nanos)):%Y-%m-%d %H:%M}"


def _examples(times: np.ndarray) -> str:
    shown = ", ".join(_time(value) for value in times[:EXAMPLES_SHOWN])
    return shown + (", ..." if times.size > EXAMPLES_SHOWN else "")


def _file_name(first: int, last: int) -> str:
    def stamp(nanos: int) -> str:
        return unix_nanos_to_iso8601(nanos).replace(":", "-").replace(".", "-")

    return f"{stamp(first)}_{stamp(last)}.parquet"


def _split_fixed(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Nautilus' 16-byte little-endian fixed-point values -> (high int64, low uint64), exact order."""
    array = column.combine_chunks()
    width = array.type.byte_width
    raw = np.frombuffer(array.buffers()[1], dtype=np.uint8)[
        array.offset * width : (array.offset + len(array)) * width
    ]
    words = raw.reshape(-1, width)
    low = words[:, :8].copy().view("<u8").ravel()
    high = words[:, 8:16].copy().view("<i8").ravel()
    return high, low


def _less(left: tuple[np.ndarray, np.ndarray], right: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return (left[0] < right[0]) | ((left[0] == right[0]) & (left[1] < right[1]))


def _non_positive(value: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return (value[0] < 0) | ((value[0] == 0) & (value[1] == 0))


def _check_bar_type(directory: Path, instruments: dict[str, object]) -> tuple[list[CatalogFinding], int]:
    scope = directory.name
    findings: list[CatalogFinding] = []

    def add(check: str, severity: Severity, detail: str) -> None:
        findings.append(CatalogFinding(scope, check, severity, detail))

    files = sorted(directory.glob("*.parquet"))
    tables = []
    for file in files:
        try:
            tables.append((file, pq.read_table(file)))
        except Exception as exc:  # pyarrow raises several types for corrupt files
            add("readable files", Severity.ERROR, f"{file.name}: {exc}")
    if not tables:
        return findings, 0
    metadata = {file.name: (table.schema.metadata or {}) for file, table in tables}
    keys = (b"bar_type", b"price_precision", b"size_precision")
    distinct = {tuple(meta.get(key) for key in keys) for meta in metadata.values()}
    first_meta = next(iter(metadata.values()))
    if len(distinct) > 1:
        add("metadata", Severity.ERROR, f"files disagree on bar type or precision: {sorted(distinct)}")
    elif (first_meta.get(b"bar_type") or b"").decode() != scope:
        add(
            "metadata", Severity.ERROR, f"bar_type metadata {first_meta.get(b'bar_type')!r} != directory name"
        )
    else:
        add("metadata", Severity.OK, "bar type and precisions agree in every file")

    intervals, bad_names, unsorted = [], [], []
    for file, table in tables:
        ts_init = table.column("ts_init").to_numpy()
        if ts_init.size == 0:
            continue
        intervals.append((int(ts_init.min()), int(ts_init.max()), file.name))
        if file.name != _file_name(int(ts_init.min()), int(ts_init.max())):
            bad_names.append(file.name)
        if np.any(np.diff(ts_init.astype(np.int64)) < 0):
            unsorted.append(file.name)
    add(
        "file names match content",
        Severity.ERROR if bad_names else Severity.OK,
        f"{len(bad_names)} files named for another range: {', '.join(bad_names[:EXAMPLES_SHOWN])}"
        if bad_names
        else f"{len(intervals)} files",
    )
    if unsorted:
        add("rows in time order", Severity.ERROR, f"unsorted rows in {', '.join(unsorted[:EXAMPLES_SHOWN])}")
    intervals.sort()
    overlaps = [f"{a[2]} / {b[2]}" for a, b in itertools.pairwise(intervals) if b[0] <= a[1]]
    add(
        "files disjoint",
        Severity.ERROR if overlaps else Severity.OK,
        f"overlapping files: {'; '.join(overlaps[:EXAMPLES_SHOWN])}" if overlaps else "yes",
    )

    table = pa.concat_tables([item.cast(tables[0][1].schema) for _, item in tables]).sort_by("ts_event")
    ts_event = table.column("ts_event").to_numpy().astype(np.int64)
    ts_init = table.column("ts_init").to_numpy().astype(np.int64)
    duplicates = ts_event[1:][np.diff(ts_event) == 0]
    add(
        "duplicate bars",
        Severity.ERROR if duplicates.size else Severity.OK,
        f"{duplicates.size} (at {_examples(duplicates)})" if duplicates.size else "none",
    )
    differ = ts_event[ts_event != ts_init]
    if differ.size:
        add("ts_init = ts_event", Severity.WARNING, f"{differ.size} bars differ (at {_examples(differ)})")

    bar_type = BarType.from_str(scope)
    spec = bar_type.spec
    aggregation = bar_aggregation_to_str(spec.aggregation)
    step_ns = NANOS_PER_UNIT.get(aggregation, 0) * spec.step
    if step_ns:
        off_grid = ts_event[ts_event % step_ns != 0]
        add(
            "on the bar grid",
            Severity.ERROR if off_grid.size else Severity.OK,
            f"{off_grid.size} bars off the {spec.step}-{aggregation} grid (at {_examples(off_grid)})"
            if off_grid.size
            else "yes",
        )
        unique = np.unique(ts_event)
        steps = np.diff(unique)
        if steps.size:  # bars of another interval stored under this one (e.g. 5m klines ingested as 1m)
            values, counts = np.unique(steps, return_counts=True)
            spacing = int(values[np.argmax(counts)])
            add(
                "spacing is the interval",
                Severity.ERROR if spacing != step_ns else Severity.OK,
                f"bars are mostly {spacing // 1_000_000_000:,} s apart, not {step_ns // 1_000_000_000:,} s: "
                "another interval's bars stored under this bar type"
                if spacing != step_ns
                else "yes",
            )
        gap_positions = np.flatnonzero(steps > step_ns)
        missing = int(((steps[gap_positions] // step_ns) - 1).sum()) if gap_positions.size else 0
        if gap_positions.size:
            largest = gap_positions[np.argsort(-steps[gap_positions])[:EXAMPLES_SHOWN]]
            shown = "; ".join(
                f"{_time(unique[i])} -> {_time(unique[i + 1])} ({int(steps[i] // step_ns) - 1} bars)"
                for i in largest
            )
            add(
                "gaps",
                Severity.WARNING,
                f"{gap_positions.size} gaps, {missing:,} missing bars; largest: {shown}",
            )
        else:
            add("gaps", Severity.OK, "none")

    open_, high, low, close = (_split_fixed(table.column(name)) for name in ("open", "high", "low", "close"))
    volume = _split_fixed(table.column("volume"))
    crossed = (
        _less(high, open_) | _less(high, close) | _less(open_, low) | _less(close, low) | _less(high, low)
    )
    checks = (
        ("crossed OHLC", crossed),
        (
            "non-positive prices",
            _non_positive(open_) | _non_positive(high) | _non_positive(low) | _non_positive(close),
        ),
        ("negative volume", volume[0] < 0),
    )
    for name, mask in checks:
        bad = ts_event[mask]
        add(
            name,
            Severity.ERROR if bad.size else Severity.OK,
            f"{bad.size} (at {_examples(bad)})" if bad.size else "none",
        )

    instrument_id = bar_type.instrument_id.value
    instrument = instruments.get(instrument_id)
    if instrument is None:
        add(
            "instrument definition",
            Severity.ERROR,
            f"{instrument_id} is not in the catalog; download or ingest it",
        )
    else:
        expected = (str(instrument.price_precision).encode(), str(instrument.size_precision).encode())
        actual = (first_meta.get(b"price_precision"), first_meta.get(b"size_precision"))
        add(
            "instrument definition",
            Severity.OK if expected == actual else Severity.ERROR,
            f"{instrument_id} present"
            + ("" if expected == actual else f"; its precisions {expected} differ from the bars' {actual}"),
        )
    return findings, table.num_rows


def validate_catalog(catalog_path: str | Path) -> CatalogReport:
    """Check every bar type, funding series and instrument of the catalog; never changes it."""
    root = Path(catalog_path)
    if not (root / "data").is_dir():
        raise DataError(
            f"{root}: no catalog there (no data/ folder); create one with `qa catalog ingest` or "
            f"`qa data download`"
        )
    instruments = {
        instrument.id.value: instrument for instrument in ParquetDataCatalog(str(root)).instruments()
    }
    findings: list[CatalogFinding] = []
    bar_root = root / "data" / class_to_filename(Bar)
    directories = sorted(path for path in bar_root.iterdir() if path.is_dir()) if bar_root.is_dir() else []
    total_bars = 0
    for directory in directories:
        bar_findings, bars = _check_bar_type(directory, instruments)
        findings.extend(bar_findings)
        total_bars += bars

    series = funding_coverage(root)
    for item in series:
        table = read_funding_table(root, item.instrument_id)
        ts = (
            table.column("ts_event").to_numpy().astype(np.int64)
            if table is not None
            else np.empty(0, np.int64)
        )
        duplicates = ts[1:][np.diff(ts) == 0]
        scope = f"{item.instrument_id} funding"
        findings.append(
            CatalogFinding(
                scope,
                "duplicate funding times",
                Severity.ERROR if duplicates.size else Severity.OK,
                f"{duplicates.size} (at {_examples(duplicates)})"
                if duplicates.size
                else f"none in {ts.size:,} rows",
            )
        )
        if len(list(funding_directory(root, item.instrument_id).glob("*.parquet"))) > 1:
            findings.append(
                CatalogFinding(scope, "files", Severity.WARNING, "several files (a merge rewrites them)")
            )
        if item.instrument_id not in instruments:
            findings.append(
                CatalogFinding(
                    scope,
                    "instrument definition",
                    Severity.WARNING,
                    f"{item.instrument_id} is not in the catalog",
                )
            )

    staging = root / STAGING_DIRNAME
    leftovers = [path for path in staging.iterdir() if path.is_dir()] if staging.is_dir() else []
    if leftovers:
        findings.append(
            CatalogFinding(
                "catalog",
                "interrupted writes",
                Severity.WARNING,
                f"{len(leftovers)} staging folders left by an interrupted write; the next ingest or download "
                f"rolls them back",
            )
        )
    return CatalogReport(
        catalog_path=root,
        findings=tuple(findings),
        bar_types=len(directories),
        bars=total_bars,
        funding_series=len(series),
        instruments=len(instruments),
    )
