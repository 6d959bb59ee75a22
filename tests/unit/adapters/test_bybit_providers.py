"""Bybit linear instrument definitions parsed from v5 instruments-info payloads (adapters/bybit/providers.py),
checked against the payloads and against NautilusTrader 1.231's own Rust parser."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest
from nautilus_trader.core import nautilus_pyo3
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.instruments import instruments_from_pyo3

from adapters.bybit.providers import BASE_FEE_RATES
from adapters.bybit.providers import bybit_linear_instrument
from adapters.bybit.providers import bybit_linear_symbols
from adapters.bybit.providers import linear_instruments_from_payload
from qa_engine.errors import ConfigError
from qa_engine.plugins import load_instrument
from tests.factories import REPO_ROOT

SNAPSHOT = REPO_ROOT / "adapters" / "bybit" / "snapshots" / "linear_instruments.json"
SAMPLES = REPO_ROOT / "tests" / "data" / "bybit_api_samples"
PAYLOADS = [
    SNAPSHOT,
    SAMPLES / "http_get_instruments_linear.json",
    SAMPLES / "http_get_instruments_linear_symbol_type.json",
]


@pytest.mark.parametrize(
    ("symbol", "tick", "step", "min_quantity", "max_quantity", "min_price", "max_price"),
    [
        ("BTCUSDT", "0.10", "0.001", "0.001", "100.000", "0.10", "199999.80"),
        ("ETHUSDT", "0.01", "0.01", "0.01", "1500.00", "0.01", "19999.98"),
    ],
)
def test_bybit_linear_definition_matches_the_v5_payload(
    symbol, tick, step, min_quantity, max_quantity, min_price, max_price
):
    instrument = bybit_linear_instrument(symbol)

    assert isinstance(instrument, CryptoPerpetual)
    assert instrument.id.value == f"{symbol}-LINEAR.BYBIT"
    assert instrument.raw_symbol.value == symbol
    assert str(instrument.price_increment) == tick
    assert str(instrument.size_increment) == step
    assert str(instrument.lot_size) == step
    assert str(instrument.min_quantity) == min_quantity
    assert str(instrument.max_quantity) == max_quantity
    assert str(instrument.min_price) == min_price
    assert str(instrument.max_price) == max_price
    assert instrument.quote_currency.code == "USDT"
    assert instrument.settlement_currency.code == "USDT"
    assert not instrument.is_inverse


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_bybit_linear_min_notional_and_base_fee_rates(symbol):
    instrument = bybit_linear_instrument(symbol)

    assert instrument.min_notional.as_decimal() == Decimal("5")
    assert instrument.min_notional.currency.code == "USDT"
    # Bybit's published base rates for USDT perpetuals, not the 2023 fixture's 0.01 % / 0.06 %.
    assert (instrument.maker_fee, instrument.taker_fee) == (Decimal("0.0002"), Decimal("0.00055"))


def test_bybit_linear_timestamps_are_the_payload_time_exactly():
    instrument = bybit_linear_instrument("BTCUSDT")

    assert instrument.ts_event == instrument.ts_init == 1_694_668_718_723_000_000


def test_bybit_unknown_symbol_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"'XRPUSDT'.*known symbols: BTCUSDT, ETHUSDT"):
        bybit_linear_instrument("XRPUSDT")


def test_bybit_symbols_are_those_of_the_snapshot():
    assert bybit_linear_symbols() == ["BTCUSDT", "ETHUSDT"]


def test_load_instrument_resolves_bybit_linear_through_the_registry():
    assert load_instrument("bybit-linear", "ETHUSDT").id.value == "ETHUSDT-LINEAR.BYBIT"


def test_bundled_payloads_are_the_documented_byte_copies():
    documented = (REPO_ROOT / "adapters" / "bybit" / "README.md").read_text()
    documented += (SAMPLES / "README.md").read_text()

    for path in PAYLOADS:
        assert hashlib.sha256(path.read_bytes()).hexdigest() in documented, path.name


def test_a_sample_without_max_market_quantity_parses_at_base_rates():
    sample = json.loads((SAMPLES / "http_get_instruments_linear_symbol_type.json").read_text())

    listing = linear_instruments_from_payload(sample["result"]["list"], sample["time"])

    tesla = listing.instruments["TSLAUSDT"]
    assert tesla.id.value == "TSLAUSDT-LINEAR.BYBIT"
    assert (tesla.maker_fee, tesla.taker_fee) == (BASE_FEE_RATES.maker, BASE_FEE_RATES.taker)
    assert listing.skipped == {}


@pytest.mark.parametrize(
    ("section", "field", "value", "reason"),
    [
        ("lotSizeFilter", "qtyStep", None, "lotSizeFilter.qtyStep is None"),
        ("priceFilter", "tickSize", "abc", "priceFilter.tickSize is 'abc', not a number"),
        ("lotSizeFilter", "minNotionalValue", "-5", "lotSizeFilter.minNotionalValue is '-5'"),
    ],
)
def test_a_malformed_entry_is_skipped_naming_the_field(section, field, value, reason):
    payload = json.loads(SNAPSHOT.read_text())
    broken = payload["result"]["list"][0]
    broken[section] = {**broken[section], field: value}

    listing = linear_instruments_from_payload(payload["result"]["list"], payload["time"])

    assert set(listing.instruments) == {"ETHUSDT"}
    assert reason in listing.skipped["BTCUSDT"]
    assert listing.skipped["BTCUSDT"].startswith("BTCUSDT: ")


@pytest.fixture
def payload_server():
    """A one-route HTTP server on 127.0.0.1 that answers every GET with the payload set on it."""
    body: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            data = body["payload"]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, body
    server.shutdown()
    thread.join(timeout=5)


@pytest.mark.parametrize("path", PAYLOADS, ids=lambda path: path.name)
def test_definitions_equal_nautilus_own_parser_except_fees_and_timestamps(payload_server, path):
    server, body = payload_server
    body["payload"] = path.read_bytes()
    client = nautilus_pyo3.BybitHttpClient(base_url=f"http://127.0.0.1:{server.server_port}", max_retries=0)

    async def request():
        return await asyncio.wait_for(
            client.request_instruments(nautilus_pyo3.BybitProductType.LINEAR, None, None), timeout=10
        )

    theirs = {
        str(i.raw_symbol): CryptoPerpetual.to_dict(i) for i in instruments_from_pyo3(asyncio.run(request()))
    }
    payload = json.loads(body["payload"])
    ours = linear_instruments_from_payload(payload["result"]["list"], payload["time"]).instruments

    assert sorted(ours) == sorted(theirs) and ours
    # Nautilus without API keys: placeholder fees (0.1 %), the local clock as ts, an empty info dict.
    ignored = {"maker_fee", "taker_fee", "ts_event", "ts_init", "info"}
    for symbol, instrument in ours.items():
        mine = {k: v for k, v in CryptoPerpetual.to_dict(instrument).items() if k not in ignored}
        nautilus = {k: v for k, v in theirs[symbol].items() if k not in ignored}
        assert mine == nautilus, symbol
