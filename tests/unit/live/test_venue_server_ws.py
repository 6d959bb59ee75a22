"""Nautilus' own pyo3 Bybit websocket clients (public, private, trade) against the loopback venue."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nautilus_trader.core import nautilus_pyo3 as pyo3
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import capsule_to_data

from tests.unit.live.test_venue_server_http import http_client
from tests.unit.live.venue_harness import API_KEY
from tests.unit.live.venue_harness import API_SECRET
from tests.unit.live.venue_harness import INSTRUMENT_ID
from tests.unit.live.venue_harness import sample_data
from tests.unit.live.venue_harness import venue_thread
from tests.unit.live.venue_harness import wait_for

LINEAR = pyo3.BybitProductType.LINEAR
MAINNET = pyo3.BybitEnvironment.MAINNET
ACCOUNT = pyo3.AccountId("BYBIT-001")
BAR_TYPE = f"{INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL"


async def instruments(url: str) -> list[Any]:
    return await http_client(url).request_instruments(LINEAR)


async def public_client(url: str, http_url: str, received: list[Any]) -> pyo3.BybitWebSocketClient:
    client = pyo3.BybitWebSocketClient.new_public(LINEAR, MAINNET, url=url)
    client.set_bars_timestamp_on_close(True)
    for instrument in await instruments(http_url):
        client.cache_instrument(instrument)

    def on_message(message: Any) -> None:
        if pyo3.is_pycapsule(message):
            received.append(capsule_to_data(message))
        elif isinstance(message, pyo3.FundingRateUpdate):  # ticker-derived data comes as pyo3 objects
            received.append(message)

    await client.connect(asyncio.get_running_loop(), on_message)
    await client.wait_until_active(5.0)
    await client.subscribe_bars(pyo3.BarType.from_str(BAR_TYPE))
    return client


async def private_client(
    venue: Any, received: list[Any], secret: str = API_SECRET, trade: bool = False
) -> pyo3.BybitWebSocketClient:
    make = pyo3.BybitWebSocketClient.new_trade if trade else pyo3.BybitWebSocketClient.new_private
    url = venue.ws_trade_url if trade else venue.ws_private_url
    client = make(MAINNET, api_key=API_KEY, api_secret=secret, url=url)
    client.set_account_id(ACCOUNT)
    for instrument in await instruments(venue.http_url):
        client.cache_instrument(instrument)
    await client.connect(asyncio.get_running_loop(), received.append)
    return client


@pytest.mark.timeout(60)
def test_venue_server_ws_public_bars_are_stamped_at_the_catalog_close() -> None:
    data = sample_data(bars=6)
    expected = [bar.end_ms * 1_000_000 for bar in data.bars["BTCUSDT"]]
    with venue_thread(data, start_on="subscribe") as venue:

        async def scenario() -> list[Bar]:
            bars: list[Bar] = []
            client = await public_client(venue.ws_public_url, venue.http_url, bars)
            await wait_for(lambda: len(bars) == len(expected))
            await client.close()
            return bars

        bars = asyncio.run(scenario())
    assert [bar.ts_event for bar in bars] == expected
    assert [str(bar.close) for bar in bars] == [str(row.close) for row in data.bars["BTCUSDT"]]
    assert str(bars[0].bar_type) == BAR_TYPE


@pytest.mark.timeout(60)
def test_venue_server_ws_private_wrong_secret_gets_error_sign() -> None:
    with venue_thread() as venue:

        async def scenario() -> list[Any]:
            messages: list[Any] = []
            client = await private_client(venue, messages, secret="not-the-secret")
            await wait_for(lambda: messages, 5)
            await client.close()
            return messages

        messages = asyncio.run(scenario())
        counts = venue.state()["counts"]
    # the socket is up (wait_until_active passes); the failed auth reaches the callback as an error
    assert [(type(m).__name__, m.code, m.message) for m in messages] == [
        ("BybitWebSocketError", 10004, "error sign!")
    ]
    assert counts["auth_failures"] == 1


@pytest.mark.timeout(60)
def test_venue_server_ws_trade_order_reaches_private_stream_and_rejection_comes_back() -> None:
    with venue_thread() as venue:
        venue.begin()
        assert venue.done.wait(10)

        async def scenario() -> tuple[list[Any], list[Any]]:
            private_messages: list[Any] = []
            trade_messages: list[Any] = []
            private = await private_client(venue, private_messages)
            await private.wait_until_active(5.0)
            for subscribe in (private.subscribe_orders, private.subscribe_executions):
                await subscribe()
            for subscribe in (private.subscribe_positions, private.subscribe_wallet):
                await subscribe()
            trade = await private_client(venue, trade_messages, trade=True)
            await trade.wait_until_active(5.0)
            await asyncio.sleep(0.3)  # subscriptions acknowledged
            for client_order_id in ("T-1", "T-2"):
                if client_order_id == "T-2":  # once T-1 is filled
                    await wait_for(lambda: any(isinstance(m, pyo3.FillReport) for m in private_messages))
                    venue.inject(insufficient_balance=1)
                await trade.submit_order(
                    LINEAR,
                    pyo3.TraderId("TESTER-001"),
                    pyo3.StrategyId("S-001"),
                    pyo3.InstrumentId.from_str(INSTRUMENT_ID),
                    pyo3.ClientOrderId(client_order_id),
                    pyo3.OrderSide.BUY,
                    pyo3.OrderType.MARKET,
                    pyo3.Quantity.from_str("0.010"),
                )
            await wait_for(lambda: any(isinstance(m, pyo3.OrderRejected) for m in trade_messages))
            await wait_for(lambda: any(isinstance(m, pyo3.AccountState) for m in private_messages))
            await asyncio.gather(private.close(), trade.close())
            return private_messages, trade_messages

        private_messages, trade_messages = asyncio.run(scenario())
    reports = [m for m in private_messages if isinstance(m, pyo3.OrderStatusReport)]
    fills = [m for m in private_messages if isinstance(m, pyo3.FillReport)]
    assert [(str(r.client_order_id), str(r.order_status)) for r in reports] == [("T-1", "FILLED")]
    assert [str(f.last_px) for f in fills] == [str(sample_data().bars["BTCUSDT"][-1].close)]
    positions = [m for m in private_messages if isinstance(m, pyo3.PositionStatusReport)]
    assert [(str(p.position_side), str(p.quantity)) for p in positions][-1:] == [("LONG", "0.010")]
    assert any(isinstance(m, pyo3.AccountState) for m in private_messages)
    rejections = [m for m in trade_messages if isinstance(m, pyo3.OrderRejected)]
    assert [(str(r.client_order_id), str(r.reason)) for r in rejections] == [
        ("T-2", "ab not enough for new order")
    ]


@pytest.mark.timeout(60)
def test_venue_server_ws_dropped_public_connection_is_reconnected_and_resubscribed() -> None:
    data = sample_data(bars=4)
    with venue_thread(data, speed="lockstep", quiet_ms=30) as venue:

        async def scenario() -> list[Bar]:
            bars: list[Bar] = []
            client = await public_client(venue.ws_public_url, venue.http_url, bars)
            await asyncio.sleep(0.3)
            assert venue.drop("public") == 1
            await wait_for(lambda: venue.state()["connections"].get("public", 0) == 1, 15)
            await asyncio.sleep(0.5)  # the client resubscribes after it reconnects
            venue.begin()
            await wait_for(lambda: len(bars) == 4, 15)
            await client.close()
            return bars

        bars = asyncio.run(scenario())
        state = venue.state()
    assert state["counts"]["ws_connections_public"] == 2
    assert state["faults"] == {"drop_public": 1}
    assert [bar.ts_event for bar in bars] == [row.end_ms * 1_000_000 for row in data.bars["BTCUSDT"]]


@pytest.mark.timeout(60)
def test_venue_server_ws_ticker_announces_the_catalog_funding_rate_due_next() -> None:
    """The ticker stream is how a live node learns funding rates (the paper venue settles with them): each
    bar close comes with a ticker whose fundingRate / nextFundingTime are the catalog's next settlement."""
    data = sample_data(bars=97)  # closes 00:05 .. 08:05; the venue holds the rates its window settles
    rates = data.funding_rates["BTCUSDT"]
    first_funding_ms = min(rates)
    assert first_funding_ms == 1_735_718_400_000  # 2025-01-01T08:00Z
    with venue_thread(data, start_on="manual") as venue:

        async def scenario() -> list[Any]:
            received: list[Any] = []
            client = await public_client(venue.ws_public_url, venue.http_url, received)
            await client.subscribe_ticker(pyo3.InstrumentId.from_str(INSTRUMENT_ID))
            await asyncio.sleep(0.3)  # subscriptions acknowledged
            venue.begin()
            await wait_for(lambda: sum(isinstance(m, Bar) for m in received) == 97)
            await asyncio.sleep(0.3)
            await client.close()
            return received

        received = asyncio.run(scenario())
    funding = [m for m in received if type(m).__name__ == "FundingRateUpdate"]
    assert funding, sorted({type(m).__name__ for m in received})
    assert {str(m.instrument_id) for m in funding} == {INSTRUMENT_ID}
    before = [m for m in funding if m.ts_event < first_funding_ms * 1_000_000]
    assert before and {(m.rate, m.next_funding_ns) for m in before} == {
        (rates[first_funding_ms], first_funding_ms * 1_000_000)
    }
