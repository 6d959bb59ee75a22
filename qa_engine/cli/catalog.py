"""`qa catalog`: ingest kline files into the ParquetDataCatalog, list what it holds, validate it."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TaskID
from rich.table import Table

from qa_engine.cli.console import progress as progress_bar
from qa_engine.cli.console import stdout_console
from qa_engine.cli.console import table as make_table
from qa_engine.data import location
from qa_engine.data.catalog import catalog_coverage
from qa_engine.data.catalog import nanos_to_datetime
from qa_engine.data.catalog_validation import validate_catalog
from qa_engine.data.funding import funding_coverage
from qa_engine.data.ingest import IngestResult
from qa_engine.data.ingest import IngestValidationError
from qa_engine.data.ingest import ingest_klines
from qa_engine.data.intervals import KlineInterval
from qa_engine.data.markets import Market
from qa_engine.data.markets import market_spec
from qa_engine.data.validation import ValidationReport
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.logging import configure_logging
from qa_engine.plugins import load_instrument

DEFAULT_CATALOG = "catalog"
# --catalog is a str, not a Path: Path("s3://bucket/x") would become "s3:/bucket/x".
CatalogOption = Annotated[
    str,
    typer.Option("--catalog", metavar="<path>", help="catalog root: a folder, or s3://bucket/prefix"),
]
LocalCatalogOption = Annotated[
    str, typer.Option("--catalog", metavar="<path>", help="catalog root directory (local)")
]
STATUS_STYLE = {"ok": "green", "warning": "yellow", "error": "bold red", "": ""}

catalog_app = typer.Typer(
    name="catalog",
    help="Build and inspect the ParquetDataCatalog of bars (stamped at bar close).",
    no_args_is_help=True,
    add_completion=False,
)


def _fold(table: Table) -> Table:
    """Wrap long ids inside their cell instead of cutting them with an ellipsis."""
    for column in table.columns:
        column.overflow = "fold"
    return table


def validation_table(report: ValidationReport, strict: bool = False) -> Table:
    """The validation report as a rich table: check, result, status."""
    title = f"Validation{' (strict)' if strict else ''}: {report.source}"
    result = _fold(make_table(title, ["check", "result", "status"]))
    for check, value, status in report.rows(strict):
        style = STATUS_STYLE.get(status, "")
        result.add_row(check, value, f"[{style}]{status}[/]" if style else status)
    return result


def _result_table(result: IngestResult) -> Table:
    summary = _fold(make_table(f"Catalog {result.catalog_path}", ["field", "value"]))
    rows = [
        ("bar type", result.bar_type),
        ("bars read", f"{result.input_bars:,}"),
        ("duplicate rows collapsed", f"{result.duplicate_rows_collapsed:,}"),
        ("bars added", f"{result.bars_added:,}"),
        ("bars already in catalog (identical)", f"{result.bars_identical:,}"),
        ("bars replaced", f"{result.bars_replaced:,}"),
        ("bars of this type in catalog", f"{result.bars_total:,}"),
        ("first ts_event (bar close)", f"{result.first_ts_event:%Y-%m-%d %H:%M}"),
        ("last ts_event (bar close)", f"{result.last_ts_event:%Y-%m-%d %H:%M}"),
        ("catalog changed", "yes" if result.catalog_changed else "no (nothing new)"),
        ("time", f"{result.secs:.2f} s ({result.bars_per_sec:,.0f} bars/s)"),
    ]
    for field, value in rows:
        summary.add_row(field, value)
    return summary


@catalog_app.command("ingest")
def ingest_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="kline files: Parquet, CSV with a header, Binance dump .zip or .csv", show_default=False
        ),
    ],
    venue: Annotated[
        Market,
        typer.Option("--venue", "--market", help="market the klines come from", show_default=False),
    ],
    symbol: Annotated[
        str, typer.Option("--symbol", help="exchange symbol, e.g. BTCUSDT", show_default=False)
    ],
    interval: Annotated[KlineInterval, typer.Option("--interval", help="kline interval", show_default=False)],
    catalog: CatalogOption = DEFAULT_CATALOG,
    start: Annotated[
        datetime | None,
        typer.Option("--start", formats=["%Y-%m-%d"], help="first UTC day to ingest (bar open time)"),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--end", formats=["%Y-%m-%d"], help="last UTC day to ingest, inclusive"),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="treat every validation finding as an error")
    ] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="overwrite catalog bars that differ from the input"),
    ] = False,
    json_logs: Annotated[bool, typer.Option("--json-logs", help="log as JSON lines on stderr")] = False,
) -> None:
    """Validate kline files and write them into the catalog as Nautilus bars stamped at bar close."""
    configure_logging(json_logs=json_logs)
    if start and end and end < start:
        raise ConfigError(f"--end {end:%Y-%m-%d} is before --start {start:%Y-%m-%d}")
    catalog_root = location.catalog_option(catalog)
    instrument = load_instrument(venue.value, symbol)
    expected_id = market_spec(venue).instrument_id(symbol)
    if instrument.id.value != expected_id:
        raise ConfigError(
            f"the {venue.value} provider returned {instrument.id} for {symbol}; expected {expected_id}"
        )

    with progress_bar() as bars:
        tasks: dict[str, TaskID] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        try:
            result = ingest_klines(
                paths,
                instrument,
                interval,
                catalog_root,
                start=start.date() if start else None,
                end=end.date() if end else None,
                strict=strict,
                replace=replace,
                progress=on_progress,
            )
        except IngestValidationError as exc:
            stdout_console.print(validation_table(exc.report, strict))
            raise
    stdout_console.print(validation_table(result.report, strict))
    stdout_console.print(_result_table(result))


@catalog_app.command("ingest-funding")
def ingest_funding_command(
    path: Annotated[
        Path,
        typer.Argument(help="funding-rate file: Parquet or CSV with ts, funding_rate", show_default=False),
    ],
    venue: Annotated[
        Market,
        typer.Option("--venue", "--market", help="market the rates come from", show_default=False),
    ],
    symbol: Annotated[
        str, typer.Option("--symbol", help="exchange symbol, e.g. BTCUSDT", show_default=False)
    ],
    catalog: CatalogOption = DEFAULT_CATALOG,
    start: Annotated[
        datetime | None,
        typer.Option("--start", formats=["%Y-%m-%d"], help="first UTC day to ingest"),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--end", formats=["%Y-%m-%d"], help="last UTC day to ingest, inclusive"),
    ] = None,
    json_logs: Annotated[bool, typer.Option("--json-logs", help="log as JSON lines on stderr")] = False,
) -> None:
    """Write a perpetual's funding rates into the catalog as Nautilus FundingRateUpdate (the backtest
    settles funding from them). Rows the catalog holds with the same rate are kept once; a different rate
    at the same time is refused."""
    import polars as pl

    from qa_engine.data.funding import merge_funding_rates
    from qa_engine.data.funding import read_funding_file
    from qa_engine.data.ingest import catalog_writer
    from qa_engine.data.ingest import check_catalog_root
    from qa_engine.data.ingest import relative_directory
    from qa_engine.data.ingest import write_instrument

    configure_logging(json_logs=json_logs)
    if start and end and end < start:
        raise ConfigError(f"--end {end:%Y-%m-%d} is before --start {start:%Y-%m-%d}")
    catalog_root = location.catalog_option(catalog)
    if not location.is_remote(catalog_root):
        check_catalog_root(Path(catalog_root))
    instrument = load_instrument(venue.value, symbol)
    frame = read_funding_file(path)
    if start:
        frame = frame.filter(pl.col("ts_event") >= int(start.replace(tzinfo=UTC).timestamp() * 1e9))
    if end:
        last = int((end.replace(tzinfo=UTC) + timedelta(days=1)).timestamp() * 1e9)
        frame = frame.filter(pl.col("ts_event") < last)
    if frame.is_empty():
        raise DataError(f"{path}: no funding rates in the requested days")
    directories = [relative_directory(instrument=instrument), relative_directory(funding=instrument.id.value)]
    with location.writable(catalog_root, directories) as local_root, catalog_writer(local_root) as root:
        write_instrument(root, instrument)
        merge = merge_funding_rates(root, instrument.id.value, frame)
    first, last_ts = frame["ts_event"].min(), frame["ts_event"].max()
    stdout_console.print(
        f"{instrument.id}: {frame.height} funding rates {nanos_to_datetime(first):%Y-%m-%d %H:%M} -> "
        f"{nanos_to_datetime(last_ts):%Y-%m-%d %H:%M}; added {merge.added}, already held {merge.identical}, "
        f"catalog holds {merge.total}"
    )


@catalog_app.command("list")
def list_command(
    catalog_option: CatalogOption = DEFAULT_CATALOG,
) -> None:
    """List what the catalog holds: bar types (first and last bar close, rows), instruments, funding rates."""
    catalog = location.catalog_option(catalog_option)
    coverage = catalog_coverage(catalog)
    listing = _fold(make_table(f"Catalog {catalog}", ["instrument", "bar type", "first", "last", "rows"]))
    for item in coverage:
        listing.add_row(
            item.instrument_id,
            item.bar_type,
            f"{item.first_ts_event:%Y-%m-%d %H:%M}",
            f"{item.last_ts_event:%Y-%m-%d %H:%M}",
            f"{item.bars:,}",
        )
    if not coverage:
        listing.caption = "no bars yet: add some with `qa catalog ingest` or `qa data download`"
    stdout_console.print(listing)

    definitions = location.open_catalog(catalog).instruments()
    if definitions:
        instruments = _fold(
            make_table("Instruments", ["instrument", "class", "tick", "lot step", "maker / taker", "as of"])
        )
        for instrument in sorted(definitions, key=lambda item: item.id.value):
            instruments.add_row(
                instrument.id.value,
                type(instrument).__name__,
                str(instrument.price_increment),
                str(instrument.size_increment),
                f"{instrument.maker_fee} / {instrument.taker_fee}",
                f"{nanos_to_datetime(instrument.ts_event):%Y-%m-%d}",
            )
        stdout_console.print(instruments)

    funding = funding_coverage(catalog)
    if funding:
        rates = _fold(
            make_table("Funding rates (FundingRateUpdate)", ["instrument", "first", "last", "rows"])
        )
        for series in funding:
            rates.add_row(
                series.instrument_id,
                f"{series.first_ts_event:%Y-%m-%d %H:%M}",
                f"{series.last_ts_event:%Y-%m-%d %H:%M}",
                f"{series.rows:,}",
            )
        stdout_console.print(rates)


@catalog_app.command("validate")
def validate_command(
    catalog_option: LocalCatalogOption = DEFAULT_CATALOG,
    show_ok: Annotated[bool, typer.Option("--show-ok", help="also list the checks that passed")] = False,
) -> None:
    """Check every bar type, funding series and instrument of the catalog; exit 2 on any error."""
    catalog = location.local_catalog_option(catalog_option, "qa catalog validate")
    report = validate_catalog(catalog)
    shown = [item for item in report.findings if show_ok or item.severity != "ok"]
    result = _fold(make_table(f"Validation of catalog {catalog}", ["series", "check", "result", "status"]))
    for item in shown:
        style = STATUS_STYLE.get(item.severity.value, "")
        result.add_row(item.scope, item.check, item.detail, f"[{style}]{item.severity.value}[/]")
    result.caption = (
        f"{report.bar_types} bar types ({report.bars:,} bars), {report.funding_series} funding series, "
        f"{report.instruments} instruments: {len(report.errors)} errors, {len(report.warnings)} warnings"
    )
    stdout_console.print(result)
    if report.errors:
        first = report.errors[0]
        raise DataError(
            f"{catalog}: {len(report.errors)} validation errors, first: {first.scope}: {first.check}: "
            f"{first.detail}; delete the affected directory and ingest or download it again",
        )
