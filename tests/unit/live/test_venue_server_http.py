"""Nautilus' own pyo3 Bybit HTTP client against the loopback venue over plain http://127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest
from nautilus_trader.core import nautilus_pyo3 as pyo3

from tests.unit.live.venue_harness import API_KEY
from tests.unit.live.venue_harness import API_SECRET
from tests.unit.live.venue_harness import INSTRUMENT_ID
from tests.unit.live.venue_harness import venue_thread

LINEAR = pyo3.BybitProductType.LINEAR
ACCOUNT = pyo3.AccountId("BYBIT-001")


def http_client(url: str, secret: str = API_SECRET) -> pyo3.BybitHttpClient:
    return pyo3.BybitHttpClient(
        api_key=API_KEY, api_secret=secret, base_url=url, max_retries=0, timeout_secs=5
    )


async def _instruments(client: pyo3.BybitHttpClient) -> dict[str, object]:
    instruments = await client.request_instruments(LINEAR)
    for instrument in instruments:
        client.cache_instrument(instrument)
    return {str(instrument.id): instrument for instrument in instruments}


@pytest.mark.timeout(60)
def test_venue_server_http_instruments_wallet_fees_positions() -> None:
    with venue_thread() as venue:

        async def scenario() -> None:
            client = http_client(venue.http_url)
            instruments = await _instruments(client)
            assert set(instruments) == {INSTRUMENT_ID}
            assert str(instruments[INSTRUMENT_ID].price_increment) == "0.10"
            state = await client.request_account_state(pyo3.BybitAccountType.UNIFIED, ACCOUNT)
            assert [str(balance.total) for balance in state.balances] == ["10000.00000000 USDT"]
            fees = await client.request_fee_rates(LINEAR, "BTCUSDT")
            assert [(fee.symbol, str(fee.taker_fee_rate)) for fee in fees] == [("BTCUSDT", "0.00055")]
            positions = await client.request_position_status_reports(ACCOUNT, LINEAR)
            assert {(str(p.instrument_id), str(p.position_side)) for p in positions} == {
                (INSTRUMENT_ID, "FLAT")
            }
            details = await client.get_account_details()
            assert details is not None

        asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_venue_server_http_limit_order_placed_then_cancelled() -> None:
    with venue_thread() as venue:
        venue.begin()
        assert venue.done.wait(10)

        async def scenario() -> None:
            client = http_client(venue.http_url)
            instrument_id = pyo3.InstrumentId.from_str(INSTRUMENT_ID)
            await _instruments(client)
            report = await client.submit_order(
                ACCOUNT,
                LINEAR,
                instrument_id,
                pyo3.ClientOrderId("O-1"),
                pyo3.OrderSide.BUY,
                pyo3.OrderType.LIMIT,
                pyo3.Quantity.from_str("0.010"),
                time_in_force=pyo3.TimeInForce.GTC,
                price=pyo3.Price.from_str("90000.00"),
            )
            assert str(report.client_order_id) == "O-1"
            open_orders = await client.request_order_status_reports(
                ACCOUNT, LINEAR, instrument_id, open_only=True
            )
            assert [str(order.client_order_id) for order in open_orders] == ["O-1"]
            await client.cancel_order(
                ACCOUNT, LINEAR, instrument_id, client_order_id=pyo3.ClientOrderId("O-1")
            )
            open_orders = await client.request_order_status_reports(
                ACCOUNT, LINEAR, instrument_id, open_only=True
            )
            assert open_orders == []

        asyncio.run(scenario())
        assert venue.state()["counts"]["orders_placed"] == 1


@pytest.mark.timeout(60)
def test_venue_server_http_wrong_secret_is_error_sign() -> None:
    with venue_thread() as venue:

        async def scenario() -> None:
            client = http_client(venue.http_url, secret="not-the-secret")
            with pytest.raises(Exception, match="10004|error sign"):
                await client.request_account_state(pyo3.BybitAccountType.UNIFIED, ACCOUNT)

        asyncio.run(scenario())
        assert venue.state()["counts"]["auth_failures"] == 1


@pytest.mark.timeout(60)
def test_venue_server_http_injected_rate_limit_and_insufficient_balance() -> None:
    with venue_thread() as venue:
        venue.begin()
        assert venue.done.wait(10)

        async def scenario() -> None:
            client = http_client(venue.http_url)
            await _instruments(client)  # with credentials it also reads fee rates: arm the faults after it
            venue.inject(rate_limit=1, insufficient_balance=1)
            with pytest.raises(Exception, match="10006|Too many visits"):
                await client.request_account_state(pyo3.BybitAccountType.UNIFIED, ACCOUNT)
            with pytest.raises(Exception, match="110007"):
                await client.submit_order(
                    ACCOUNT,
                    LINEAR,
                    pyo3.InstrumentId.from_str(INSTRUMENT_ID),
                    pyo3.ClientOrderId("O-2"),
                    pyo3.OrderSide.BUY,
                    pyo3.OrderType.MARKET,
                    pyo3.Quantity.from_str("0.010"),
                )

        asyncio.run(scenario())
        assert venue.state()["faults"] == {"rate_limit": 1, "insufficient_balance": 1}
