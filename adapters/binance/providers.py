"""Binance USD-M perpetual and spot instrument definitions from bundled exchangeInfo snapshots, and from
live exchangeInfo payloads (`futures_instruments_from_exchange_info`, `spot_instruments_from_exchange_info`,
used by adapters.binance.historical).

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
from collections.abc import Callable
from collections.abc import Iterable
from decimal import Decimal
from importlib import resources
from typing import Any

import msgspec
from nautilus_trader.adapters.binance.common.enums import BinanceAccountType
from nautilus_trader.adapters.binance.common.enums import BinanceOrderType
from nautilus_trader.adapters.binance.common.enums import BinanceSymbolFilterType
from nautilus_trader.adapters.binance.common.enums import BinanceTimeInForce
from nautilus_trader.adapters.binance.common.symbol import BinanceSymbol
from nautilus_trader.adapters.binance.futures.enums import BinanceFuturesContractStatus
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
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Money
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from qa_engine.data.download import InstrumentListing
from qa_engine.errors import ConfigError

BINANCE_VENUE = Venue("BINANCE")
FUTURES_EXCHANGE_INFO_SNAPSHOT = "futures_usdt_exchange_info.json"
FUTURES_COMMISSION_SNAPSHOTS = (
    "futures_commission_rate_btcusdt.json",
    "futures_commission_rate_ethusdt.json",
)
SPOT_EXCHANGE_INFO_SNAPSHOT = "spot_exchange_info.json"
SPOT_TRADING_FEES_SNAPSHOT = "spot_trading_fees.json"
# VIP0 rates (maker, taker) for symbols the bundled fee snapshots lack: the same rates those snapshots hold.
FUTURES_DEFAULT_FEES = (Decimal("0.0002"), Decimal("0.0005"))
SPOT_DEFAULT_FEES = (Decimal("0.001"), Decimal("0.001"))


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
    commission = commission_rates[symbol]
    return futures_perpetual(
        definitions[symbol],
        Decimal(commission.makerCommissionRate),
        Decimal(commission.takerCommissionRate),
        ts_snapshot_ns,
    )


def futures_perpetual(
    info: BinanceFuturesSymbolInfo, maker_fee: Decimal, taker_fee: Decimal, ts_ns: int
) -> CryptoPerpetual:
    """One USD-M perpetual of an exchangeInfo payload as a Nautilus CryptoPerpetual (Nautilus' mapping)."""
    symbol = info.symbol
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
        maker_fee=maker_fee,
        taker_fee=taker_fee,
        ts_event=ts_ns,
        ts_init=ts_ns,
        info=msgspec.to_builtins(info),
    )


def binance_spot_instrument(symbol: str) -> CurrencyPair:
    """The Binance spot pair `symbol` (e.g. BTCUSDT -> BTCUSDT.BINANCE) from the bundled snapshot."""
    definitions, trading_fees, ts_snapshot_ns = _spot_snapshot()
    known = binance_spot_symbols()
    if symbol not in known:
        raise _unknown_symbol("spot", symbol, known, SPOT_EXCHANGE_INFO_SNAPSHOT)
    fee = trading_fees[symbol]
    return spot_pair(
        definitions[symbol], Decimal(fee.makerCommission), Decimal(fee.takerCommission), ts_snapshot_ns
    )


def spot_pair(
    info: BinanceSpotSymbolInfo, maker_fee: Decimal, taker_fee: Decimal, ts_ns: int
) -> CurrencyPair:
    """One spot symbol of an exchangeInfo payload as a Nautilus CurrencyPair (Nautilus' mapping)."""
    symbol = info.symbol
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
        maker_fee=maker_fee,
        taker_fee=taker_fee,
        ts_event=ts_ns,
        ts_init=ts_ns,
        info=msgspec.to_builtins(info),
    )


# -- live exchangeInfo payloads (adapters.binance.historical fetches them) ----------------------------


def _known_values(raw: dict[str, Any]) -> dict[str, Any]:
    """A symbol entry without the enum values Nautilus 1.221's schema does not know (the venue adds filter
    types and order types over time; one unknown value would otherwise reject the whole symbol)."""
    filter_types = {item.value for item in BinanceSymbolFilterType}
    order_types = {item.value for item in BinanceOrderType}
    times_in_force = {item.value for item in BinanceTimeInForce}
    statuses = {item.value for item in BinanceFuturesContractStatus}
    cleaned = dict(raw)
    cleaned["filters"] = [item for item in raw.get("filters", []) if item.get("filterType") in filter_types]
    cleaned["orderTypes"] = [item for item in raw.get("orderTypes", []) if item in order_types]
    if "timeInForce" in raw:
        cleaned["timeInForce"] = [item for item in raw["timeInForce"] if item in times_in_force]
    if "contractType" in raw and raw.get("status") not in statuses:
        cleaned.pop("status", None)  # futures status is optional in the schema
    return cleaned


def _listing(
    payload: dict[str, Any],
    symbols: Iterable[str] | None,
    accept: Callable[[dict[str, Any]], bool],
    parse: Callable[[dict[str, Any], int], Instrument],
) -> InstrumentListing:
    wanted = set(symbols) if symbols is not None else None
    ts_ns = int(payload["serverTime"]) * 1_000_000
    entries = [entry for entry in payload.get("symbols", []) if accept(entry)]
    instruments: dict[str, Instrument] = {}
    skipped: dict[str, str] = {}
    for entry in entries:
        symbol = entry.get("symbol", "?")
        if wanted is not None and symbol not in wanted:
            continue
        try:
            instruments[symbol] = parse(_known_values(entry), ts_ns)
        except (msgspec.ValidationError, KeyError, ValueError, ArithmeticError, ConfigError) as exc:
            skipped[symbol] = f"{type(exc).__name__}: {exc}"
    return InstrumentListing(instruments, skipped, tuple(entry.get("symbol", "?") for entry in entries))


def futures_instruments_from_exchange_info(
    payload: dict[str, Any], symbols: Iterable[str] | None = None
) -> InstrumentListing:
    """USD-M perpetuals (contractType PERPETUAL, margined in the quote asset) of a GET /fapi/v1/exchangeInfo
    payload, decoded with Nautilus' schema. Fees: the bundled commission rate where the snapshot has the
    symbol, else the VIP0 rates (commission rates need a signed request; check yours)."""
    _, commission_rates, _ = _futures_snapshot()

    def parse(entry: dict[str, Any], ts_ns: int) -> Instrument:
        info = msgspec.convert(entry, BinanceFuturesSymbolInfo)
        rate = commission_rates.get(info.symbol)
        maker, taker = (
            (Decimal(rate.makerCommissionRate), Decimal(rate.takerCommissionRate))
            if rate
            else FUTURES_DEFAULT_FEES
        )
        return futures_perpetual(info, maker, taker, ts_ns)

    def accept(entry: dict[str, Any]) -> bool:
        return entry.get("contractType") == "PERPETUAL" and entry.get("marginAsset") == entry.get(
            "quoteAsset"
        )

    return _listing(payload, symbols, accept, parse)


def spot_instruments_from_exchange_info(
    payload: dict[str, Any], symbols: Iterable[str] | None = None
) -> InstrumentListing:
    """Spot pairs of a GET /api/v3/exchangeInfo payload, decoded with Nautilus' schema. Fees: the bundled
    trading fee where the snapshot has the symbol, else the VIP0 rates (check yours)."""
    _, trading_fees, _ = _spot_snapshot()

    def parse(entry: dict[str, Any], ts_ns: int) -> Instrument:
        info = msgspec.convert(entry, BinanceSpotSymbolInfo)
        fee = trading_fees.get(info.symbol)
        maker, taker = (
            (Decimal(fee.makerCommission), Decimal(fee.takerCommission)) if fee else SPOT_DEFAULT_FEES
        )
        return spot_pair(info, maker, taker, ts_ns)

    return _listing(payload, symbols, lambda entry: True, parse)
