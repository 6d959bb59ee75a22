"""Bybit linear (USDT perpetual) instrument definitions from v5 `instruments-info` payloads: the bundled
snapshot (`bybit_linear_instrument`) and live listings (`linear_instruments_from_payload`, used by
adapters.bybit.historical).

Why the payload is parsed here, by hand: NautilusTrader 1.231 parses instruments-info only inside its Rust
HTTP client (`nautilus_pyo3.BybitHttpClient.request_instruments`), which needs a server, stamps the
definitions with the local clock and, without API keys, gives every instrument a placeholder fee of 0.1 %.
The Python schemas that 1.221 offered (`adapters.bybit.schemas`) are gone. `linear_perpetual` follows the
Rust parser field by field (tick size, qty step as lot size, min/max order quantity, min notional, price
limits, Nautilus' default margins); a conformance test serves the same payload to Nautilus' own client on
127.0.0.1 and checks that every field but fees and timestamps is equal.

Fees are not in instruments-info (the account's rates need a signed request). Every definition carries
Bybit's published base rates for USDT perpetuals, maker 0.02 % / taker 0.055 %; a run config sets an
account's own tier or rates per venue (qa_engine.backtest.fees).

Snapshot: `snapshots/linear_instruments.json`, GET /v5/market/instruments-info?category=linear (BTCUSDT,
ETHUSDT), server time 1694668718723 (2023-09-14), copied byte-for-byte from nautechsystems/nautilus_trader,
commit fc666130be22806201e1c20b14f635bbdf054a46, path
tests/integration_tests/adapters/bybit/resources/http_responses/linear/instruments.json. Details: README.md.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from decimal import InvalidOperation
from importlib import resources
from typing import Any

from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Symbol
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import Currency
from nautilus_trader.model.objects import Money
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from qa_engine.data.download import InstrumentListing
from qa_engine.errors import ConfigError

INSTRUMENTS_SNAPSHOT = "linear_instruments.json"


@dataclass(frozen=True)
class FeeRates:
    """Maker and taker rates as fractions of notional (0.0002 = 0.02 %)."""

    maker: Decimal
    taker: Decimal


# Bybit's published base (non-VIP) rates for USDT perpetuals. An account's own rates come from
# GET /v5/account/fee-rate (signed); set them in the run config's venue section.
BASE_FEE_RATES = FeeRates(maker=Decimal("0.0002"), taker=Decimal("0.00055"))
# Nautilus' default margin ratios for every Bybit linear instrument (the real ones depend on the
# risk-limit tier, which instruments-info does not carry).
DEFAULT_MARGIN = Decimal("0.1")


class PayloadError(ValueError):
    """An instruments-info entry that cannot become an instrument (missing or malformed field)."""


def _read_snapshot(name: str) -> bytes:
    return resources.files("adapters.bybit").joinpath("snapshots", name).read_bytes()


@functools.cache
def _linear_snapshot() -> tuple[dict[str, dict[str, Any]], int]:
    payload = json.loads(_read_snapshot(INSTRUMENTS_SNAPSHOT))
    entries = {entry["symbol"]: entry for entry in payload["result"]["list"]}
    return entries, int(payload["time"]) * 1_000_000  # ms -> ns in integers (millis_to_nanos uses float)


def bybit_linear_symbols() -> list[str]:
    """Symbols of the bundled snapshot."""
    entries, _ = _linear_snapshot()
    return sorted(entries)


def bybit_linear_instrument(symbol: str) -> CryptoPerpetual:
    """The Bybit linear perpetual `symbol` (BTCUSDT -> BTCUSDT-LINEAR.BYBIT) from the bundled snapshot."""
    entries, ts_snapshot_ns = _linear_snapshot()
    if symbol not in entries:
        raise ConfigError(
            f"no Bybit linear instrument definition for '{symbol}'; known symbols: "
            f"{', '.join(bybit_linear_symbols())} (bundled snapshot adapters/bybit/snapshots/"
            f"{INSTRUMENTS_SNAPSHOT}; `qa data download-instruments --venue bybit-linear` lists the rest)",
        )
    return linear_perpetual(entries[symbol], ts_snapshot_ns)


def linear_perpetual(entry: dict[str, Any], ts_ns: int, fees: FeeRates = BASE_FEE_RATES) -> CryptoPerpetual:
    """One `LinearPerpetual` entry of an instruments-info list as a Nautilus CryptoPerpetual.

    Raises PayloadError naming the symbol and the field when the entry is incomplete or malformed.
    """
    symbol = str(entry.get("symbol") or "")
    if not symbol:
        raise PayloadError("entry without a symbol")
    if entry.get("contractType") != "LinearPerpetual":
        raise PayloadError(f"{symbol}: contractType {entry.get('contractType')!r} is not LinearPerpetual")
    price_filter = _section(entry, "priceFilter")
    lot_size = _section(entry, "lotSizeFilter")
    tick_size = _decimal(price_filter, "tickSize", symbol, "priceFilter")
    qty_step = _decimal(lot_size, "qtyStep", symbol, "lotSizeFilter")
    quote = _currency(entry, "quoteCoin", symbol)
    settle = _currency(entry, "settleCoin", symbol) if entry.get("settleCoin") else quote
    price_increment = Price.from_str(str(tick_size))  # "0.10" keeps precision 2, as in the payload
    size_increment = Quantity.from_str(str(qty_step))
    try:
        return CryptoPerpetual(
            instrument_id=InstrumentId.from_str(f"{symbol}-LINEAR.BYBIT"),
            raw_symbol=Symbol(symbol),
            base_currency=_currency(entry, "baseCoin", symbol),
            quote_currency=quote,
            settlement_currency=settle,
            is_inverse=False,
            price_precision=price_increment.precision,
            size_precision=size_increment.precision,
            price_increment=price_increment,
            size_increment=size_increment,
            ts_event=ts_ns,
            ts_init=ts_ns,
            multiplier=Quantity.from_int(1),
            lot_size=size_increment,
            max_quantity=Quantity.from_str(str(_decimal(lot_size, "maxOrderQty", symbol, "lotSizeFilter"))),
            min_quantity=Quantity.from_str(str(_decimal(lot_size, "minOrderQty", symbol, "lotSizeFilter"))),
            min_notional=Money(_decimal(lot_size, "minNotionalValue", symbol, "lotSizeFilter"), quote),
            max_price=Price.from_str(str(_decimal(price_filter, "maxPrice", symbol, "priceFilter"))),
            min_price=Price.from_str(str(_decimal(price_filter, "minPrice", symbol, "priceFilter"))),
            margin_init=DEFAULT_MARGIN,
            margin_maint=DEFAULT_MARGIN,
            maker_fee=fees.maker,
            taker_fee=fees.taker,
        )
    except (ValueError, TypeError, OverflowError) as exc:  # Nautilus' own checks (e.g. precision limits)
        raise PayloadError(f"{symbol}: {exc}") from None


def linear_instruments_from_payload(
    entries: list[dict[str, Any]], server_time_ms: int, symbols: Iterable[str] | None = None
) -> InstrumentListing:
    """Linear perpetuals (contractType LinearPerpetual) of GET /v5/market/instruments-info?category=linear
    list entries, at Bybit's base fee rates. An entry that cannot be read is skipped with the reason."""
    wanted = set(symbols) if symbols is not None else None
    ts_ns = int(server_time_ms) * 1_000_000
    perpetuals = [entry for entry in entries if entry.get("contractType") == "LinearPerpetual"]
    instruments: dict[str, CryptoPerpetual] = {}
    skipped: dict[str, str] = {}
    for entry in perpetuals:
        symbol = entry.get("symbol", "?")
        if wanted is not None and symbol not in wanted:
            continue
        try:
            instruments[symbol] = linear_perpetual(entry, ts_ns)
        except PayloadError as exc:
            skipped[symbol] = str(exc)
    return InstrumentListing(instruments, skipped, tuple(entry.get("symbol", "?") for entry in perpetuals))


def _section(entry: dict[str, Any], name: str) -> dict[str, Any]:
    section = entry.get(name)
    if not isinstance(section, dict):
        raise PayloadError(f"{entry.get('symbol')}: missing '{name}'")
    return section


def _decimal(section: dict[str, Any], name: str, symbol: str, where: str) -> Decimal:
    raw = section.get(name)
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        raise PayloadError(f"{symbol}: {where}.{name} is {raw!r}, not a number") from None
    if raw is None or raw == "" or not value.is_finite() or value < 0:
        raise PayloadError(f"{symbol}: {where}.{name} is {raw!r}, not a non-negative number")
    return value


def _currency(entry: dict[str, Any], name: str, symbol: str) -> Currency:
    code = entry.get(name)
    if not code or not isinstance(code, str):
        raise PayloadError(f"{symbol}: missing '{name}'")
    if code == "USDT":
        return USDT
    return Currency.from_str(code, strict=False)  # unknown coins become 8-decimal crypto currencies
