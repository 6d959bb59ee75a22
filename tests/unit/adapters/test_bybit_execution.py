"""PatientTradeSocket: order requests that never left (trade socket reconnecting) are sent again once it is
back; anything else (a venue rejection, an error after sending) is not retried. The end-to-end case (an
order placed while the venue keeps dropping the trade socket) is in tests/integration/test_live_node.py."""

from __future__ import annotations

import asyncio

import pytest

from adapters.bybit.execution import PatientTradeSocket
from adapters.bybit.factories import QABybitLiveExecClientFactory
from adapters.bybit.factories import live_clients


class FakeTradeSocket:
    """Fails its first `failures` calls of submit_order with `error`, then returns "sent"."""

    def __init__(self, failures: int, error: str) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def submit_order(self, **kwargs) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(self.error)
        return "sent"

    def is_closed(self) -> bool:
        return False


@pytest.mark.parametrize("error", ["Authentication error: Must be authenticated", "WebSocket not connected"])
def test_unsent_requests_are_sent_again_once_the_socket_is_back(error: str) -> None:
    inner = FakeTradeSocket(failures=3, error=error)
    socket = PatientTradeSocket(inner, patience_secs=5.0)
    assert asyncio.run(socket.submit_order(client_order_id="O-1")) == "sent"
    assert inner.calls == 4 and socket.retries == 3


def test_a_venue_rejection_is_not_retried() -> None:
    inner = FakeTradeSocket(failures=1, error="retCode=110007: ab not enough for new order")
    socket = PatientTradeSocket(inner, patience_secs=5.0)
    with pytest.raises(RuntimeError, match="110007"):
        asyncio.run(socket.submit_order())
    assert inner.calls == 1


def test_patience_runs_out_and_the_last_error_propagates() -> None:
    inner = FakeTradeSocket(failures=1000, error="Must be authenticated")
    socket = PatientTradeSocket(inner, patience_secs=0.5)
    with pytest.raises(RuntimeError, match="Must be authenticated"):
        asyncio.run(socket.submit_order())
    assert 2 <= inner.calls <= 6  # 0.1 + 0.2 (+ 0.4 would pass the deadline)


def test_other_attributes_are_the_inner_client_s() -> None:
    inner = FakeTradeSocket(failures=0, error="")
    assert PatientTradeSocket(inner).is_closed is not None
    assert PatientTradeSocket(inner).is_closed() is False


def test_live_clients_build_the_patient_execution_client() -> None:
    from qa_engine.live.clients import LiveClientSpec

    spec = LiveClientSpec(
        environment="testnet",
        instrument_ids=("BTCUSDT-LINEAR.BYBIT",),
        want_data=False,
        want_execution=True,
    )
    assert live_clients(spec).exec_factory is QABybitLiveExecClientFactory
