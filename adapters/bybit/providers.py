"""Bybit linear (USDT perpetual) instrument definitions from a bundled v5 API snapshot.

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
from decimal import Decimal
from importlib import resources

import msgspec
from nautilus_trader.adapters.bybit.schemas.account.fee_rate import BybitFeeRate
from nautilus_trader.adapters.bybit.schemas.account.fee_rate import BybitFeeRateResponse
from nautilus_trader.adapters.bybit.schemas.instrument import BybitInstrumentLinear
from nautilus_trader.adapters.bybit.schemas.instrument import BybitInstrumentsLinearResponse
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import Currency
from nautilus_trader.model.objects import Money

from qa_engine.errors import ConfigError

INSTRUMENTS_SNAPSHOT = "linear_instruments.json"
FEE_RATE_SNAPSHOT = "fee_rate.json"


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
    definition = definitions[symbol]
    instrument = definition.parse_to_instrument(
        base_currency=Currency.from_str(definition.baseCoin),
        quote_currency=Currency.from_str(definition.quoteCoin),
        fee_rate=fee_rates[symbol],
        ts_event=ts_snapshot_ns,
        ts_init=ts_snapshot_ns,
    )
    return _with_min_notional(instrument, Decimal(definition.lotSizeFilter.minNotionalValue))


def _with_min_notional(instrument: CryptoPerpetual, min_notional: Decimal) -> CryptoPerpetual:
    """Nautilus 1.221 sets min_notional=None for Bybit linear; rebuild with the venue's minNotionalValue."""
    fields = CryptoPerpetual.to_dict(instrument)
    fields["min_notional"] = str(Money(min_notional, instrument.quote_currency))
    return CryptoPerpetual.from_dict(fields)
