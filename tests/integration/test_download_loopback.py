"""Downloads through the real python-binance and pybit clients, pointed at a loopback venue (--base-url).

The server (tests/loopback_venue.py) serves real bars (shipped slices, tests.factories) in each venue's
response format and injects faults. Every test compares the catalog with the served bars, bar by bar.
"""

from __future__ import annotations

import random
from datetime import UTC
from datetime import date
from datetime import datetime
from decimal import Decimal

import polars as pl
import pytest
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog

from adapters.binance.historical import BinanceHistoricalVenue
from adapters.bybit.historical import BybitHistoricalVenue
from qa_engine.data import download as download_module
from qa_engine.data.download import RetryPolicy
from qa_engine.data.download import VenueCaller
from qa_engine.data.download import download_funding_rates
from qa_engine.data.download import download_klines
from qa_engine.data.download import resolve_instruments
from qa_engine.data.download import store_instruments
from qa_engine.data.markets import Market
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.errors import VenueError
from tests.factories import real_klines
from tests.loopback_venue import Fault
from tests.loopback_venue import LoopbackVenue
from tests.loopback_venue import funding_series

BINANCE_KEY = ("binance-futures", "BTCUSDT", "1m")
BYBIT_KEY = ("bybit-linear", "BTCUSDT", "5m")
MINUTE_NS = 60_000_000_000


@pytest.fixture(scope="module")
def binance_bars() -> pl.DataFrame:
    """Four days of real Binance USD-M BTCUSDT 1m bars (5,760), 2025-05-05 .. 2025-05-08."""
    return real_klines("binance_futures_BTCUSDT_1m", 5_760, start="2025-05-05")


@pytest.fixture(scope="module")
def bybit_bars() -> pl.DataFrame:
    """Ten days of real Bybit linear BTCUSDT 5m bars (2,880), 2025-01-01 .. 2025-01-10."""
    return real_klines("bybit_linear_BTCUSDT_5m", 2_880, start="2025-01-01")


def _catalog_frame(catalog, bar_type: str, interval_ns: int) -> pl.DataFrame:
    bars = ParquetDataCatalog(str(catalog)).bars(bar_types=[bar_type])
    return pl.DataFrame(
        {
            "ts_open": [bar.ts_event - interval_ns for bar in bars],
            "open": [float(str(bar.open)) for bar in bars],
            "high": [float(str(bar.high)) for bar in bars],
            "low": [float(str(bar.low)) for bar in bars],
            "close": [float(str(bar.close)) for bar in bars],
            "volume": [float(str(bar.volume)) for bar in bars],
        }
    ).with_columns(pl.col("ts_open").cast(pl.Datetime("ns", "UTC")))


def _assert_catalog_equals(catalog, served: pl.DataFrame, bar_type: str, interval_ns: int) -> None:
    stored = _catalog_frame(catalog, bar_type, interval_ns)
    assert stored.height == served.height
    assert stored.equals(served.select(stored.columns))


def _binance(server: LoopbackVenue, market: Market = Market.BINANCE_FUTURES, timeout_secs: float = 5.0):
    return BinanceHistoricalVenue(market, server.base_url, timeout_secs)


def _caller(**policy) -> tuple[VenueCaller, list[float]]:
    waits: list[float] = []
    return VenueCaller(RetryPolicy(**policy), sleep=waits.append, rng=random.Random(7)), waits


def _download(venue, symbol, interval, start, end, catalog, caller=None, **kwargs):
    instrument = resolve_instruments(venue, [symbol])[symbol]
    return download_klines(
        venue,
        instrument,
        symbol,
        interval,
        date.fromisoformat(start),
        date.fromisoformat(end),
        catalog,
        caller=caller or _caller()[0],
        **kwargs,
    )


def test_binance_futures_download_equals_the_served_bars(tmp_path, binance_bars):
    with LoopbackVenue({BINANCE_KEY: binance_bars}) as server:
        result = _download(_binance(server), "BTCUSDT", "1m", "2025-05-05", "2025-05-08", tmp_path)

    _assert_catalog_equals(tmp_path, binance_bars, result.bar_type, MINUTE_NS)
    assert (result.bars_written, result.requests, result.gaps) == (5_760, 4, ())
    assert [(b - a) // 60_000 + 1 for a, b in server.kline_windows()] == [1500, 1500, 1500, 1260]


def test_bybit_download_equals_the_served_bars_newest_first_pages(tmp_path, bybit_bars):
    with LoopbackVenue({BYBIT_KEY: bybit_bars}) as server:
        result = _download(
            BybitHistoricalVenue(server.base_url), "BTCUSDT", "5m", "2025-01-01", "2025-01-10", tmp_path
        )

    _assert_catalog_equals(tmp_path, bybit_bars, "BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL", 5 * MINUTE_NS)
    assert result.bars_written == 2_880 and len(server.kline_windows()) == 3


def test_a_second_run_fetches_nothing_already_stored(tmp_path, binance_bars):
    with LoopbackVenue({BINANCE_KEY: binance_bars}) as server:
        _download(_binance(server), "BTCUSDT", "1m", "2025-05-05", "2025-05-06", tmp_path)
        before = len(server.kline_windows())
        again = _download(_binance(server), "BTCUSDT", "1m", "2025-05-05", "2025-05-06", tmp_path)
        wider = _download(_binance(server), "BTCUSDT", "1m", "2025-05-05", "2025-05-08", tmp_path)
        later_windows = server.kline_windows()[before:]

    assert (again.bars_written, again.requests) == (0, 0)
    assert wider.bars_written == 2 * 1_440 and wider.bars_already_stored == 2 * 1_440
    stored_until = int(datetime(2025, 5, 7, tzinfo=UTC).timestamp() * 1000)
    assert min(start for start, _ in later_windows) == stored_until
    _assert_catalog_equals(tmp_path, binance_bars, wider.bar_type, MINUTE_NS)


def test_rate_limit_honours_retry_after_then_completes(tmp_path, binance_bars):
    caller, waits = _caller()
    with LoopbackVenue({BINANCE_KEY: binance_bars}) as server:
        server.faults.append(Fault("rate_limit", skip=1, retry_after_secs=7))
        result = _download(_binance(server), "BTCUSDT", "1m", "2025-05-05", "2025-05-08", tmp_path, caller)
        statuses = [item.status for item in server.requests("klines")]

    assert statuses.count(429) == 1 and 7.0 in waits
    assert (result.retries, result.rate_limited) == (1, 1)
    _assert_catalog_equals(tmp_path, binance_bars, result.bar_type, MINUTE_NS)


def test_bybit_retcode_10006_waits_until_the_reset_timestamp(tmp_path, bybit_bars):
    caller, waits = _caller()
    with LoopbackVenue({BYBIT_KEY: bybit_bars}) as server:
        server.faults.append(Fault("rate_limit", retry_after_secs=3))
        result = _download(
            BybitHistoricalVenue(server.base_url),
            "BTCUSDT",
            "5m",
            "2025-01-01",
            "2025-01-10",
            tmp_path,
            caller,
        )

    assert len(waits) == 1 and 2.0 < waits[0] <= 3.0
    assert result.rate_limited == 1 and result.bars_written == 2_880


def test_server_errors_timeouts_and_truncated_bodies_are_retried(tmp_path, binance_bars):
    caller, waits = _caller(initial_wait_secs=0.25, max_wait_secs=2.0)
    with LoopbackVenue({BINANCE_KEY: binance_bars}) as server:
        server.faults += [
            Fault("server_error", status=503, count=2),
            Fault("timeout", delay_secs=1.0, skip=1),
            Fault("truncated", skip=2),
            Fault("short_body", skip=3),
        ]
        result = _download(
            _binance(server, timeout_secs=0.4), "BTCUSDT", "1m", "2025-05-05", "2025-05-08", tmp_path, caller
        )
        faults = [item.fault for item in server.requests("klines") if item.fault]

    assert sorted(faults) == ["server_error", "server_error", "short_body", "timeout", "truncated"]
    assert result.retries == 5 and len(waits) == 5 and max(waits) <= 2.0
    _assert_catalog_equals(tmp_path, binance_bars, result.bar_type, MINUTE_NS)


def test_bybit_truncated_and_short_bodies_are_retried(tmp_path, bybit_bars):
    caller, _ = _caller()
    with LoopbackVenue({BYBIT_KEY: bybit_bars}) as server:
        server.faults += [Fault("truncated"), Fault("short_body"), Fault("server_error", status=502)]
        result = _download(
            BybitHistoricalVenue(server.base_url),
            "BTCUSDT",
            "5m",
            "2025-01-01",
            "2025-01-10",
            tmp_path,
            caller,
        )

    assert result.retries == 3
    _assert_catalog_equals(tmp_path, bybit_bars, "BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL", 5 * MINUTE_NS)


def test_endless_server_errors_end_in_a_venue_error_and_keep_what_was_committed(tmp_path, binance_bars):
    caller, waits = _caller(max_attempts=4)
    with LoopbackVenue({BINANCE_KEY: binance_bars}) as server:
        server.faults.append(Fault("server_error", skip=2, count=100))
        with pytest.raises(VenueError, match="failed 4 time.*HTTP 503.*run the same command again"):
            _download(
                _binance(server),
                "BTCUSDT",
                "1m",
                "2025-05-05",
                "2025-05-08",
                tmp_path,
                caller,
                commit_every_pages=1,
            )
        server.faults.clear()
        resumed = _download(_binance(server), "BTCUSDT", "1m", "2025-05-05", "2025-05-08", tmp_path)

    assert len(waits) == 3
    assert resumed.bars_already_stored == 3_000 and resumed.bars_written == 2_760
    _assert_catalog_equals(tmp_path, binance_bars, resumed.bar_type, MINUTE_NS)


def test_a_long_ban_fails_at_once_with_the_wait_the_venue_asks(tmp_path, binance_bars):
    caller, waits = _caller(max_total_wait_secs=600)
    with LoopbackVenue({BINANCE_KEY: binance_bars}) as server:
        server.faults.append(Fault("ban", retry_after_secs=7_200))
        with pytest.raises(VenueError, match="HTTP 418.*asks to wait 7200 s"):
            _download(_binance(server), "BTCUSDT", "1m", "2025-05-05", "2025-05-08", tmp_path, caller)
    assert waits == []


def test_pages_that_repeat_bars_store_each_bar_once(tmp_path, binance_bars, bybit_bars):
    with LoopbackVenue({BINANCE_KEY: binance_bars, BYBIT_KEY: bybit_bars}) as server:
        server.faults += [Fault("repeat", path="/fapi/v1/klines", skip=1, repeat_bars=200)]
        server.faults += [Fault("repeat", path="/v5/market/kline", skip=1, repeat_bars=50)]
        binance = _download(_binance(server), "BTCUSDT", "1m", "2025-05-05", "2025-05-08", tmp_path)
        bybit = _download(
            BybitHistoricalVenue(server.base_url), "BTCUSDT", "5m", "2025-01-01", "2025-01-10", tmp_path
        )

    # Binance: the page began 200 bars early and, being full, ended 200 bars short: a follow-up got them.
    assert binance.rows_outside_window == 200 and binance.pages == 5
    assert bybit.duplicate_rows_collapsed == 50
    _assert_catalog_equals(tmp_path, binance_bars, binance.bar_type, MINUTE_NS)
    _assert_catalog_equals(tmp_path, bybit_bars, bybit.bar_type, 5 * MINUTE_NS)


def test_a_venue_gap_is_reported_never_filled_and_not_asked_for_again(tmp_path, binance_bars):
    outage = binance_bars.slice(2_000, 90)
    served = binance_bars.filter(~pl.col("ts_open").is_in(outage["ts_open"].implode()))
    with LoopbackVenue({BINANCE_KEY: served}) as server:
        first = _download(_binance(server), "BTCUSDT", "1m", "2025-05-05", "2025-05-08", tmp_path)
        requests_before = len(server.kline_windows())
        second = _download(_binance(server), "BTCUSDT", "1m", "2025-05-05", "2025-05-08", tmp_path)
        requests_again = len(server.kline_windows()) - requests_before

    gap = first.gaps[0]
    assert len(first.gaps) == 1 and gap.missing_bars == 90 == first.missing_bars
    assert gap.first_missing_open == outage["ts_open"][0] and gap.last_missing_open == outage["ts_open"][-1]
    assert second.gaps == first.gaps and requests_again == 0
    _assert_catalog_equals(tmp_path, served, first.bar_type, MINUTE_NS)


def test_only_closed_bars_are_stored(tmp_path, binance_bars):
    now = datetime(2025, 5, 6, 12, 30, 40, tzinfo=UTC)
    with LoopbackVenue({BINANCE_KEY: binance_bars}) as server:
        result = _download(
            _binance(server),
            "BTCUSDT",
            "1m",
            "2025-05-05",
            "2025-05-08",
            tmp_path,
            now_ms=lambda: int(now.timestamp() * 1000),
        )

    expected = binance_bars.filter(pl.col("ts_open") < datetime(2025, 5, 6, 12, 30, tzinfo=UTC))
    assert result.range_end == datetime(2025, 5, 6, 12, 30, tzinfo=UTC)  # the 12:30 bar is still forming
    _assert_catalog_equals(tmp_path, expected, result.bar_type, MINUTE_NS)


def test_crash_between_catalog_write_and_checkpoint_neither_duplicates_nor_refetches(
    tmp_path, binance_bars, monkeypatch
):
    saves = {"count": 0}
    real_save = download_module.Checkpoint.save

    def crash_on_second_save(self):
        saves["count"] += 1
        if saves["count"] == 2:
            raise KeyboardInterrupt("simulated crash after the catalog write, before the checkpoint")
        real_save(self)

    with LoopbackVenue({BINANCE_KEY: binance_bars}) as server:
        monkeypatch.setattr(download_module.Checkpoint, "save", crash_on_second_save)
        with pytest.raises(KeyboardInterrupt):
            _download(
                _binance(server), "BTCUSDT", "1m", "2025-05-05", "2025-05-08", tmp_path, commit_every_pages=1
            )
        monkeypatch.setattr(download_module.Checkpoint, "save", real_save)
        stored = _catalog_frame(tmp_path, "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL", MINUTE_NS)
        before = len(server.kline_windows())
        resumed = _download(_binance(server), "BTCUSDT", "1m", "2025-05-05", "2025-05-08", tmp_path)
        resumed_windows = server.kline_windows()[before:]

    assert stored.height == 3_000  # both committed pages are in the catalog
    stored_ms = set((stored["ts_open"].dt.epoch("ms")).to_list())
    assert not any(start in stored_ms or end in stored_ms for start, end in resumed_windows)
    assert resumed.bars_written == 2_760
    _assert_catalog_equals(tmp_path, binance_bars, resumed.bar_type, MINUTE_NS)


def test_bad_symbol_and_rejected_requests_fail_with_clear_messages(tmp_path, binance_bars):
    with LoopbackVenue({BINANCE_KEY: binance_bars}) as server:
        venue = _binance(server)
        with pytest.raises(ConfigError, match="does not list the symbol 'BTCUSDX'; did you mean BTCUSDT"):
            resolve_instruments(venue, ["BTCUSDX"])
        instrument = resolve_instruments(venue, ["BTCUSDT"])["BTCUSDT"]
        with pytest.raises(
            DataError, match="binance-futures NOPEUSDT 1m .*HTTP 400, code -1121: Invalid symbol"
        ):
            download_klines(venue, instrument, "NOPEUSDT", "1m", date(2025, 5, 5), date(2025, 5, 5), tmp_path)
        bybit = BybitHistoricalVenue(server.base_url)
        with pytest.raises(DataError, match="retCode 10001: Not supported symbols"):
            download_klines(bybit, instrument, "NOPEUSDT", "5m", date(2025, 1, 1), date(2025, 1, 1), tmp_path)


def test_binance_spot_and_a_non_btc_bybit_symbol_get_their_venue_definitions(tmp_path):
    with LoopbackVenue() as server:
        spot = resolve_instruments(_binance(server, Market.BINANCE_SPOT), ["ETHUSDT"])["ETHUSDT"]
        tesla = resolve_instruments(BybitHistoricalVenue(server.base_url), ["TSLAUSDT"])["TSLAUSDT"]
        store_instruments(tmp_path, [spot, tesla])

    held = {item.id.value: item for item in ParquetDataCatalog(str(tmp_path)).instruments()}
    assert isinstance(held["ETHUSDT.BINANCE"], CurrencyPair)
    assert isinstance(held["TSLAUSDT-LINEAR.BYBIT"], CryptoPerpetual)
    assert str(held["TSLAUSDT-LINEAR.BYBIT"].price_increment) == str(tesla.price_increment)


@pytest.mark.parametrize(("market", "limit"), [("binance-futures", 1000), ("bybit-linear", 200)])
def test_funding_rates_download_into_the_catalog_and_resume(tmp_path, market, limit):
    # Funding every 8 h for 120 days (360 records): rates are test values, the timing is the venues'.
    start_ms = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
    times = [start_ms + index * 8 * 3_600_000 for index in range(360)]
    rates = [f"{(index % 7 - 3) * 0.00005:.8f}" for index in range(360)]
    with LoopbackVenue(funding={(market, "BTCUSDT"): funding_series(times, rates)}) as server:
        venue = _binance(server) if market.startswith("binance") else BybitHistoricalVenue(server.base_url)
        instrument = resolve_instruments(venue, ["BTCUSDT"])["BTCUSDT"]
        server.faults.append(Fault("server_error", path="fund", skip=1))
        caller, _ = _caller()
        first = download_funding_rates(
            venue, instrument, "BTCUSDT", date(2025, 1, 1), date(2025, 4, 30), tmp_path, caller=caller
        )
        requests_before = len(server.requests("fund"))
        second = download_funding_rates(
            venue, instrument, "BTCUSDT", date(2025, 1, 1), date(2025, 4, 30), tmp_path
        )
        requests_again = len(server.requests("fund")) - requests_before

    updates = ParquetDataCatalog(str(tmp_path)).query(FundingRateUpdate, identifiers=[instrument.id.value])
    assert [(item.ts_event // 1_000_000, Decimal(str(item.rate))) for item in updates] == [
        (ts, Decimal(rate)) for ts, rate in zip(times, rates, strict=True)
    ]
    assert (first.records_written, first.retries, second.records_written, requests_again) == (360, 1, 0, 0)
    assert first.largest_spacing_hours == 8.0
    assert max(int(item.params["limit"]) for item in server.requests("fund")) == limit
