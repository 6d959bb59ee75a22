"""Ingest kline files into a Nautilus ParquetDataCatalog: validated, stamped at bar close, merged, atomic.

- Bars are stamped at bar CLOSE: ts_event = ts_init = ts_open + interval (exchange klines carry the open
  time). Bar type: `{instrument_id}-{step}-{MINUTE|HOUR|DAY}-LAST-EXTERNAL`.
- Conversion builds the Arrow table of Nautilus' bar schema column-wise with pyarrow, rounding exactly as
  `Price(value, precision)` does, and checks it on every ingest against Nautilus' own path
  (`Bar.from_raw_arrays_to_list` + `nautilus_pyo3.bars_to_arrow_record_batch_bytes`, the serializer of
  `ParquetDataCatalog.write_data`) on a sample of rows; the tests compare whole files. About 10x faster than
  building Bar objects. (BarDataWranglerV2.from_pandas is not used: in 1.221 it turns 93501.3 into 93501.2
  at precision 1.)
- Re-ingesting is idempotent: the new bars are merged with what the catalog holds for the bar type.
  An identical overlap is kept once; an overlap that differs in OHLCV is a DataError naming the first
  differing bars, unless `replace=True`, in which case the input wins.
- Writes are atomic per directory: the merged bar file (and the instrument) are written into a staging
  folder inside the catalog root (`.staging/`), then swapped in with two renames. A failure before the
  swap leaves the catalog untouched; a failure between the two renames is rolled back at once, and a
  crash there (power loss) is rolled back by the next ingest (`recover_interrupted_writes`).
- One writer per catalog at a time (an advisory lock on `.staging/ingest.lock`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import structlog
from nautilus_trader.core import nautilus_pyo3
from nautilus_trader.core.datetime import unix_nanos_to_iso8601
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import FIXED_PRECISION
from nautilus_trader.model.objects import FIXED_PRECISION_BYTES
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog
from nautilus_trader.persistence.funcs import class_to_filename
from nautilus_trader.persistence.funcs import urisafe_identifier

from qa_engine.data import location
from qa_engine.data.catalog import bar_directory_of
from qa_engine.data.catalog import nanos_to_datetime
from qa_engine.data.intervals import KlineInterval
from qa_engine.data.intervals import bar_type_string
from qa_engine.data.intervals import parse_interval
from qa_engine.data.klines import check_interval
from qa_engine.data.klines import read_klines
from qa_engine.data.validation import OHLCV_COLUMNS
from qa_engine.data.validation import ValidationReport
from qa_engine.data.validation import validate_klines
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError

log = structlog.get_logger(__name__)

ProgressCallback = Callable[[str, int, int], None]  # (stage, done, total); stages: read, convert, write
STAGING_DIRNAME = ".staging"
LOCK_FILENAME = "ingest.lock"
ROWS_PER_GROUP = 5_000  # ParquetDataCatalog's default max_rows_per_group
RAW_COLUMNS = ("open", "high", "low", "close", "volume")  # fixed-point columns of Nautilus' bar schema
CONFLICTS_SHOWN = 3


class IngestValidationError(DataError):
    """The input failed validation; `report` holds every finding (the CLI prints it as a table)."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class IngestResult:
    instrument_id: str
    bar_type: str
    catalog_path: Path | str  # a remote catalog's URI (qa_engine.data.location)
    input_bars: int  # rows read within [start, end]
    duplicate_rows_collapsed: int  # exact duplicate rows in the input, written once
    bars_added: int  # bars whose timestamp the catalog did not hold
    bars_identical: int  # bars the catalog already held with the same OHLCV
    bars_replaced: int  # bars the catalog held with other OHLCV, overwritten (replace=True only)
    bars_total: int  # bars of this bar type in the catalog after the ingest
    first_ts_event: datetime  # of the whole bar type after the ingest
    last_ts_event: datetime
    report: ValidationReport
    catalog_changed: bool
    secs: float

    @property
    def bars_per_sec(self) -> float:
        return self.input_bars / self.secs if self.secs > 0 else float("inf")


def ingest_klines(
    paths: list[str | Path] | tuple[str | Path, ...],
    instrument: Instrument,
    interval: KlineInterval | str,
    catalog_path: str | Path,
    start: date | datetime | None = None,
    end: date | datetime | None = None,
    strict: bool = False,
    replace: bool = False,
    progress: ProgressCallback | None = None,
) -> IngestResult:
    """Validate kline files and write them as bars of `instrument` into the catalog at `catalog_path`
    (a folder, or an s3:// URI: see qa_engine.data.location for how, and what is not atomic there).

    `start`/`end` filter on the bar OPEN time; a `date` is a whole UTC day and `end` is inclusive.
    `strict` turns validation warnings (gaps, zero volume, duplicate rows) into errors.
    `replace` lets the input overwrite catalog bars that differ from it.
    """
    started = time.perf_counter()
    kline_interval = parse_interval(interval)
    report_progress = progress or _no_progress
    file_paths = [Path(path) for path in paths]
    if not file_paths:
        raise DataError("no kline files given; pass at least one .parquet, .csv or .zip path")
    if isinstance(catalog_path, str):
        catalog_path = location.catalog_option(catalog_path, "catalog")
    if location.is_remote(catalog_path):  # s3://...: ingest into a local copy of what changes, upload it
        bar_type_text = bar_type_string(instrument.id.value, kline_interval)
        directories = [relative_directory(bar_type=bar_type_text), relative_directory(instrument=instrument)]
        with location.writable(catalog_path, directories) as local_root:
            result = ingest_klines(
                file_paths, instrument, kline_interval, local_root, start, end, strict, replace, progress
            )
        return dataclasses.replace(result, catalog_path=catalog_path, secs=time.perf_counter() - started)
    catalog_root = Path(catalog_path)
    check_catalog_root(catalog_root)
    bar_type = BarType.from_str(bar_type_string(instrument.id.value, kline_interval))

    frames = []
    for index, path in enumerate(file_paths):
        frames.append(read_klines(path))
        report_progress("read", index + 1, len(file_paths))
    frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    frame = _within(frame, start, end, file_paths)

    source = ", ".join(path.name for path in file_paths)
    check_interval(frame, kline_interval.value, kline_interval.duration_ns, source)
    report = validate_klines(
        frame,
        kline_interval,
        source=source,
        price_precision=instrument.price_precision,
        size_precision=instrument.size_precision,
    )
    if not report.passed(strict):
        raise IngestValidationError(
            f"{source}: validation failed{' (strict)' if strict else ''}: {report.summary(strict)}; "
            f"fix the input (nothing was written to {catalog_root})",
            report,
        )
    unique_frame = frame
    if report.duplicate_timestamps:  # exact duplicate rows (conflicting ones failed validation): keep one
        unique_frame = frame.unique(subset=["ts_open", *OHLCV_COLUMNS], keep="first", maintain_order=True)
    unique_frame = unique_frame.sort("ts_open")

    new_table = _bars_table(unique_frame, bar_type, instrument, kline_interval, report_progress)

    catalog_root.mkdir(parents=True, exist_ok=True)
    with _writer_lock(catalog_root):
        recover_interrupted_writes(catalog_root)
        bar_directory = bar_directory_of(catalog_root, str(bar_type))
        merge = _merge_with_catalog(new_table, bar_directory, replace)
        if merge.changed:
            _replace_directory(catalog_root, bar_directory, merge.table, report_progress)
        instrument_changed = _write_instrument(catalog_root, instrument)

    ts_events = merge.table.column("ts_event")
    result = IngestResult(
        instrument_id=instrument.id.value,
        bar_type=str(bar_type),
        catalog_path=catalog_root,
        input_bars=frame.height,
        duplicate_rows_collapsed=frame.height - unique_frame.height,
        bars_added=merge.added,
        bars_identical=merge.identical,
        bars_replaced=merge.replaced,
        bars_total=merge.table.num_rows,
        first_ts_event=nanos_to_datetime(pc.min(ts_events).as_py()),
        last_ts_event=nanos_to_datetime(pc.max(ts_events).as_py()),
        report=report,
        catalog_changed=merge.changed or instrument_changed,
        secs=time.perf_counter() - started,
    )
    log.info(
        "catalog_written",
        instrument_id=result.instrument_id,
        bar_type=result.bar_type,
        bars=result.input_bars,
        bars_added=result.bars_added,
        bars_identical=result.bars_identical,
        bars_replaced=result.bars_replaced,
        bars_total=result.bars_total,
        catalog=str(catalog_root),
        secs=round(result.secs, 3),
    )
    return result


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def relative_directory(
    bar_type: str | None = None, instrument: Instrument | None = None, funding: str | None = None
) -> str:
    """A bar type's, an instrument definition's or an instrument's funding rates' directory (give one),
    relative to the catalog root: what a write into a remote catalog copies (`location.writable`)."""
    from nautilus_trader.model.data import FundingRateUpdate

    if bar_type is not None:
        return f"data/{class_to_filename(Bar)}/{urisafe_identifier(bar_type)}"
    if funding is not None:
        return f"data/{class_to_filename(FundingRateUpdate)}/{urisafe_identifier(funding)}"
    if instrument is None:
        raise TypeError("relative_directory: give bar_type, instrument or funding")
    return f"data/{class_to_filename(type(instrument))}/{urisafe_identifier(instrument.id)}"


def check_catalog_root(catalog_root: Path) -> None:
    """The catalog root is a folder or can be created as one: checked before any file is read."""
    blocking = next(
        (path for path in (catalog_root, *catalog_root.parents) if path.exists() and not path.is_dir()), None
    )
    if blocking is not None:
        raise ConfigError(
            f"catalog {catalog_root}: {blocking} is a file, not a folder; give a catalog folder "
            "(it is created if missing)"
        )


# -- selection ---------------------------------------------------------------------------------------


def _bound(value: date | datetime, end: bool) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    day_start = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return day_start + timedelta(days=1) if end else day_start


def _within(
    frame: pl.DataFrame,
    start: date | datetime | None,
    end: date | datetime | None,
    paths: list[Path],
) -> pl.DataFrame:
    selected = frame
    if start is not None:
        selected = selected.filter(pl.col("ts_open") >= _bound(start, end=False))
    if end is not None:
        end_bound = _bound(end, end=True)
        is_day = not isinstance(end, datetime)
        selected = selected.filter(
            pl.col("ts_open") < end_bound if is_day else pl.col("ts_open") <= end_bound
        )
    if selected.height == 0:
        names = ", ".join(str(path) for path in paths)
        covered = f"{frame['ts_open'].min()} -> {frame['ts_open'].max()}" if frame.height else "no rows"
        raise DataError(
            f"{names}: no bars open between {start or 'the start'} and {end or 'the end'} (the files cover "
            f"{covered}); widen --start/--end or pass other files",
        )
    return selected


# -- conversion --------------------------------------------------------------------------------------


def _writable(series: pl.Series, dtype: Any) -> np.ndarray:
    return np.array(series.to_numpy(), dtype=dtype, copy=True)  # Cython memoryviews need writable buffers


def bars_table_reference(
    frame: pl.DataFrame,
    bar_type: BarType,
    instrument: Instrument,
    interval: KlineInterval,
) -> pa.Table:
    """Bars through Nautilus objects: `Bar.from_raw_arrays_to_list` then the catalog's Arrow serializer.

    The reference encoding (about 200k bars/s): `_bars_table` must produce exactly these bytes.
    """
    ts_close = _writable(frame["ts_open"].dt.epoch("ns") + interval.duration_ns, np.uint64)
    columns = {name: _writable(frame[name], np.float64) for name in OHLCV_COLUMNS}
    bars = Bar.from_raw_arrays_to_list(
        bar_type,
        instrument.price_precision,
        instrument.size_precision,
        columns["open"],
        columns["high"],
        columns["low"],
        columns["close"],
        columns["volume"],
        ts_close,
        ts_close,
    )
    batch_bytes = nautilus_pyo3.bars_to_arrow_record_batch_bytes(Bar.to_pyo3_list(bars))
    return pa.ipc.open_stream(batch_bytes).read_all()


def _fixed_point(values: np.ndarray, precision: int) -> pa.FixedSizeBinaryArray:
    """float64 -> Nautilus' 128-bit fixed-point raw values, rounded as `Price(value, precision)` rounds.

    Nautilus computes round_half_away_from_zero(value * 10**precision) * 10**(FIXED_PRECISION - precision)
    as a little-endian i128; an Arrow int64 -> decimal128(38, FIXED_PRECISION - precision) cast performs
    that multiplication exactly, and a decimal128 buffer has the same layout.
    """
    scaled = values * 10.0**precision
    rounded = np.rint(scaled)  # half to even; ties fixed below
    ties = np.abs(scaled - np.trunc(scaled)) == 0.5
    rounded[ties] = np.trunc(scaled[ties]) + np.sign(scaled[ties])
    if rounded.size and not np.all(np.abs(rounded) < 2.0**62):
        raise DataError(
            f"a price or volume is too large for {precision} decimals: max {np.abs(values).max()}"
        )
    decimals = pa.array(rounded.astype(np.int64)).cast(pa.decimal128(38, FIXED_PRECISION - precision))
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(FIXED_PRECISION_BYTES),
        len(decimals),
        [None, decimals.buffers()[1]],
        offset=decimals.offset,
    )


def _bars_table(
    frame: pl.DataFrame,
    bar_type: BarType,
    instrument: Instrument,
    interval: KlineInterval,
    progress: ProgressCallback,
) -> pa.Table:
    """Nautilus bars stamped at close, as the Arrow table ParquetDataCatalog would write for them.

    Built column-wise with pyarrow (millions of bars/s) in the schema Nautilus' serializer produces, and
    checked against `bars_table_reference` on a sample of rows every time.
    """
    reference = bars_table_reference(frame[_sample_rows(frame.height)], bar_type, instrument, interval)
    if FIXED_PRECISION_BYTES != 16:  # a standard-precision Nautilus build: use its encoder throughout
        return bars_table_reference(frame, bar_type, instrument, interval)
    ts_close = pa.array((frame["ts_open"].dt.epoch("ns") + interval.duration_ns).to_numpy().astype(np.uint64))
    arrays = []
    for name in OHLCV_COLUMNS:
        precision = instrument.size_precision if name == "volume" else instrument.price_precision
        arrays.append(_fixed_point(frame[name].to_numpy(), precision))
        progress("convert", len(arrays), len(OHLCV_COLUMNS) + 1)
    table = pa.Table.from_arrays([*arrays, ts_close, ts_close], schema=reference.schema)
    progress("convert", len(OHLCV_COLUMNS) + 1, len(OHLCV_COLUMNS) + 1)
    if not table.take(pa.array(_sample_rows(frame.height))).equals(reference):
        raise RuntimeError(f"{bar_type}: the pyarrow bar encoding differs from Nautilus' own; this is a bug")
    return table


def _sample_rows(count: int, size: int = 2_000) -> np.ndarray:
    return np.unique(np.linspace(0, count - 1, min(count, size)).astype(np.int64))


# -- merge -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Merge:
    table: pa.Table
    added: int
    identical: int
    replaced: int

    @property
    def changed(self) -> bool:
        return self.added > 0 or self.replaced > 0


def _read_directory(directory: Path) -> pa.Table | None:
    files = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
    if not files:
        return None
    tables = [pq.read_table(file) for file in files]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _raw_matrix(table: pa.Table) -> np.ndarray:
    """(rows, 5 * 16) bytes of the fixed-point OHLCV columns, to compare bars exactly."""
    parts = []
    for name in RAW_COLUMNS:
        column = table.column(name).combine_chunks()
        width = column.type.byte_width
        buffer = np.frombuffer(column.buffers()[1], dtype=np.uint8)
        parts.append(buffer[column.offset * width : (column.offset + len(column)) * width].reshape(-1, width))
    return np.concatenate(parts, axis=1)


def _decode_raw(value: bytes) -> float:
    return int.from_bytes(value, "little", signed=True) / 10**FIXED_PRECISION


def _describe_bar(table: pa.Table, row: int) -> str:
    values = [_decode_raw(table.column(name)[row].as_py()) for name in RAW_COLUMNS]
    return "/".join(f"{value:g}" for value in values)


def _merge_with_catalog(new_table: pa.Table, directory: Path, replace: bool) -> _Merge:
    existing = _read_directory(directory)
    if existing is None:
        return _Merge(new_table, added=new_table.num_rows, identical=0, replaced=0)
    metadata_keys = (b"bar_type", b"price_precision", b"size_precision")
    old_meta = {key: (existing.schema.metadata or {}).get(key) for key in metadata_keys}
    new_meta = {key: (new_table.schema.metadata or {}).get(key) for key in metadata_keys}
    if old_meta != new_meta:
        raise DataError(
            f"{directory}: the catalog holds these bars with {_meta_text(old_meta)}, the input has "
            f"{_meta_text(new_meta)}; delete that directory to re-ingest with the new instrument definition",
        )
    existing = existing.sort_by("ts_init")
    old_ts = existing.column("ts_event").to_numpy()
    new_ts = new_table.column("ts_event").to_numpy()
    if np.unique(old_ts).size != old_ts.size:
        raise DataError(f"{directory}: the catalog holds duplicate bar timestamps; delete and re-ingest it")
    _, old_index, new_index = np.intersect1d(old_ts, new_ts, assume_unique=True, return_indices=True)
    differs = np.zeros(old_index.size, dtype=bool)
    if old_index.size:
        old_raw = _raw_matrix(existing.take(pa.array(old_index)))
        new_raw = _raw_matrix(new_table.take(pa.array(new_index)))
        differs = np.any(old_raw != new_raw, axis=1)
    replaced = int(differs.sum())
    if replaced and not replace:
        shown = []
        for position in np.flatnonzero(differs)[:CONFLICTS_SHOWN]:
            old_row, new_row = int(old_index[position]), int(new_index[position])
            catalog_bar, input_bar = _describe_bar(existing, old_row), _describe_bar(new_table, new_row)
            shown.append(
                f"{nanos_to_datetime(int(old_ts[old_row])):%Y-%m-%d %H:%M} close-time "
                f"(catalog o/h/l/c/v {catalog_bar}, input {input_bar})",
            )
        raise DataError(
            f"{directory}: {replaced} input bars differ from the bars the catalog holds at the same time, "
            f"first at {'; '.join(shown)}; re-run with --replace to overwrite them with the input, "
            f"or fix the input",
        )
    keep_old = np.ones(old_ts.size, dtype=bool)
    keep_old[old_index] = False  # the input's version of every overlapping bar is written
    merged = pa.concat_tables([existing.filter(pa.array(keep_old)), new_table.cast(existing.schema)])
    merged = merged.sort_by("ts_init").replace_schema_metadata(existing.schema.metadata)
    return _Merge(
        merged,
        added=int(new_ts.size - old_index.size),
        identical=int(old_index.size - replaced),
        replaced=replaced,
    )


def _meta_text(meta: dict[bytes, bytes | None]) -> str:
    return ", ".join(f"{key.decode()}={(value or b'?').decode()}" for key, value in meta.items())


# -- atomic writes -----------------------------------------------------------------------------------


def _rename(source: Path, target: Path) -> None:
    os.rename(source, target)


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Nautilus' bar schema, written compactly: the fixed-point price columns byte-stream-split, timestamps
    delta-encoded, zstd. Half the size of the default snappy file; Nautilus' Rust (DataFusion) and pyarrow
    readers both read it (tests/unit/data/test_ingest.py reads every ingest back through ParquetDataCatalog).
    """
    encodings = {name: "BYTE_STREAM_SPLIT" for name in RAW_COLUMNS}
    encodings |= {"ts_event": "DELTA_BINARY_PACKED", "ts_init": "DELTA_BINARY_PACKED"}
    pq.write_table(
        table,
        path,
        row_group_size=ROWS_PER_GROUP,
        compression="zstd",
        use_dictionary=False,
        column_encoding=encodings,
    )


def _file_name(first_ts_init: int, last_ts_init: int) -> str:
    """ParquetDataCatalog's file naming: '{first}_{last}.parquet' with ':' and '.' as '-'."""

    def stamp(nanos: int) -> str:
        return unix_nanos_to_iso8601(nanos).replace(":", "-").replace(".", "-")

    return f"{stamp(first_ts_init)}_{stamp(last_ts_init)}.parquet"


@contextmanager
def _writer_lock(catalog_root: Path) -> Iterator[None]:
    """One writer per catalog. The lock file and an empty staging folder are removed on the way out, so
    that a finished or refused write leaves the catalog exactly as it found it (byte for byte)."""
    staging = catalog_root / STAGING_DIRNAME
    staging.mkdir(parents=True, exist_ok=True)
    lock_path = staging / LOCK_FILENAME
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(
                f"{catalog_root}: another ingest is writing to this catalog; wait for it to finish",
            ) from None
        # The holder before us may have removed the file we opened: then another writer can lock a new
        # one, and ours protects nothing.
        if not lock_path.exists() or os.stat(lock_path).st_ino != os.fstat(handle.fileno()).st_ino:
            raise DataError(
                f"{catalog_root}: another ingest is writing to this catalog; wait for it to finish"
            )
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)  # while still holding the lock (see the inode check above)
            with contextlib.suppress(OSError):
                staging.rmdir()  # only when empty: staged writes of a crash stay for recovery
            fcntl.flock(handle, fcntl.LOCK_UN)


def _new_stage(catalog_root: Path, target: Path) -> Path:
    stage = catalog_root / STAGING_DIRNAME / uuid.uuid4().hex
    (stage / "new").mkdir(parents=True)
    (stage / "target").write_text(str(target.relative_to(catalog_root)))
    return stage


def _swap_in(stage: Path, target: Path) -> None:
    """Put stage/new in place of `target` with two renames; roll back if the second one fails."""
    old = stage / "old"
    target.parent.mkdir(parents=True, exist_ok=True)
    moved_old = False
    try:
        if target.exists():
            _rename(target, old)
            moved_old = True
        _rename(stage / "new", target)
    except BaseException:
        if moved_old and not target.exists():
            os.rename(old, target)  # if this fails too, the stage stays for recover_interrupted_writes
        shutil.rmtree(stage, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)


def _replace_directory(
    catalog_root: Path, directory: Path, table: pa.Table, progress: ProgressCallback
) -> None:
    stage = _new_stage(catalog_root, directory)
    try:
        ts_init = table.column("ts_init")
        name = _file_name(pc.min(ts_init).as_py(), pc.max(ts_init).as_py())
        progress("write", 0, table.num_rows)
        _write_parquet(table, stage / "new" / name)
        progress("write", table.num_rows, table.num_rows)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _swap_in(stage, directory)


def _write_instrument(catalog_root: Path, instrument: Instrument) -> bool:
    """Write the instrument definition with Nautilus' own writer into a stage, swap it in if it changed."""
    directory = (
        catalog_root / "data" / class_to_filename(type(instrument)) / urisafe_identifier(instrument.id)
    )
    stage = _new_stage(catalog_root, directory)
    try:
        staged_catalog = ParquetDataCatalog(stage / "catalog")
        staged_catalog.write_data([instrument])
        written = stage / "catalog" / directory.relative_to(catalog_root)
        if _same_files(written, directory):
            shutil.rmtree(stage, ignore_errors=True)
            return False
        (stage / "new").rmdir()
        _rename(written, stage / "new")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _swap_in(stage, directory)
    return True


def _same_files(left: Path, right: Path) -> bool:
    if not right.is_dir():
        return False
    left_files = {path.name: path.read_bytes() for path in left.glob("*.parquet")}
    right_files = {path.name: path.read_bytes() for path in right.glob("*.parquet")}
    return left_files == right_files


def recover_interrupted_writes(catalog_root: str | Path) -> list[Path]:
    """Undo swaps a crash cut between their two renames; clear stale stages. Returns directories restored."""
    staging = Path(catalog_root) / STAGING_DIRNAME
    restored: list[Path] = []
    if not staging.is_dir():
        return restored
    for stage in staging.iterdir():
        if not stage.is_dir():
            continue
        target_file, old = stage / "target", stage / "old"
        if target_file.is_file() and old.is_dir():
            target = Path(catalog_root) / target_file.read_text()
            if not target.exists():
                os.rename(old, target)
                restored.append(target)
                log.warning("catalog_write_rolled_back", directory=str(target))
        shutil.rmtree(stage, ignore_errors=True)
    return restored


# -- for other writers of the catalog (qa_engine.data.download, qa_engine.data.funding) --------------


def encode_bars(frame: pl.DataFrame, instrument: Instrument, interval: KlineInterval) -> pa.Table:
    """Bars of a normalised kline frame (sorted, unique open times) as the Arrow table of Nautilus' bar
    schema, stamped at close and checked against Nautilus' own encoder like every ingest."""
    bar_type = BarType.from_str(bar_type_string(instrument.id.value, interval))
    return _bars_table(frame, bar_type, instrument, interval, _no_progress)


@contextmanager
def catalog_writer(catalog_root: str | Path) -> Iterator[Path]:
    """Hold the catalog's writer lock (one writer at a time), after undoing writes a crash interrupted.

    Yields the catalog root. A process killed while holding it releases the lock with its file handle.
    """
    root = Path(catalog_root)
    root.mkdir(parents=True, exist_ok=True)
    with _writer_lock(root):
        recover_interrupted_writes(root)
        yield root


def merge_bars_into_catalog(catalog_root: Path, table: pa.Table, replace: bool = False) -> tuple[int, int]:
    """Merge an encoded bar table into its bar type's directory, rewriting it atomically (as an ingest
    does). Call inside `catalog_writer`. Returns (bars added, bars already held identically)."""
    bar_type = (table.schema.metadata or {})[b"bar_type"].decode()
    directory = bar_directory_of(catalog_root, bar_type)
    merge = _merge_with_catalog(table, directory, replace)
    if merge.changed:
        _replace_directory(catalog_root, directory, merge.table, _no_progress)
    return merge.added, merge.identical


def add_bar_file(catalog_root: Path, directory: Path, table: pa.Table) -> Path:
    """Add `table` to `directory` as one new Parquet file, atomically: written in the staging folder, then
    renamed in. The caller guarantees its ts_init range is disjoint from the directory's files (Nautilus'
    catalog requires disjoint file intervals). Call inside `catalog_writer`."""
    ts_init = table.column("ts_init")
    name = _file_name(pc.min(ts_init).as_py(), pc.max(ts_init).as_py())
    stage = _new_stage(catalog_root, directory)
    try:
        _write_parquet(table, stage / "new" / name)
        directory.mkdir(parents=True, exist_ok=True)
        _rename(stage / "new" / name, directory / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return directory / name


def replace_bar_directory(catalog_root: Path, directory: Path, table: pa.Table) -> None:
    """Replace every file of `directory` by one file holding `table`, atomically. Call inside
    `catalog_writer`."""
    _replace_directory(catalog_root, directory, table, _no_progress)


def replace_directory_with(catalog_root: Path, directory: Path, write: Callable[[Path], None]) -> None:
    """Replace `directory` by what `write(new_directory)` puts into a fresh staging folder, atomically
    (two renames, rolled back on failure or by the next writer after a crash). Call inside
    `catalog_writer`."""
    stage = _new_stage(catalog_root, directory)
    try:
        write(stage / "new")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _swap_in(stage, directory)


def write_instrument(catalog_root: Path, instrument: Instrument) -> bool:
    """Write the instrument definition (Nautilus' own writer), swapped in only if it changed. Call inside
    `catalog_writer`. Returns whether the catalog changed."""
    return _write_instrument(catalog_root, instrument)


def write_bars_parquet(table: pa.Table, path: Path) -> None:
    """Write a bar table with the catalog's compact encoding (see `_write_parquet`)."""
    _write_parquet(table, path)
