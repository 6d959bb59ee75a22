"""Binance USD-M perpetual and spot instrument definitions from bundled exchangeInfo snapshots.

The payloads are decoded with NautilusTrader's own Binance schemas (`BinanceFuturesExchangeInfo`,
`BinanceSpotExchangeInfo`, `BinanceFuturesCommissionRate`, `BinanceSpotTradeFee`) and turned into instruments
with the same field mapping as Nautilus' `BinanceFuturesInstrumentProvider._parse_instrument` and
`BinanceSpotInstrumentProvider._parse_instrument` (those are methods of live providers that need an HTTP
client, so the mapping is restated here, not called).

Snapshots in `snapshots/`, copied verbatim from nautechsystems/nautilus_trader
(tests/integration_tests/adapters/binance/resources/http_responses/):

- futures_usdt_exchange_info.json <- http_futures_usdt_exchange_info.json (GET /fapi/v1/exchangeInfo),
  commit dd9d5fe9ce1a8d55042f72a32c0f978ced8ef1e7
- futures_commission_rate_btcusdt.json <- http_futures_wallet_commission_rate_btcusdt.json,
  commit 17b9c239c1d86a16ae1ed6d937aacc7f4c4633a8
- futures_commission_rate_ethusdt.json <- http_futures_wallet_commission_rate_ethusdt.json,
  commit 80608237440641c5d04095d89cbeea815f9f21fb
- spot_exchange_info.json <- http_spot_market_exchange_info.json (GET /api/v3/exchangeInfo),
  commit a3ad3c7620723fc75440ba2dd7afe92cf2032adc
- spot_trading_fees.json <- http_wallet_trading_fees.json (GET /sapi/v1/asset/tradeFee),
  commit bdc82c73e46c5f625cf3b112d68dfa24d5d3be82

The futures snapshot is from 2022-02-19 (serverTime 1645233611962), the spot one from 2021-10-22
(serverTime 1634942465856). Fees are the VIP0 rates (futures maker 0.02 %, taker 0.05 %; spot 0.1 % / 0.1 %),
which match https://www.binance.com/en/fee/futureFee and /en/fee/trading. See README.md for what has changed
at the venue since (notably the futures MIN_NOTIONAL).
"""

from __future__ import annotations

import functools
from decimal import Decimal
from importlib import resources

import msgspec
from nautilus_trader.adapters.binance.common.enums import BinanceAccountType
from nautilus_trader.adapters.binance.common.enums import BinanceSymbolFilterType
from nautilus_trader.adapters.binance.common.symbol import BinanceSymbol
from nautilus_trader.adapters.binance.futures.schemas.market import BinanceFuturesExchangeInfo
from nautilus_trader.adapters.binance.futures.schemas.market import BinanceFuturesSymbolInfo
from nautilus_trader.adapters.binance.futures.schemas.wallet import BinanceFuturesCommissionRate
from nautilus_trader.adapters.binance.spot.schemas.market import BinanceSpotExchangeInfo
from nautilus_trader.adapters.binance.spot.schemas.market import BinanceSpotSymbolInfo
from nautilus_trader.adapters.binance.spot.schemas.wallet import BinanceSpotTradeFee
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Symbol
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Money
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from qa_engine.errors import ConfigError

BINANCE_VENUE = Venue("BINANCE")
FUTURES_EXCHANGE_INFO_SNAPSHOT = "futures_usdt_exchange_info.json"
FUTURES_COMMISSION_SNAPSHOTS = (
    "futures_commission_rate_btcusdt.json",
    "futures_commission_rate_ethusdt.json",
)
SPOT_EXCHANGE_INFO_SNAPSHOT = "spot_exchange_info.json"
SPOT_TRADING_FEES_SNAPSHOT = "spot_trading_fees.json"


def _read_snapshot(name: str) -> bytes:
    return resources.files("adapters.binance").joinpath("snapshots", name).read_bytes()


def _precision(step: str) -> int:
    """Decimal places of a filter step as Nautilus counts them ("0.10" -> 2, "0.00001000" -> 8)."""
    return abs(int(Decimal(step).as_tuple().exponent))


@functools.cache
def _futures_snapshot() -> tuple[
    dict[str, BinanceFuturesSymbolInfo], dict[str, BinanceFuturesCommissionRate], int
]:
    exchange_info = msgspec.json.decode(
        _read_snapshot(FUTURES_EXCHANGE_INFO_SNAPSHOT),
        type=BinanceFuturesExchangeInfo,
    )
    commission_rates = [
        msgspec.json.decode(_read_snapshot(name), type=BinanceFuturesCommissionRate)
        for name in FUTURES_COMMISSION_SNAPSHOTS
    ]
    perpetuals = {info.symbol: info for info in exchange_info.symbols if info.contractType == "PERPETUAL"}
    return perpetuals, {rate.symbol: rate for rate in commission_rates}, exchange_info.serverTime * 1_000_000


@functools.cache
def _spot_snapshot() -> tuple[dict[str, BinanceSpotSymbolInfo], dict[str, BinanceSpotTradeFee], int]:
    exchange_info = msgspec.json.decode(
        _read_snapshot(SPOT_EXCHANGE_INFO_SNAPSHOT), type=BinanceSpotExchangeInfo
    )
    trading_fees = msgspec.json.decode(
        _read_snapshot(SPOT_TRADING_FEES_SNAPSHOT), type=list[BinanceSpotTradeFee]
    )
    return (
        {info.symbol: info for info in exchange_info.symbols},
        {fee.symbol: fee for fee in trading_fees},
        exchange_info.serverTime * 1_000_000,
    )


def binance_futures_symbols() -> list[str]:
    """USD-M perpetual symbols with both a definition and a commission rate in the bundled snapshot."""
    definitions, commission_rates, _ = _futures_snapshot()
    return sorted(set(definitions) & set(commission_rates))


def binance_spot_symbols() -> list[str]:
    """Spot symbols with both a definition and a trading fee in the bundled snapshot."""
    definitions, trading_fees, _ = _spot_snapshot()
    return sorted(set(definitions) & set(trading_fees))


def _unknown_symbol(market: str, symbol: str, known: list[str], snapshot: str) -> ConfigError:
    return ConfigError(
        f"no Binance {market} instrument definition for '{symbol}'; known symbols: {', '.join(known)} "
        f"(bundled snapshot adapters/binance/snapshots/{snapshot})",
    )


def binance_futures_instrument(symbol: str) -> CryptoPerpetual:
    """The Binance USD-M perpetual `symbol` (BTCUSDT -> BTCUSDT-PERP.BINANCE) from the bundled snapshot."""
    definitions, commission_rates, ts_snapshot_ns = _futures_snapshot()
    known = binance_futures_symbols()
    if symbol not in known:
        raise _unknown_symbol("USD-M futures", symbol, known, FUTURES_EXCHANGE_INFO_SNAPSHOT)
    info = definitions[symbol]
    commission = commission_rates[symbol]
    filters = {item.filterType: item for item in info.filters}
    price_filter = filters[BinanceSymbolFilterType.PRICE_FILTER]
    lot_size_filter = filters[BinanceSymbolFilterType.LOT_SIZE]
    min_notional_filter = filters.get(BinanceSymbolFilterType.MIN_NOTIONAL)
    price_precision = _precision(price_filter.tickSize)
    size_precision = _precision(lot_size_filter.stepSize)
    base_currency = info.parse_to_base_currency()
    quote_currency = info.parse_to_quote_currency()
    if info.marginAsset != info.quoteAsset:
        raise ConfigError(f"Binance {symbol}: margin asset {info.marginAsset} is not the quote asset")
    nautilus_symbol = BinanceSymbol(symbol).parse_as_nautilus(BinanceAccountType.USDT_FUTURES)
    return CryptoPerpetual(
        instrument_id=InstrumentId(Symbol(nautilus_symbol), BINANCE_VENUE),
        raw_symbol=Symbol(symbol),
        base_currency=base_currency,
        quote_currency=quote_currency,
        settlement_currency=quote_currency,
        is_inverse=False,
        price_precision=price_precision,
        size_precision=size_precision,
        price_increment=Price.from_str(price_filter.tickSize),
        size_increment=Quantity.from_str(lot_size_filter.stepSize),
        max_quantity=Quantity(float(lot_size_filter.maxQty), precision=size_precision),
        min_quantity=Quantity(float(lot_size_filter.minQty), precision=size_precision),
        max_notional=None,
        min_notional=Money(min_notional_filter.notional, quote_currency) if min_notional_filter else None,
        max_price=Price(float(price_filter.maxPrice), precision=price_precision),
        min_price=Price(float(price_filter.minPrice), precision=price_precision),
        margin_init=Decimal(info.requiredMarginPercent) / 100,
        margin_maint=Decimal(info.maintMarginPercent) / 100,
        maker_fee=Decimal(commission.makerCommissionRate),
        taker_fee=Decimal(commission.takerCommissionRate),
        ts_event=ts_snapshot_ns,
        ts_init=ts_snapshot_ns,
        info=msgspec.to_builtins(info),
    )


def binance_spot_instrument(symbol: str) -> CurrencyPair:
    """The Binance spot pair `symbol` (e.g. BTCUSDT -> BTCUSDT.BINANCE) from the bundled snapshot."""
    definitions, trading_fees, ts_snapshot_ns = _spot_snapshot()
    known = binance_spot_symbols()
    if symbol not in known:
        raise _unknown_symbol("spot", symbol, known, SPOT_EXCHANGE_INFO_SNAPSHOT)
    info = definitions[symbol]
    fee = trading_fees[symbol]
    filters = {item.filterType: item for item in info.filters}
    price_filter = filters[BinanceSymbolFilterType.PRICE_FILTER]
    lot_size_filter = filters[BinanceSymbolFilterType.LOT_SIZE]
    min_notional_filter = filters.get(BinanceSymbolFilterType.MIN_NOTIONAL)
    notional_filter = filters.get(BinanceSymbolFilterType.NOTIONAL)
    price_precision = _precision(price_filter.tickSize)
    size_precision = _precision(lot_size_filter.stepSize)
    quote_currency = info.parse_to_quote_asset()
    min_notional = max_notional = None
    if min_notional_filter is not None:
        min_notional = Money(min_notional_filter.minNotional, quote_currency)
    elif notional_filter is not None:
        min_notional = Money(notional_filter.minNotional, quote_currency)
        max_notional = Money(notional_filter.maxNotional, quote_currency)
    return CurrencyPair(
        instrument_id=InstrumentId(Symbol(symbol), BINANCE_VENUE),
        raw_symbol=Symbol(symbol),
        base_currency=info.parse_to_base_asset(),
        quote_currency=quote_currency,
        price_precision=price_precision,
        size_precision=size_precision,
        price_increment=Price.from_str(price_filter.tickSize),
        size_increment=Quantity.from_str(lot_size_filter.stepSize),
        lot_size=Quantity.from_str(lot_size_filter.stepSize),
        max_quantity=Quantity(float(lot_size_filter.maxQty), precision=size_precision),
        min_quantity=Quantity(float(lot_size_filter.minQty), precision=size_precision),
        max_notional=max_notional,
        min_notional=min_notional,
        max_price=Price(float(price_filter.maxPrice), precision=price_precision),
        min_price=Price(float(price_filter.minPrice), precision=price_precision),
        margin_init=Decimal(0),
        margin_maint=Decimal(0),
        maker_fee=Decimal(fee.makerCommission),
        taker_fee=Decimal(fee.takerCommission),
        ts_event=ts_snapshot_ns,
        ts_init=ts_snapshot_ns,
        info=msgspec.to_builtins(info),
    )
