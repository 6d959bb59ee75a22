"""Bybit linear (USDT perpetual) instrument definitions from a bundled v5 API snapshot, and from live
instruments-info payloads (`linear_instruments_from_payload`, used by adapters.bybit.historical).

The definitions are parsed by NautilusTrader's own Bybit schema (`BybitInstrumentLinear.parse_to_instrument`)
from two REST payloads copied byte-for-byte into `snapshots/`:

- `snapshots/linear_instruments.json`: GET /v5/market/instruments-info?category=linear (BTCUSDT, ETHUSDT),
  server time 1694668718723 (2023-09-14).
- `snapshots/fee_rate.json`: GET /v5/account/fee-rate (BTCUSDT, ETHUSDT: maker 0.01 %, taker 0.06 %).

Provenance: nautechsystems/nautilus_trader, commit fc666130be22806201e1c20b14f635bbdf054a46,
paths tests/integration_tests/adapters/bybit/resources/http_responses/linear/instruments.json and
tests/integration_tests/adapters/bybit/resources/http_responses/fee_rate.json, as kept in
../shared/data/bybit_api_samples/python_resources/ (see that folder's INDEX.md). Details: README.md here.

What Nautilus 1.221 leaves out and we add: `min_notional` from `lotSizeFilter.minNotionalValue` (USDT).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from decimal import Decimal
from importlib import resources
from typing import Any

import msgspec
from nautilus_trader.adapters.bybit.schemas.account.fee_rate import BybitFeeRate
from nautilus_trader.adapters.bybit.schemas.account.fee_rate import BybitFeeRateResponse
from nautilus_trader.adapters.bybit.schemas.instrument import BybitInstrumentLinear
from nautilus_trader.adapters.bybit.schemas.instrument import BybitInstrumentsLinearResponse
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import Currency
from nautilus_trader.model.objects import Money

from qa_engine.data.download import InstrumentListing
from qa_engine.errors import ConfigError

INSTRUMENTS_SNAPSHOT = "linear_instruments.json"
FEE_RATE_SNAPSHOT = "fee_rate.json"
# Fee rates for symbols the bundled fee snapshot lacks: Bybit's published non-VIP perpetual rates (to our
# knowledge; not verified here). Fee rates need a signed request: check your account's.
DEFAULT_MAKER_FEE = "0.0002"
DEFAULT_TAKER_FEE = "0.00055"


def _read_snapshot(name: str) -> bytes:
    return resources.files("adapters.bybit").joinpath("snapshots", name).read_bytes()


@functools.cache
def _linear_snapshot() -> tuple[dict[str, BybitInstrumentLinear], dict[str, BybitFeeRate], int]:
    instruments = msgspec.json.decode(
        _read_snapshot(INSTRUMENTS_SNAPSHOT), type=BybitInstrumentsLinearResponse
    )
    fee_rates = msgspec.json.decode(_read_snapshot(FEE_RATE_SNAPSHOT), type=BybitFeeRateResponse)
    return (
        {item.symbol: item for item in instruments.result.list},
        {item.symbol: item for item in fee_rates.result.list},
        instruments.time * 1_000_000,  # ms -> ns in integers (millis_to_nanos goes through float)
    )


def bybit_linear_symbols() -> list[str]:
    """Symbols that have both an instrument definition and a fee rate in the bundled snapshot."""
    definitions, fee_rates, _ = _linear_snapshot()
    return sorted(set(definitions) & set(fee_rates))


def bybit_linear_instrument(symbol: str) -> CryptoPerpetual:
    """The Bybit linear perpetual `symbol` (BTCUSDT -> BTCUSDT-LINEAR.BYBIT) from the bundled snapshot."""
    definitions, fee_rates, ts_snapshot_ns = _linear_snapshot()
    known = bybit_linear_symbols()
    if symbol not in known:
        raise ConfigError(
            f"no Bybit linear instrument definition for '{symbol}'; known symbols: {', '.join(known)} "
            f"(bundled snapshot adapters/bybit/snapshots/{INSTRUMENTS_SNAPSHOT})",
        )
    return linear_perpetual(definitions[symbol], fee_rates[symbol], ts_snapshot_ns)


def linear_perpetual(
    definition: BybitInstrumentLinear, fee_rate: BybitFeeRate, ts_ns: int
) -> CryptoPerpetual:
    """One linear perpetual of an instruments-info payload, parsed by Nautilus, plus min_notional."""
    instrument = definition.parse_to_instrument(
        base_currency=Currency.from_str(definition.baseCoin),
        quote_currency=Currency.from_str(definition.quoteCoin),
        fee_rate=fee_rate,
        ts_event=ts_ns,
        ts_init=ts_ns,
    )
    return _with_min_notional(instrument, Decimal(definition.lotSizeFilter.minNotionalValue))


def linear_instruments_from_payload(
    entries: list[dict[str, Any]], server_time_ms: int, symbols: Iterable[str] | None = None
) -> InstrumentListing:
    """Linear perpetuals (contractType LinearPerpetual) of GET /v5/market/instruments-info?category=linear
    list entries, decoded with Nautilus' schema. Fees: the bundled fee rate where the snapshot has the
    symbol, else DEFAULT_MAKER_FEE / DEFAULT_TAKER_FEE."""
    _, fee_rates, _ = _linear_snapshot()
    wanted = set(symbols) if symbols is not None else None
    ts_ns = server_time_ms * 1_000_000
    perpetuals = [entry for entry in entries if entry.get("contractType") == "LinearPerpetual"]
    instruments: dict[str, CryptoPerpetual] = {}
    skipped: dict[str, str] = {}
    for entry in perpetuals:
        symbol = entry.get("symbol", "?")
        if wanted is not None and symbol not in wanted:
            continue
        try:
            definition = msgspec.convert(_with_unused_fields(entry), BybitInstrumentLinear)
            fee_rate = fee_rates.get(symbol) or BybitFeeRate(
                symbol=symbol, takerFeeRate=DEFAULT_TAKER_FEE, makerFeeRate=DEFAULT_MAKER_FEE
            )
            instruments[symbol] = linear_perpetual(definition, fee_rate, ts_ns)
        except (msgspec.ValidationError, KeyError, ValueError, ArithmeticError, AssertionError) as exc:
            skipped[symbol] = f"{type(exc).__name__}: {exc}"
    return InstrumentListing(instruments, skipped, tuple(entry.get("symbol", "?") for entry in perpetuals))


def _with_unused_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """Nautilus 1.221's schema requires lot-size fields its instrument definition never reads; some payloads
    omit them (the TSLAUSDT sample has no maxMktOrderQty): fill them from maxOrderQty."""
    lot_size = dict(entry.get("lotSizeFilter") or {})
    for name in ("maxMktOrderQty", "postOnlyMaxOrderQty"):
        if name not in lot_size and "maxOrderQty" in lot_size:
            lot_size[name] = lot_size["maxOrderQty"]
    return {**entry, "lotSizeFilter": lot_size}


def _with_min_notional(instrument: CryptoPerpetual, min_notional: Decimal) -> CryptoPerpetual:
    """Nautilus 1.221 sets min_notional=None for Bybit linear; rebuild with the venue's minNotionalValue."""
    fields = CryptoPerpetual.to_dict(instrument)
    fields["min_notional"] = str(Money(min_notional, instrument.quote_currency))
    return CryptoPerpetual.from_dict(fields)
