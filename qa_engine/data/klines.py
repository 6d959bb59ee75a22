"""Read kline files into one normalised polars frame.

Accepted inputs (the format is detected from the file, not from its name alone):

- Parquet with a time column and OHLCV columns (the schema of data/klines: ts_open, open, high, low,
  close, volume), the time column as a timestamp, epoch integers or ISO strings.
- CSV with a header row. Column names are matched case-insensitively against common aliases
  (ts_open/open_time/timestamp/date/..., open, high, low, close, volume, and optional quote_volume,
  count/trade_count, taker_buy_volume, taker_buy_quote_volume). Times as ISO strings (naive = UTC) or
  epoch integers.
- Binance public data dumps (data.binance.vision): a zip holding one CSV, or the CSV itself, with 12
  columns (open_time, open, high, low, close, volume, close_time, quote_volume, count, taker_buy_volume,
  taker_buy_quote_volume, ignore), without a header (older dumps) or with one (newer dumps).

Epoch integers are read per row by magnitude: seconds, milliseconds, microseconds or nanoseconds between
2009-01-01 and 2100-01-01 (Binance dumps switched from ms to µs on 2025-01-01, and a file may mix both).

The result (`KLINE_SCHEMA` plus whichever `OPTIONAL_COLUMNS` the input had) keeps the file's row order;
nothing is dropped, filled or rounded. Any problem is a DataError naming the file, the line or row, and
what to do.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import polars as pl

from qa_engine.errors import DataError

KLINE_SCHEMA: dict[str, pl.DataType] = {
    "ts_open": pl.Datetime("ns", "UTC"),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
}
OPTIONAL_COLUMNS: dict[str, pl.DataType] = {
    "quote_volume": pl.Float64(),
    "trade_count": pl.Int64(),
    "taker_buy_volume": pl.Float64(),
    "taker_buy_quote_volume": pl.Float64(),
}
PRICE_COLUMNS = ("open", "high", "low", "close")
BINANCE_DUMP_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
# Normalised name -> accepted input names (compared lower-case, spaces and dashes as underscores).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "ts_open": (
        "ts_open",
        "open_time",
        "opentime",
        "timestamp",
        "date",
        "datetime",
        "time",
        "ts",
        "ts_event",
    ),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v", "base_volume"),
    "quote_volume": ("quote_volume", "quote_asset_volume", "quote_av"),
    "trade_count": ("trade_count", "count", "trades", "number_of_trades"),
    "taker_buy_volume": (
        "taker_buy_volume",
        "taker_buy_base_asset_volume",
        "taker_buy_base_volume",
        "tb_base_av",
    ),
    "taker_buy_quote_volume": ("taker_buy_quote_volume", "taker_buy_quote_asset_volume", "tb_quote_av"),
}

# Epoch units by magnitude: a value is read in the unit whose 2009-01-01 .. 2100-01-01 range holds it.
_EPOCH_2009_SECS = 1_230_768_000
_EPOCH_2100_SECS = 4_102_444_800
_NANOS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_UNIT_SCALE_FROM_SECS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


@dataclass(frozen=True)
class _Source:
    """Where rows come from, for error messages: `label` names the file, `first_line` the first data line."""

    label: str
    first_line: int  # file line number of the first data row (2 after a header, 1 without); 0 = Parquet row
    raw_lines: list[str] | None = None  # the text lines, kept only to quote a bad line in an error

    def where(self, index: int) -> str:
        if self.first_line == 0:
            return f"{self.label} row {index + 1}"
        return f"{self.label} line {index + self.first_line}"

    def quote(self, index: int) -> str:
        if self.raw_lines is None or self.first_line == 0:
            return ""
        line_index = index + self.first_line - 1
        if 0 <= line_index < len(self.raw_lines):
            return f" ('{self.raw_lines[line_index][:160]}')"
        return ""


def read_klines(path: str | Path) -> pl.DataFrame:
    """Read one kline file (Parquet, CSV with header, Binance dump CSV or zip) into the normalised frame."""
    file_path = Path(path)
    if file_path.is_dir():
        raise DataError(
            f"{file_path} is a directory, not a kline file; give the file(s) in it "
            f"(e.g. {file_path}/*.parquet)"
        )
    if not file_path.is_file():
        raise DataError(f"{file_path}: no such file; give the path of a kline file (.parquet, .csv or .zip)")
    if file_path.suffix.lower() == ".parquet" or _is_parquet(file_path):
        return _read_parquet(file_path)
    if zipfile.is_zipfile(file_path):
        label, text = _read_zip_member(file_path)
    elif file_path.suffix.lower() == ".zip":
        raise DataError(f"{file_path}: not a readable zip archive (truncated download?); re-download it")
    else:
        label, text = str(file_path), _decode(file_path.read_bytes(), str(file_path))
    return _read_csv_text(text, label)


def read_klines_many(paths: list[str | Path]) -> pl.DataFrame:
    """Read several kline files and stack them (file order kept; optional columns some lack are null)."""
    if not paths:
        raise DataError("no kline files given; pass at least one .parquet, .csv or .zip path")
    frames = [read_klines(path) for path in paths]
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


# -- formats -----------------------------------------------------------------------------------------


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several error types for corrupt or truncated files
        raise DataError(
            f"{path}: cannot read Parquet ({exc}); the file is truncated or corrupt: re-create it"
        ) from exc
    return _normalise(frame, _Source(str(path), first_line=0))


def _read_zip_member(path: Path) -> tuple[str, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            if len(members) != 1 or not members[0].filename.lower().endswith(".csv"):
                names = ", ".join(info.filename for info in members) or "nothing"
                raise DataError(f"{path}: a kline zip must hold exactly one .csv file; it holds {names}")
            label = f"{path}!{members[0].filename}"
            data = archive.read(members[0])
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(
            f"{path}: cannot read the zip archive ({exc}); it is truncated or corrupt: re-download it"
        ) from exc
    return label, _decode(data, label)


def _decode(data: bytes, label: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{label}: not a UTF-8 text file (byte {exc.start}); give a CSV, Parquet or zip"
        ) from exc


def _first_field_is_number(line: str) -> bool:
    first = line.split(",", 1)[0].strip().strip('"')
    try:
        float(first)
    except ValueError:
        return False
    return True


def _read_csv_text(text: str, label: str) -> pl.DataFrame:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(f"{label}: the file is empty; re-download it")
    has_header = not _first_field_is_number(lines[0])
    field_count = len(lines[0].split(","))
    if has_header:
        column_names = None
    elif field_count == len(BINANCE_DUMP_COLUMNS):
        column_names = list(BINANCE_DUMP_COLUMNS)
    elif field_count == len(KLINE_SCHEMA):
        column_names = list(KLINE_SCHEMA)
    else:
        raise DataError(
            f"{label} line 1: {field_count} fields and no header; expected a header row, or 12 fields "
            f"(Binance kline dump) or 6 fields (time, open, high, low, close, volume)",
        )
    try:
        frame = pl.read_csv(
            io.StringIO("\n".join(lines)),
            has_header=has_header,
            new_columns=column_names,
            infer_schema=False,
        )
    except pl.exceptions.ComputeError as exc:
        raise DataError(
            f"{label}: malformed CSV ({str(exc).splitlines()[0]}); fix or re-download the file"
        ) from exc
    if frame.height == 0:
        raise DataError(f"{label}: a header but no rows; re-download the file")
    source = _Source(label, first_line=2 if has_header else 1, raw_lines=lines)
    if any(frame.null_count().row(0)):  # polars pads short rows with nulls: name the short row precisely
        _raise_on_short_rows(source, field_count)
    return _normalise(frame, source)


def _raise_on_short_rows(source: _Source, field_count: int) -> None:
    """A row with fewer fields than the first line: polars pads it with nulls; name it as truncated."""
    if source.raw_lines is None:
        return
    first_data_line = source.first_line - 1
    for index, line in enumerate(source.raw_lines[first_data_line:]):
        fields = line.count(",") + 1
        if fields < field_count:
            raise DataError(
                f"{source.where(index)} has {fields} of {field_count} fields{source.quote(index)}: "
                f"the file is truncated or corrupt; re-download it",
            )


# -- normalisation -----------------------------------------------------------------------------------


def _canonical(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _resolve_columns(columns: list[str], label: str) -> dict[str, str]:
    """Normalised name -> input column name; a missing required column is a DataError listing the found."""
    by_canonical = {_canonical(column): column for column in columns}
    resolved: dict[str, str] = {}
    for target, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in by_canonical:
                resolved[target] = by_canonical[alias]
                break
    missing = [name for name in KLINE_SCHEMA if name not in resolved]
    if missing:
        raise DataError(
            f"{label}: missing column(s) {', '.join(missing)}; found {', '.join(columns)}. Name the time "
            f"column one of {', '.join(COLUMN_ALIASES['ts_open'])} and the others open/high/low/close/volume",
        )
    return resolved


def _normalise(frame: pl.DataFrame, source: _Source) -> pl.DataFrame:
    resolved = _resolve_columns(frame.columns, source.label)
    columns: dict[str, pl.Series] = {"ts_open": _parse_times(frame[resolved["ts_open"]], source)}
    for name in (*KLINE_SCHEMA.keys(), *OPTIONAL_COLUMNS.keys()):
        if name == "ts_open" or name not in resolved:
            continue
        dtype = KLINE_SCHEMA.get(name) or OPTIONAL_COLUMNS[name]
        columns[name] = _parse_numbers(frame[resolved[name]], name, dtype, source)
    return pl.DataFrame(columns)


def _first_index(mask: pl.Series) -> int | None:
    indices = mask.arg_true()
    return int(indices[0]) if len(indices) else None


def _parse_numbers(series: pl.Series, name: str, dtype: pl.DataType, source: _Source) -> pl.Series:
    bad_missing = _first_index(series.is_null())
    if bad_missing is not None:
        raise DataError(
            f"{source.where(bad_missing)}: no value in column '{series.name}'{source.quote(bad_missing)}; "
            f"the file is truncated or corrupt: re-download it",
        )
    if series.dtype == pl.String:
        text = series.str.strip_chars()
        parsed = text.cast(dtype, strict=False)
        bad = _first_index(parsed.is_null())
        if bad is not None:
            raise DataError(
                f"{source.where(bad)}: cannot read '{series[bad]}' in column '{series.name}' as a number"
                f"{source.quote(bad)}; fix the value or re-download the file",
            )
        return parsed.alias(name)
    try:
        return series.cast(dtype).alias(name)
    except pl.exceptions.InvalidOperationError as exc:
        raise DataError(
            f"{source.label}: column '{series.name}' of type {series.dtype} is not numeric"
        ) from exc


def _parse_times(series: pl.Series, source: _Source) -> pl.Series:
    bad_missing = _first_index(series.is_null())
    if bad_missing is not None:
        raise DataError(
            f"{source.where(bad_missing)}: no value in time column '{series.name}'"
            f"{source.quote(bad_missing)}; the file is truncated or corrupt: re-download it",
        )
    if isinstance(series.dtype, pl.Datetime):
        times = series.dt.cast_time_unit("ns")
        if series.dtype.time_zone is None:  # naive timestamps are UTC by convention
            return times.dt.replace_time_zone("UTC").alias("ts_open")
        return times.dt.convert_time_zone("UTC").alias("ts_open")
    if series.dtype.is_integer():
        return _epoch_to_times(series.cast(pl.Int64), source)
    if series.dtype.is_float():
        whole = series.cast(pl.Int64, strict=False)
        bad = _first_index(whole.is_null() | (whole.cast(pl.Float64) != series))
        if bad is not None:
            raise DataError(f"{source.where(bad)}: time {series[bad]} is not a whole epoch number")
        return _epoch_to_times(whole, source)
    if series.dtype == pl.String:
        text = series.str.strip_chars()
        if text.str.contains(r"^-?\d+$").all():
            return _epoch_to_times(text.cast(pl.Int64), source)
        return _iso_to_times(text, source)
    raise DataError(
        f"{source.label}: time column '{series.name}' has type {series.dtype}; expected times or epochs"
    )


def epoch_unit_expression(column: str) -> pl.Expr:
    """Per-row epoch unit of an integer column by magnitude ('s', 'ms', 'us', 'ns', or null if none fits)."""
    expression = pl.lit(None, dtype=pl.String)
    for unit in ("ns", "us", "ms", "s"):
        scale = _UNIT_SCALE_FROM_SECS[unit]
        in_range = pl.col(column).is_between(
            _EPOCH_2009_SECS * scale, _EPOCH_2100_SECS * scale, closed="left"
        )
        expression = pl.when(in_range).then(pl.lit(unit)).otherwise(expression)
    return expression


def _epoch_to_times(values: pl.Series, source: _Source) -> pl.Series:
    frame = pl.DataFrame({"epoch": values}).with_columns(unit=epoch_unit_expression("epoch"))
    bad = _first_index(frame["unit"].is_null())
    if bad is not None:
        raise DataError(
            f"{source.where(bad)}: time {values[bad]} is not a Unix epoch in s, ms, µs or ns between "
            f"2009-01-01 and 2100-01-01 (unknown unit){source.quote(bad)}; check the time column of the file",
        )
    nanos_per_unit = pl.col("unit").replace_strict(_NANOS_PER_UNIT, return_dtype=pl.Int64)
    nanos = frame.select(pl.col("epoch") * nanos_per_unit)["epoch"]
    return nanos.cast(pl.Datetime("ns", "UTC")).alias("ts_open")


def _iso_to_times(text: pl.Series, source: _Source) -> pl.Series:
    """ISO-8601 strings (naive = UTC, or with an offset) -> datetime[ns, UTC]."""
    try:
        parsed = text.str.to_datetime(time_unit="ns", strict=False)
        if parsed.null_count() == 0:
            if parsed.dtype.time_zone is None:
                return parsed.dt.replace_time_zone("UTC").alias("ts_open")
            return parsed.dt.convert_time_zone("UTC").alias("ts_open")
    except pl.exceptions.PolarsError:
        pass
    # Mixed ISO forms (with and without offsets): pandas parses each string on its own.
    parsed_pandas = pd.to_datetime(text.to_pandas(), utc=True, format="ISO8601", errors="coerce")
    result = pl.from_pandas(parsed_pandas).dt.cast_time_unit("ns").dt.convert_time_zone("UTC")
    bad = _first_index(result.is_null())
    if bad is not None:
        raise DataError(
            f"{source.where(bad)}: cannot read time '{text[bad]}'{source.quote(bad)}; write times as "
            f"ISO-8601 (2025-01-01 00:05:00, UTC) or as epoch integers (s, ms, µs or ns)",
        )
    return result.alias("ts_open")


def epoch_unit_counts(values: pl.Series) -> dict[str, int]:
    """How many of `values` (epoch integers) read as s, ms, us and ns: tells whether a dump mixes units."""
    frame = pl.DataFrame({"epoch": values.cast(pl.Int64)}).with_columns(unit=epoch_unit_expression("epoch"))
    counts = frame.group_by("unit").len()
    return {str(row["unit"]): int(row["len"]) for row in counts.iter_rows(named=True)}


_UNITS_NS = (("d", 86_400_000_000_000), ("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000))


def bar_spacing_ns(frame: pl.DataFrame) -> int | None:
    """The most common distance between consecutive open times (gaps aside); None under two bars."""
    steps = frame.get_column("ts_open").dt.epoch("ns").sort().diff().drop_nulls()
    steps = steps.filter(steps > 0)
    return int(steps.mode().min()) if steps.len() else None


def interval_text(step_ns: int) -> str:
    """300_000_000_000 -> '5m'; a spacing of no whole unit in nanoseconds."""
    for unit, size in _UNITS_NS:
        if step_ns % size == 0:
            return f"{step_ns // size}{unit}"
    return f"{step_ns:,} ns"


def check_interval(frame: pl.DataFrame, interval: str, step_ns: int, source: str) -> None:
    """Refuse klines whose own spacing is not the stated interval (e.g. 5m bars given as --interval 1m,
    which would be stored as 1-minute bars with wrong close stamps and four-bar 'gaps')."""
    spacing = bar_spacing_ns(frame)
    if spacing is not None and spacing != step_ns:
        raise DataError(
            f"interval '{interval}' does not match {source}: its bars are {interval_text(spacing)} apart; "
            f"give interval {interval_text(spacing)}"
        )
