"""`qa data`: download klines, funding rates and instrument definitions from the venues into the catalog.

The work is qa_engine.data.download (resumable, rate-limit aware, verified); the venue clients come from
adapters/ through qa_engine.plugins. Run the same command again after an interruption: it resumes.

Exit codes: 2 for bad input (options, symbols the venue does not list, data that fails validation); 1 when
the venue fails: it kept failing past the retry budget, or it cannot be reached at all (its host name does
not resolve or it refuses the connection), which ends at once with one line naming the host, not retried.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from nautilus_trader.model.instruments import Instrument
from rich.table import Table

from qa_engine.cli.console import progress as progress_bar
from qa_engine.cli.console import stdout_console
from qa_engine.cli.console import table as make_table
from qa_engine.data.download import DEFAULT_COMMIT_EVERY_PAGES
from qa_engine.data.download import FundingDownloadResult
from qa_engine.data.download import HistoricalVenue
from qa_engine.data.download import KlineDownloadResult
from qa_engine.data.download import RetryPolicy
from qa_engine.data.download import VenueCaller
from qa_engine.data.download import download_funding_rates
from qa_engine.data.download import download_klines
from qa_engine.data.download import resolve_instruments
from qa_engine.data.download import store_instruments
from qa_engine.data.intervals import KlineInterval
from qa_engine.data.location import local_catalog_parser
from qa_engine.data.markets import Market
from qa_engine.errors import ConfigError
from qa_engine.logging import configure_logging
from qa_engine.plugins import load_historical_venue

DEFAULT_CATALOG = Path("catalog")
GAPS_LISTED = 10

data_app = typer.Typer(
    name="data",
    help="Download historical klines, funding rates and instruments from Binance and Bybit into the catalog.",
    no_args_is_help=True,
    add_completion=False,
)

# Options shared by the download commands.
VenueOption = Annotated[
    Market, typer.Option("--venue", "--market", help="market to download from", show_default=False)
]
SymbolsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--symbols", "--symbol", help="venue symbols: --symbols BTCUSDT ETHUSDT (or comma-separated)"
    ),
]
MoreSymbols = Annotated[
    list[str] | None,
    typer.Argument(metavar="SYMBOLS", help="more symbols (what follows --symbols)", show_default=False),
]
StartOption = Annotated[
    datetime, typer.Option("--start", formats=["%Y-%m-%d"], help="first UTC day", show_default=False)
]
EndOption = Annotated[
    datetime, typer.Option("--end", formats=["%Y-%m-%d"], help="last UTC day, inclusive", show_default=False)
]
CatalogOption = Annotated[
    Path,
    typer.Option(
        "--catalog",
        metavar="<path>",
        help="catalog root directory (local)",
        parser=local_catalog_parser("qa data"),
    ),
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--base-url", help="venue host to use instead of the default (regional endpoint, proxy, test server)"
    ),
]
TimeoutOption = Annotated[float, typer.Option("--timeout-secs", min=0.1, help="timeout of one HTTP request")]
AttemptsOption = Annotated[
    int, typer.Option("--max-attempts", min=1, help="attempts per request before giving up")
]
MaxWaitOption = Annotated[
    float,
    typer.Option(
        "--max-wait-secs",
        min=0,
        help="most back-off and rate-limit waiting for one request (an unreachable host is not retried)",
    ),
]
CommitOption = Annotated[
    int,
    typer.Option("--commit-every-pages", min=1, help="pages fetched between catalog commits (checkpoints)"),
]
JsonLogsOption = Annotated[bool, typer.Option("--json-logs", help="log as JSON lines on stderr")]


def _required_symbols(symbols, more_symbols) -> list[str]:
    names = _symbols(symbols, more_symbols)
    if not names:
        raise ConfigError("no symbols given; pass --symbols BTCUSDT [ETHUSDT ...]")
    return names


def _symbols(symbols: Sequence[str] | None, more: Sequence[str] | None) -> list[str]:
    """`--symbols A B`, `--symbols A --symbols B` and `--symbols A,B` give [A, B] (upper-cased, unique)."""
    found: list[str] = []
    for item in [*(symbols or []), *(more or [])]:
        for part in item.split(","):
            name = part.strip().upper()
            if name and name not in found:
                found.append(name)
    return found


def _check_range(start: datetime, end: datetime) -> None:
    if end < start:
        raise ConfigError(f"--end {end:%Y-%m-%d} is before --start {start:%Y-%m-%d}")


def _caller(max_attempts: int, max_wait_secs: float) -> VenueCaller:
    return VenueCaller(RetryPolicy(max_attempts=max_attempts, max_total_wait_secs=max_wait_secs))


def _kline_table(results: list[KlineDownloadResult], catalog: Path) -> Table:
    summary = make_table(
        f"Downloaded into {catalog}",
        ["bar type", "open times", "bars: new / before / in range", "requests (retries, waited)",
         "venue gaps", "bars/s"],
    )  # fmt: skip
    for result in results:
        retried = f"{result.retries} retries" + (
            f", {result.rate_limited} rate-limited" if result.rate_limited else ""
        )
        summary.add_row(
            result.bar_type,
            f"{result.range_start:%Y-%m-%d %H:%M} -> {result.range_end:%Y-%m-%d %H:%M}",
            f"{result.bars_written:,} / {result.bars_already_stored:,} / {result.bars_in_range:,}",
            f"{result.requests:,} ({retried}, {result.waited_secs:.1f} s)",
            f"{len(result.gaps)} ({result.missing_bars:,} bars, not filled)" if result.gaps else "none",
            f"{result.bars_per_sec:,.0f}",
        )
    for column in summary.columns:
        column.overflow = "fold"
    return summary


def _gap_table(results: list[KlineDownloadResult]) -> Table | None:
    rows = [(result.bar_type, gap) for result in results for gap in result.gaps[:GAPS_LISTED]]
    if not rows:
        return None
    gaps = make_table(
        "Bars the venue does not have (reported, never filled)", ["bar type", "missing open times", "bars"]
    )
    for bar_type, gap in rows:
        gaps.add_row(
            bar_type,
            f"{gap.first_missing_open:%Y-%m-%d %H:%M} .. {gap.last_missing_open:%Y-%m-%d %H:%M}",
            f"{gap.missing_bars:,}",
        )
    notes = [
        f"{result.bar_type}: {result.rows_outside_window:,} rows outside the requested windows ignored, "
        f"{result.duplicate_rows_collapsed:,} duplicate rows collapsed"
        for result in results
        if result.rows_outside_window or result.duplicate_rows_collapsed
    ]
    gaps.caption = "; ".join(notes) or None
    return gaps


def _funding_table(results: list[FundingDownloadResult], catalog: Path) -> Table:
    summary = make_table(
        f"Funding rates in {catalog}",
        ["instrument", "range", "written", "in range", "first", "last", "largest spacing", "requests"],
    )
    for result in results:
        summary.add_row(
            result.instrument_id,
            f"{result.range_start:%Y-%m-%d %H:%M} -> {result.range_end:%Y-%m-%d %H:%M}",
            f"{result.records_written:,}",
            f"{result.records_in_range:,}",
            f"{result.first_funding:%Y-%m-%d %H:%M}" if result.first_funding else "-",
            f"{result.last_funding:%Y-%m-%d %H:%M}" if result.last_funding else "-",
            f"{result.largest_spacing_hours:.1f} h",
            f"{result.requests:,}",
        )
    return summary


def _with_progress[ResultT](
    symbols: list[str], what: str, download: Callable[[str, Callable[[int, int], None]], ResultT]
) -> list[ResultT]:
    """`download(symbol, progress)` for each symbol in turn, each with its own progress bar
    ("<symbol> <what>"): the loop every download command runs."""
    results = []
    with progress_bar() as bars:
        for symbol in symbols:
            task = bars.add_task(f"{symbol} {what}", total=None)
            results.append(
                download(
                    symbol, lambda done, total, task=task: bars.update(task, completed=done, total=total)
                )
            )
    return results


def _run_funding(
    venue: HistoricalVenue,
    instruments: dict[str, Instrument],
    symbols: list[str],
    start: datetime,
    end: datetime,
    catalog: Path,
    caller: VenueCaller,
    commit_every_pages: int,
) -> list[FundingDownloadResult]:
    def download(symbol: str, progress: Callable[[int, int], None]) -> FundingDownloadResult:
        return download_funding_rates(
            venue,
            instruments[symbol],
            symbol,
            start.date(),
            end.date(),
            catalog,
            caller=caller,
            commit_every_pages=commit_every_pages,
            progress=progress,
        )

    return _with_progress(symbols, "funding", download)


def _venue_and_caller(
    venue: Market, base_url: str | None, timeout_secs: float, max_attempts: int, max_wait_secs: float
) -> tuple[HistoricalVenue, VenueCaller]:
    """The venue's historical client (from adapters/, through qa_engine.plugins) and the retrying caller
    every request goes through: what each download command opens from its connection options."""
    historical = load_historical_venue(venue.value, base_url=base_url, timeout_secs=timeout_secs)
    return historical, _caller(max_attempts, max_wait_secs)


@data_app.command("download")
def download_command(
    venue: VenueOption,
    interval: Annotated[KlineInterval, typer.Option("--interval", help="kline interval", show_default=False)],
    start: StartOption,
    end: EndOption,
    symbols: SymbolsOption = None,
    more_symbols: MoreSymbols = None,
    catalog: CatalogOption = DEFAULT_CATALOG,
    base_url: BaseUrlOption = None,
    funding: Annotated[
        bool, typer.Option("--funding", help="also download funding rates (perpetuals)")
    ] = False,
    recheck_gaps: Annotated[
        bool, typer.Option("--recheck-gaps", help="ask the venue again for spans it had no bars for")
    ] = False,
    commit_every_pages: CommitOption = DEFAULT_COMMIT_EVERY_PAGES,
    timeout_secs: TimeoutOption = 10.0,
    max_attempts: AttemptsOption = 8,
    max_wait_secs: MaxWaitOption = 900.0,
    json_logs: JsonLogsOption = False,
) -> None:
    """Download closed klines into the catalog as bars stamped at close; resumes after any interruption."""
    configure_logging(json_logs=json_logs)
    names = _required_symbols(symbols, more_symbols)
    _check_range(start, end)
    historical, caller = _venue_and_caller(venue, base_url, timeout_secs, max_attempts, max_wait_secs)
    instruments = resolve_instruments(historical, names, caller)

    def download(symbol: str, progress: Callable[[int, int], None]) -> KlineDownloadResult:
        return download_klines(
            historical,
            instruments[symbol],
            symbol,
            interval,
            start.date(),
            end.date(),
            catalog,
            caller=caller,
            commit_every_pages=commit_every_pages,
            recheck_gaps=recheck_gaps,
            progress=progress,
        )

    results = _with_progress(names, interval.value, download)
    stdout_console.print(_kline_table(results, catalog))
    gaps = _gap_table(results)
    if gaps is not None:
        stdout_console.print(gaps)
    if funding:
        funding_results = _run_funding(
            historical, instruments, names, start, end, catalog, caller, commit_every_pages
        )
        stdout_console.print(_funding_table(funding_results, catalog))


@data_app.command("download-funding")
def download_funding_command(
    venue: VenueOption,
    start: StartOption,
    end: EndOption,
    symbols: SymbolsOption = None,
    more_symbols: MoreSymbols = None,
    catalog: CatalogOption = DEFAULT_CATALOG,
    base_url: BaseUrlOption = None,
    commit_every_pages: CommitOption = DEFAULT_COMMIT_EVERY_PAGES,
    timeout_secs: TimeoutOption = 10.0,
    max_attempts: AttemptsOption = 8,
    max_wait_secs: MaxWaitOption = 900.0,
    json_logs: JsonLogsOption = False,
) -> None:
    """Download funding rates into the catalog as Nautilus FundingRateUpdate; resumes after interruptions."""
    configure_logging(json_logs=json_logs)
    names = _required_symbols(symbols, more_symbols)
    _check_range(start, end)
    if venue == Market.BINANCE_SPOT:
        raise ConfigError("binance-spot has no funding rates; use --venue binance-futures or bybit-linear")
    historical, caller = _venue_and_caller(venue, base_url, timeout_secs, max_attempts, max_wait_secs)
    instruments = resolve_instruments(historical, names, caller)
    results = _run_funding(historical, instruments, names, start, end, catalog, caller, commit_every_pages)
    stdout_console.print(_funding_table(results, catalog))


@data_app.command("download-instruments")
def download_instruments_command(
    venue: VenueOption,
    symbols: SymbolsOption = None,
    more_symbols: MoreSymbols = None,
    catalog: CatalogOption = DEFAULT_CATALOG,
    base_url: BaseUrlOption = None,
    timeout_secs: TimeoutOption = 10.0,
    max_attempts: AttemptsOption = 8,
    max_wait_secs: MaxWaitOption = 900.0,
    json_logs: JsonLogsOption = False,
) -> None:
    """Write the venue's instrument definitions (all listed, or --symbols) into the catalog."""
    configure_logging(json_logs=json_logs)
    names = _symbols(symbols, more_symbols)
    historical, caller = _venue_and_caller(venue, base_url, timeout_secs, max_attempts, max_wait_secs)
    if names:
        instruments = list(resolve_instruments(historical, names, caller).values())
        skipped: dict[str, str] = {}
    else:
        listing = caller.call(historical.fetch_instruments, f"{venue.value} instruments")
        instruments, skipped = list(listing.instruments.values()), listing.skipped
    changed = store_instruments(catalog, instruments)
    listing_table = make_table(
        f"{venue.value} instruments in {catalog}",
        ["instrument", "class", "tick", "lot step", "maker / taker"],
    )
    for instrument in sorted(instruments, key=lambda item: item.id.value):
        listing_table.add_row(
            instrument.id.value,
            type(instrument).__name__,
            str(instrument.price_increment),
            str(instrument.size_increment),
            f"{instrument.maker_fee} / {instrument.taker_fee}",
        )
    listing_table.caption = f"{len(instruments)} written ({changed} new or changed)" + (
        f"; {len(skipped)} listed but not parsable: {', '.join(sorted(skipped)[:10])}" if skipped else ""
    )
    stdout_console.print(listing_table)


@data_app.command("resample")
def resample_command(
    source: Annotated[Path, typer.Argument(help="kline file (.parquet, .csv or .zip) of the finer interval")],
    target: Annotated[Path, typer.Argument(help="Parquet file to write (replaced atomically)")],
    source_interval: Annotated[str, typer.Option("--from", help="interval of SOURCE, e.g. 5m")] = "5m",
    target_interval: Annotated[str, typer.Option("--to", help="interval to build, e.g. 1h")] = "1h",
) -> None:
    """Build klines of a coarser interval (only complete buckets; an hour missing a 5m bar is dropped)."""
    from qa_engine.data.resample import resample_file

    result = resample_file(source, target, source_interval, target_interval)  # a QAError exits 2 (main)
    frame = result.frame
    stdout_console.print(
        f"{target}: {result.complete_buckets:,} {target_interval} bars from {result.source_bars:,} "
        f"{source_interval} bars ({frame['ts_open'].min()} -> {frame['ts_open'].max()} open); "
        f"{result.incomplete_buckets:,} incomplete buckets dropped"
    )
