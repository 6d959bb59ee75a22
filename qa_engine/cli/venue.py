"""`qa venue simulate`: a loopback Bybit v5 exchange replaying catalog bars, for dry rehearsals of a live
node (point its Bybit endpoints at the printed URLs) and for `qa parity`.

It prints the four URLs and the API key/secret to use (generated per run unless --api-key/--api-secret or
QA_VENUE_API_KEY/QA_VENUE_API_SECRET are given; they are not real secrets), serves until every bar was
replayed or Ctrl-C, then prints a summary: orders, fills, faults injected, final balance.
"""

from __future__ import annotations

import asyncio
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Annotated
from typing import Literal

import typer

from qa_engine.cli.console import stdout_console
from qa_engine.cli.console import table
from qa_engine.data.location import local_catalog_parser
from qa_engine.errors import ConfigError
from qa_engine.logging import configure_logging

venue_app = typer.Typer(help="A loopback Bybit v5 exchange replaying catalog bars.", no_args_is_help=True)

DRAIN_SECS = 1.0  # after the last bar: replies and events in flight go out before the server stops


@venue_app.command("simulate")
def simulate(
    instrument_ids: Annotated[
        list[str],
        typer.Option(
            "--instrument-id", help="Bybit linear instrument, e.g. BTCUSDT-LINEAR.BYBIT (repeatable)"
        ),
    ],
    catalog: Annotated[
        Path,
        typer.Option(
            "--catalog",
            metavar="<path>",
            parser=local_catalog_parser("qa venue"),
            help="ParquetDataCatalog folder",
        ),
    ] = Path("catalog"),
    interval: Annotated[str, typer.Option("--interval", help="bar interval: 1m, 5m, 15m, 1h, ...")] = "5m",
    start: Annotated[str | None, typer.Option("--start", help="first bar close time (ISO-8601, UTC)")] = None,
    end: Annotated[str | None, typer.Option("--end", help="last bar close time (ISO-8601, UTC)")] = None,
    speed: Annotated[
        str, typer.Option("--speed", help="'<N>x' simulated seconds per real second (60x), max, or lockstep")
    ] = "60x",
    quiet_ms: Annotated[
        int, typer.Option("--quiet-ms", help="lockstep: publish after this long without orders")
    ] = 30,
    start_on: Annotated[
        str,
        typer.Option("--start-on", help="start the replay at the first kline subscription, or immediately"),
    ] = "subscribe",
    host: Annotated[str, typer.Option("--host", help="listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="listen port; 0 = any free port")] = 0,
    faults: Annotated[Path | None, typer.Option("--faults", help="fault config (TOML)")] = None,
    starting_balance: Annotated[
        Decimal, typer.Option("--starting-balance", help="USDT wallet at start")
    ] = Decimal("10000"),
    maker_fee_rate: Annotated[Decimal, typer.Option("--maker-fee-rate")] = Decimal("0.0002"),
    taker_fee_rate: Annotated[Decimal, typer.Option("--taker-fee-rate")] = Decimal("0.00055"),
    slippage_bps: Annotated[
        Decimal, typer.Option("--slippage-bps", help="market-order slippage (the backtest's default: 1 bp)")
    ] = Decimal("1"),
    leverage: Annotated[
        Decimal,
        typer.Option("--leverage", help="default leverage of every position (the backtest's default: 3)"),
    ] = Decimal("3"),
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="QA_VENUE_API_KEY")] = None,
    api_secret: Annotated[str | None, typer.Option("--api-secret", envvar="QA_VENUE_API_SECRET")] = None,
    json_logs: Annotated[bool, typer.Option("--json-logs", help="JSON log lines on stderr")] = False,
) -> None:
    """Serve a loopback Bybit exchange until the bars run out or Ctrl-C."""
    from qa_engine.features.io import parse_time
    from qa_engine.live.venue.books import AccountSpec
    from qa_engine.live.venue.books import InstrumentSpec
    from qa_engine.live.venue.books import VenueBooks
    from qa_engine.live.venue.faults import FaultConfig
    from qa_engine.live.venue.faults import load_fault_config
    from qa_engine.live.venue.server import VenueConfig
    from qa_engine.live.venue.source import load_venue_data

    configure_logging(json_logs=json_logs)
    if start_on not in ("subscribe", "immediately"):
        raise ConfigError(f"--start-on '{start_on}': use subscribe or immediately")
    if starting_balance <= 0:
        raise ConfigError(f"--starting-balance {starting_balance}: must be positive")
    from qa_engine.live.venue.clock import parse_pacing

    parse_pacing(speed)  # a bad --speed fails before the catalog is read
    fault_config = load_fault_config(faults) if faults is not None else FaultConfig()
    data = load_venue_data(
        catalog, instrument_ids, interval, parse_time(start, "--start"), parse_time(end, "--end")
    )
    account = AccountSpec(
        starting_balance=starting_balance,
        maker_fee_rate=maker_fee_rate,
        taker_fee_rate=taker_fee_rate,
        slippage_bps=slippage_bps,
        default_leverage=leverage,
    )
    books = VenueBooks(
        [InstrumentSpec.from_instruments_info(e) for e in data.instruments], account, data.funding_rates
    )
    on: Literal["subscribe", "immediately"] = "subscribe" if start_on == "subscribe" else "immediately"
    config = VenueConfig(
        api_key=api_key or f"qa-{secrets.token_hex(8)}",
        api_secret=api_secret or secrets.token_hex(16),
        host=host,
        port=port,
        speed=speed,
        quiet_ms=quiet_ms,
        start_on=on,
        faults=fault_config,
    )
    try:
        state = asyncio.run(_serve(config, data, books))
    except KeyboardInterrupt:
        return
    _print_summary(state)


async def _serve(config: object, data: object, books: object) -> dict:
    from qa_engine.live.venue.server import LoopbackBybit

    venue = LoopbackBybit(config, data, books)  # type: ignore[arg-type]
    await venue.start()
    urls = table("loopback Bybit venue", ["what", "value"])
    for name, value in (
        ("http", venue.http_url),
        ("ws public", venue.ws_url("public")),
        ("ws private", venue.ws_url("private")),
        ("ws trade", venue.ws_url("trade")),
        ("api key", venue.api_key),
        ("api secret", venue.api_secret),
        ("bars", str(sum(len(bars) for bars in data.bars.values()))),  # type: ignore[attr-defined]
    ):
        urls.add_row(name, value)
    stdout_console.print(urls)
    stdout_console.file.flush()
    try:
        await venue.done.wait()
        await asyncio.sleep(DRAIN_SECS)
        return venue.state()
    finally:
        state = venue.state()
        await venue.stop()
        if not venue.done.is_set():  # Ctrl-C: the summary of what was replayed so far
            _print_summary(state)


def _print_summary(state: dict) -> None:
    counts, books = state["counts"], state["books"]
    summary = table("venue run", ["measure", "value"])
    rows = [
        ("bars published", counts.get("bars_published", 0)),
        ("orders placed", counts.get("orders_placed", 0)),
        ("orders rejected", counts.get("orders_rejected", 0)),
        ("fills", books.get("fills_count", counts.get("fills", 0))),
        ("faults injected", sum(state["faults"].values())),
        ("final balance", books.get("balance")),
        ("final equity", books.get("equity")),
    ]
    rows += [(f"fault: {name}", count) for name, count in sorted(state["faults"].items())]
    for name, value in rows:
        summary.add_row(name, str(value))
    stdout_console.print(summary)
