from __future__ import annotations

from decimal import Decimal

import pytest
from nautilus_trader.model.instruments import CryptoPerpetual

from adapters.bybit.providers import bybit_linear_instrument
from adapters.bybit.providers import bybit_linear_symbols
from qa_engine.errors import ConfigError
from qa_engine.plugins import load_instrument
from tests.factories import REPO_ROOT
from tests.factories import shared_data_dir


@pytest.mark.parametrize(
    ("symbol", "tick", "step", "min_quantity", "max_quantity", "max_price"),
    [
        ("BTCUSDT", "0.10", "0.001", "0.001", "100.000", "199999.80"),
        ("ETHUSDT", "0.01", "0.01", "0.01", "1500.00", "19999.98"),
    ],
)
def test_bybit_linear_definition_matches_the_v5_payload(
    symbol, tick, step, min_quantity, max_quantity, max_price
):
    instrument = bybit_linear_instrument(symbol)

    assert isinstance(instrument, CryptoPerpetual)
    assert instrument.id.value == f"{symbol}-LINEAR.BYBIT"
    assert instrument.raw_symbol.value == symbol
    assert str(instrument.price_increment) == tick
    assert str(instrument.size_increment) == step
    assert str(instrument.min_quantity) == min_quantity
    assert str(instrument.max_quantity) == max_quantity
    assert str(instrument.max_price) == max_price
    assert instrument.quote_currency.code == "USDT"
    assert instrument.settlement_currency.code == "USDT"
    assert not instrument.is_inverse


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_bybit_linear_min_notional_and_fees_are_filled(symbol):
    instrument = bybit_linear_instrument(symbol)

    assert instrument.min_notional.as_decimal() == Decimal("5")
    assert instrument.min_notional.currency.code == "USDT"
    assert instrument.maker_fee == Decimal("0.0001")
    assert instrument.taker_fee == Decimal("0.0006")


def test_bybit_linear_timestamps_are_the_payload_time_exactly():
    instrument = bybit_linear_instrument("BTCUSDT")

    assert instrument.ts_event == instrument.ts_init == 1_694_668_718_723_000_000


def test_bybit_unknown_symbol_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"'XRPUSDT'.*known symbols: BTCUSDT, ETHUSDT"):
        bybit_linear_instrument("XRPUSDT")


def test_bybit_symbols_are_those_with_definition_and_fee():
    assert bybit_linear_symbols() == ["BTCUSDT", "ETHUSDT"]


def test_load_instrument_resolves_bybit_linear_through_the_registry():
    assert load_instrument("bybit-linear", "ETHUSDT").id.value == "ETHUSDT-LINEAR.BYBIT"


@pytest.mark.parametrize(
    ("bundled", "shared"),
    [
        ("linear_instruments.json", "python_resources/http_responses/linear/instruments.json"),
        ("fee_rate.json", "python_resources/http_responses/fee_rate.json"),
    ],
)
def test_bybit_snapshots_are_byte_copies_of_the_shared_payloads(bundled, shared):
    bundled_bytes = (REPO_ROOT / "adapters" / "bybit" / "snapshots" / bundled).read_bytes()

    assert bundled_bytes == (shared_data_dir() / "bybit_api_samples" / shared).read_bytes()
