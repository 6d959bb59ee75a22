"""What the loopback venue replays: bars and funding rates of given instruments from a ParquetDataCatalog,
and the instruments-info entries of those instruments from the committed Bybit snapshot.

Catalog bars are stamped at close (ts_event = close time); a `BarRow` carries both ends: `start_ms` =
close - interval (what Bybit calls a kline's `start`), `end_ms` = close. Bybit's kline `end` field is
`start + interval - 1 ms`; the server writes it that way on the wire. Turnover is not in the catalog:
it is approximated as volume x close (nothing in Nautilus reads it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from qa_engine.data.funding import read_funding_table
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.features.io import interval_ns
from qa_engine.features.io import nautilus_bar_spec

REPO_ROOT = Path(__file__).resolve().parents[3]
INSTRUMENTS_SNAPSHOT = REPO_ROOT / "adapters" / "bybit" / "snapshots" / "linear_instruments.json"
BYBIT_VENUE_SUFFIX = "-LINEAR.BYBIT"


def symbol_of(instrument_id: str) -> str:
    """'BTCUSDT-LINEAR.BYBIT' -> 'BTCUSDT'; anything but a Bybit linear id is a ConfigError."""
    if not instrument_id.endswith(BYBIT_VENUE_SUFFIX):
        raise ConfigError(
            f"--instrument-id {instrument_id}: the loopback venue serves Bybit linear instruments "
            "(e.g. BTCUSDT-LINEAR.BYBIT)"
        )
    return instrument_id.removesuffix(BYBIT_VENUE_SUFFIX)


def bybit_interval(interval: str) -> str:
    """'5m' -> '5', '1h' -> '60', '1d' -> 'D' (Bybit's kline interval names); others are a ConfigError."""
    minutes, remainder = divmod(interval_ns(interval), 60_000_000_000)
    names = {1: "1", 3: "3", 5: "5", 15: "15", 30: "30", 60: "60", 120: "120", 240: "240", 360: "360"}
    names |= {720: "720", 1440: "D", 10080: "W"}
    if remainder or minutes not in names:
        raise ConfigError(
            f"--interval {interval}: Bybit has no such kline interval (1m, 5m, 15m, 1h, 4h, 1d, ...)"
        )
    return names[minutes]


def instrument_entries(symbols: list[str], snapshot: Path = INSTRUMENTS_SNAPSHOT) -> list[dict[str, Any]]:
    """The instruments-info entries of `symbols` from the snapshot, in the order given."""
    listed = {entry["symbol"]: entry for entry in json.loads(snapshot.read_text())["result"]["list"]}
    missing = [symbol for symbol in symbols if symbol not in listed]
    if missing:
        raise ConfigError(
            f"--instrument-id {missing[0]}{BYBIT_VENUE_SUFFIX}: not in {snapshot.name} "
            f"(it lists {', '.join(sorted(listed))})"
        )
    return [listed[symbol] for symbol in symbols]


@dataclass(frozen=True)
class VenueData:
    """Everything a venue run replays."""

    interval: str  # Bybit's name, e.g. "5"
    interval_ms: int
    instruments: list[dict[str, Any]]  # instruments-info entries
    bars: dict[str, list[Any]]  # symbol -> BarRow list, oldest first
    funding_rates: dict[str, dict[int, Decimal]]  # symbol -> {ts_ms: rate}


def load_bars(
    catalog: Path, instrument_id: str, interval: str, start_ns: int | None, end_ns: int | None
) -> list[Any]:
    """BarRows of one instrument and interval (close times within [start, end]); DataError if none."""
    from nautilus_trader.model.data import Bar
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    from qa_engine.live.venue.books import BarRow

    bar_type = f"{instrument_id}-{nautilus_bar_spec(interval)}-LAST-EXTERNAL"
    if not (catalog / "data" / "bar" / bar_type).is_dir():
        raise DataError(
            f"catalog {catalog} has no {bar_type} bars; `qa catalog list --catalog {catalog}` lists them"
        )
    bars = ParquetDataCatalog(str(catalog)).query(Bar, identifiers=[bar_type], start=start_ns, end=end_ns)
    if not bars:
        raise DataError(f"catalog {catalog} has no {bar_type} bars between --start and --end")
    step_ms = interval_ns(interval) // 1_000_000
    symbol = symbol_of(instrument_id)
    rows, last_end = [], None
    for bar in bars:
        end_ms = bar.ts_event // 1_000_000
        if end_ms == last_end:
            continue  # the catalog may hold one bar in two files; the first wins, as in the backtest
        last_end = end_ms
        close = Decimal(str(bar.close))
        volume = Decimal(str(bar.volume))
        rows.append(
            BarRow(
                symbol=symbol,
                start_ms=end_ms - step_ms,
                end_ms=end_ms,
                open=Decimal(str(bar.open)),
                high=Decimal(str(bar.high)),
                low=Decimal(str(bar.low)),
                close=close,
                volume=volume,
                turnover=volume * close,
            )
        )
    return rows


def load_funding(
    catalog: Path, instrument_id: str, start_ns: int | None, end_ns: int | None
) -> dict[int, Decimal]:
    """{funding time in ms: rate} of one instrument within [start, end]; empty when the catalog has none."""
    table = read_funding_table(catalog, instrument_id)
    if table is None:
        return {}
    rates = {}
    for ts, rate in zip(table["ts_event"].to_pylist(), table["rate"].to_pylist(), strict=True):
        if (start_ns is None or ts >= start_ns) and (end_ns is None or ts <= end_ns):
            rates[ts // 1_000_000] = Decimal(rate)
    return rates


def load_venue_data(
    catalog: Path,
    instrument_ids: list[str],
    interval: str,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> VenueData:
    """Bars, funding and instrument entries of `instrument_ids`; bad input raises ConfigError / DataError."""
    if not catalog.is_dir():
        raise DataError(f"--catalog {catalog}: no catalog there")
    if not instrument_ids:
        raise ConfigError("no --instrument-id given; pass e.g. --instrument-id BTCUSDT-LINEAR.BYBIT")
    symbols = [symbol_of(instrument_id) for instrument_id in instrument_ids]
    name = bybit_interval(interval)
    entries = instrument_entries(symbols)
    bars = {
        symbol: load_bars(catalog, instrument_id, interval, start_ns, end_ns)
        for symbol, instrument_id in zip(symbols, instrument_ids, strict=True)
    }
    funding = {
        symbol: load_funding(catalog, instrument_id, start_ns, end_ns)
        for symbol, instrument_id in zip(symbols, instrument_ids, strict=True)
    }
    return VenueData(
        interval=name,
        interval_ms=interval_ns(interval) // 1_000_000,
        instruments=entries,
        bars=bars,
        funding_rates=funding,
    )
