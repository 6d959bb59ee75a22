from __future__ import annotations

from decimal import Decimal

import pytest
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.instruments import CurrencyPair

from adapters import INSTRUMENT_PROVIDERS
from adapters.binance.providers import binance_futures_instrument
from adapters.binance.providers import binance_spot_instrument
from qa_engine.data.markets import MARKETS
from qa_engine.data.markets import Market
from qa_engine.errors import ConfigError
from qa_engine.plugins import load_instrument


@pytest.mark.parametrize(
    ("symbol", "tick", "step", "max_quantity", "min_price"),
    [
        ("BTCUSDT", "0.10", "0.001", "1000.000", "402.00"),
        ("ETHUSDT", "0.01", "0.001", "10000.000", "28.23"),
    ],
)
def test_binance_futures_definition_matches_exchange_info(symbol, tick, step, max_quantity, min_price):
    instrument = binance_futures_instrument(symbol)

    assert isinstance(instrument, CryptoPerpetual)
    assert instrument.id.value == f"{symbol}-PERP.BINANCE"
    assert instrument.raw_symbol.value == symbol
    assert str(instrument.price_increment) == tick
    assert str(instrument.size_increment) == step
    assert str(instrument.min_quantity) == "0.001"
    assert str(instrument.max_quantity) == max_quantity
    assert str(instrument.min_price) == min_price
    assert instrument.min_notional.as_decimal() == Decimal("10")
    assert instrument.maker_fee == Decimal("0.0002")
    assert instrument.taker_fee == Decimal("0.0005")
    assert instrument.margin_init == Decimal("0.05")
    assert instrument.margin_maint == Decimal("0.025")
    assert instrument.ts_event == 1_645_233_611_962_000_000


@pytest.mark.parametrize(("symbol", "step"), [("BTCUSDT", "0.00001000"), ("ETHUSDT", "0.00010000")])
def test_binance_spot_definition_matches_exchange_info(symbol, step):
    instrument = binance_spot_instrument(symbol)

    assert isinstance(instrument, CurrencyPair)
    assert instrument.id.value == f"{symbol}.BINANCE"
    assert str(instrument.price_increment) == "0.01000000"
    assert str(instrument.size_increment) == step
    assert str(instrument.min_quantity) == step
    assert instrument.min_notional.as_decimal() == Decimal("10")
    assert instrument.maker_fee == Decimal("0.001")
    assert instrument.taker_fee == Decimal("0.001")


@pytest.mark.parametrize("provider", [binance_futures_instrument, binance_spot_instrument])
def test_binance_unknown_symbol_lists_the_known_ones(provider):
    with pytest.raises(ConfigError, match=r"'SOLUSDT'.*known symbols: BTCUSDT, ETHUSDT"):
        provider("SOLUSDT")


def test_binance_instrument_info_is_plain_json_data():
    info = binance_futures_instrument("BTCUSDT").info

    assert info["contractType"] == "PERPETUAL"
    assert info["status"] == "TRADING"  # an enum in the schema, a plain string here


@pytest.mark.parametrize("market", list(Market))
@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_every_registered_provider_returns_the_market_id_format(market, symbol):
    instrument = load_instrument(market.value, symbol)

    assert instrument.id.value == MARKETS[market].instrument_id(symbol)


def test_instrument_providers_cover_every_market():
    assert set(INSTRUMENT_PROVIDERS) == {market.value for market in Market}
