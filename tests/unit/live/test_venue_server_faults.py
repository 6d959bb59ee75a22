"""Faults and the bar clock seen through Nautilus' own pyo3 Bybit clients: lockstep, latency samples,
duplicated and delayed acknowledgements, a restart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nautilus_trader.core import nautilus_pyo3 as pyo3

from qa_engine.live.venue.faults import FaultConfig
from tests.unit.live.test_venue_server_http import http_client
from tests.unit.live.test_venue_server_ws import private_client
from tests.unit.live.test_venue_server_ws import public_client
from tests.unit.live.venue_harness import INSTRUMENT_ID
from tests.unit.live.venue_harness import sample_data
from tests.unit.live.venue_harness import venue_thread
from tests.unit.live.venue_harness import wait_for

LINEAR = pyo3.BybitProductType.LINEAR
ACCOUNT = pyo3.AccountId("BYBIT-001")


async def market_buy(client: pyo3.BybitHttpClient, client_order_id: str) -> None:
    await client.submit_order(
        ACCOUNT,
        LINEAR,
        pyo3.InstrumentId.from_str(INSTRUMENT_ID),
        pyo3.ClientOrderId(client_order_id),
        pyo3.OrderSide.BUY,
        pyo3.OrderType.MARKET,
        pyo3.Quantity.from_str("0.001"),
    )


@pytest.mark.timeout(60)
def test_venue_server_lockstep_orders_after_each_bar_fill_at_that_bar_close() -> None:
    data = sample_data(bars=5)
    rows = data.bars["BTCUSDT"]
    with venue_thread(data, speed="lockstep", quiet_ms=200, start_on="subscribe") as venue:

        async def scenario() -> None:
            http = http_client(venue.http_url)
            for instrument in await http.request_instruments(LINEAR):
                http.cache_instrument(instrument)
            orders: list[asyncio.Task[None]] = []

            class Trader(list):  # an order on every bar, sent from the bar callback as a strategy would
                def append(self, bar: Any) -> None:
                    super().append(bar)
                    orders.append(asyncio.ensure_future(market_buy(http, f"L-{len(self)}")))

            bars = Trader()
            client = await public_client(venue.ws_public_url, venue.http_url, bars)
            await wait_for(lambda: len(bars) == len(rows) and all(o.done() for o in orders), 20)
            for order in orders:
                order.result()
            await client.close()

        asyncio.run(scenario())
        fills = venue.state()["books"]["fills"]
        samples = venue.latencies_ms()
    assert [str(fill[3]) for fill in fills] == [str(row.close) for row in rows]
    assert [s.bar_end_ms for s in samples if s.op == "place_order"] == [row.end_ms for row in rows]
    assert all(s.latency_ms is not None and s.latency_ms >= 0 for s in samples)


@pytest.mark.timeout(60)
def test_venue_server_duplicated_and_delayed_acks_reach_the_private_stream_twice() -> None:
    faults = FaultConfig(duplicate_acks=True, ack_delay_ms=100)
    with venue_thread(faults=faults) as venue:
        venue.begin()
        assert venue.done.wait(10)

        async def scenario() -> list[Any]:
            messages: list[Any] = []
            private = await private_client(venue, messages)
            await private.wait_until_active(5.0)
            await private.subscribe_orders()
            await asyncio.sleep(0.3)
            http = http_client(venue.http_url)
            for instrument in await http.request_instruments(LINEAR):
                http.cache_instrument(instrument)
            await market_buy(http, "D-1")
            await wait_for(lambda: len([m for m in messages if isinstance(m, pyo3.OrderStatusReport)]) >= 2)
            await asyncio.sleep(0.3)  # nothing more arrives
            await private.close()
            return messages

        messages = asyncio.run(scenario())
        faults_counted = venue.state()["faults"]
    reports = [m for m in messages if isinstance(m, pyo3.OrderStatusReport)]
    assert [(str(r.client_order_id), str(r.order_status)) for r in reports] == [("D-1", "FILLED")] * 2
    assert faults_counted["duplicate_ack"] >= 1
    assert faults_counted["ack_delay"] >= 1


@pytest.mark.timeout(60)
def test_venue_server_restart_refuses_then_clients_reconnect_with_books_kept() -> None:
    with venue_thread() as venue:
        venue.begin()
        assert venue.done.wait(10)

        async def scenario() -> None:
            http = http_client(venue.http_url)
            for instrument in await http.request_instruments(LINEAR):
                http.cache_instrument(instrument)
            await market_buy(http, "R-1")
            client = await public_client(venue.ws_public_url, venue.http_url, [])
            await asyncio.sleep(0.2)
            venue.restart(refuse_ms=1_500)
            with pytest.raises(Exception, match="503"):
                await http.request_account_state(pyo3.BybitAccountType.UNIFIED, ACCOUNT)
            await wait_for(lambda: venue.state()["connections"].get("public", 0) == 1, 20)
            state = await http.request_account_state(pyo3.BybitAccountType.UNIFIED, ACCOUNT)
            assert str(state.balances[0].total) != "10000.00000000 USDT"  # the fee of R-1 is still booked
            await client.close()

        asyncio.run(scenario())
        state = venue.state()
    assert state["faults"] == {"restart": 1}
    assert state["counts"]["refused_during_restart"] >= 1
    assert state["counts"]["ws_connections_public"] == 2
    assert state["books"]["fills_count"] == 1
