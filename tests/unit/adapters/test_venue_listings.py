"""Instrument definitions from live venue listings (exchangeInfo, instruments-info) and kline parsing."""

from __future__ import annotations

import copy
import json

import polars as pl

from adapters.binance.historical import kline_frame as binance_kline_frame
from adapters.binance.providers import binance_futures_instrument
from adapters.binance.providers import binance_spot_instrument
from adapters.binance.providers import futures_instruments_from_exchange_info
from adapters.binance.providers import spot_instruments_from_exchange_info
from adapters.bybit.historical import kline_frame as bybit_kline_frame
from adapters.bybit.providers import bybit_linear_instrument
from adapters.bybit.providers import linear_instruments_from_payload
from tests.factories import BINANCE_SPOT_KLINES_2021
from tests.factories import REPO_ROOT
from tests.factories import bybit_sample

SNAPSHOTS = REPO_ROOT / "adapters"


def _json(path):
    return json.loads(path.read_text())


def test_exchange_info_listings_give_the_same_instruments_as_the_snapshot_providers():
    futures = futures_instruments_from_exchange_info(
        _json(SNAPSHOTS / "binance" / "snapshots" / "futures_usdt_exchange_info.json")
    )
    spot = spot_instruments_from_exchange_info(
        _json(SNAPSHOTS / "binance" / "snapshots" / "spot_exchange_info.json")
    )
    bybit = _json(SNAPSHOTS / "bybit" / "snapshots" / "linear_instruments.json")
    linear = linear_instruments_from_payload(bybit["result"]["list"], bybit["time"])

    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert futures.instruments[symbol] == binance_futures_instrument(symbol)
        assert futures.instruments[symbol].to_dict(futures.instruments[symbol]) == binance_futures_instrument(
            symbol
        ).to_dict(binance_futures_instrument(symbol))
        assert spot.instruments[symbol].to_dict(spot.instruments[symbol]) == binance_spot_instrument(
            symbol
        ).to_dict(binance_spot_instrument(symbol))
        assert linear.instruments[symbol].to_dict(linear.instruments[symbol]) == bybit_linear_instrument(
            symbol
        ).to_dict(bybit_linear_instrument(symbol))


def test_filter_and_order_types_newer_than_nautilus_do_not_drop_a_symbol():
    payload = _json(SNAPSHOTS / "binance" / "snapshots" / "futures_usdt_exchange_info.json")
    newer = copy.deepcopy(payload)
    for entry in newer["symbols"]:
        entry["filters"].append({"filterType": "POSITION_RISK_CONTROL", "positionControlSide": "NONE"})
        entry["orderTypes"].append("SOME_FUTURE_ORDER_TYPE")
        entry["status"] = "A_NEW_STATUS"

    listing = futures_instruments_from_exchange_info(newer, ["BTCUSDT"])

    assert listing.skipped == {}
    assert (
        listing.instruments["BTCUSDT"].price_increment
        == binance_futures_instrument("BTCUSDT").price_increment
    )


def test_a_symbol_the_schema_cannot_read_is_skipped_with_the_reason():
    payload = _json(SNAPSHOTS / "binance" / "snapshots" / "futures_usdt_exchange_info.json")
    broken = copy.deepcopy(payload)
    del broken["symbols"][0]["maintMarginPercent"]

    listing = futures_instruments_from_exchange_info(broken)

    symbol = broken["symbols"][0]["symbol"]
    assert symbol not in listing.instruments and "maintMarginPercent" in listing.skipped[symbol]
    assert set(listing.listed) == {"BTCUSDT", "ETHUSDT"}


def test_bybit_sample_of_another_symbol_parses_with_default_fees():
    sample = _json(bybit_sample("http_get_instruments_linear_symbol_type.json"))

    listing = linear_instruments_from_payload(sample["result"]["list"], sample["time"])

    tesla = listing.instruments["TSLAUSDT"]
    assert tesla.id.value == "TSLAUSDT-LINEAR.BYBIT"
    assert (str(tesla.maker_fee), str(tesla.taker_fee)) == ("0.0002", "0.00055")


def test_binance_kline_arrays_parse_to_the_normalised_frame():
    rows = json.loads(BINANCE_SPOT_KLINES_2021.read_text())  # ten real Binance spot klines (REST shape)

    frame = binance_kline_frame(rows)

    assert frame.columns == ["ts_open", "open", "high", "low", "close", "volume"]
    assert frame["ts_open"].dt.epoch("ms").to_list() == [row[0] for row in rows]
    assert frame["close"].to_list() == [float(row[4]) for row in rows]


def test_bybit_kline_strings_newest_first_parse_to_the_normalised_frame():
    sample = _json(bybit_sample("http_get_klines_linear.json"))

    frame = bybit_kline_frame(sample["result"]["list"])

    assert frame.row(0) == (
        pl.Series([1709891679000 * 1_000_000]).cast(pl.Datetime("ns", "UTC"))[0],
        27450.0,
        27460.0,
        27440.0,
        27455.0,
        123.45,
    )
