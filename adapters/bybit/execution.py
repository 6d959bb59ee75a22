"""`QABybitExecutionClient`: Nautilus' Bybit execution client whose order requests outlive a trade-socket
reconnection.

Written here because in 1.231 an order, amend or cancel sent while the trade websocket is reconnecting
waits 5 s for authentication (Rust `AUTH_WAIT_TIMEOUT`) and then fails with "Must be authenticated" (or
"WebSocket not connected"). The Python client treats that as "not a confirmed venue rejection": the order
stays SUBMITTED, "awaiting reconciliation", and no request ever reached the venue. After repeated drops
the reconnect back-off exceeds 5 s, and strategy orders were lost that way on the loopback venue.

Both errors mean the request was never sent, so retrying it cannot duplicate an order. `PatientTradeSocket`
wraps the trade websocket client and retries exactly those errors, with a short back-off, until the socket
is back or `patience_secs` have passed; any other error (a venue rejection, a timeout after sending)
propagates unchanged. A `ConnectionWatch` reports the private and trade sockets' drops and reconnections on
the bus. Everything else is Nautilus' own client.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nautilus_trader.adapters.bybit.execution import BybitExecutionClient

from adapters.bybit.connection import ConnectionWatch

# Rust BybitWsError texts for requests that were never sent (crates/adapters/bybit/src/websocket)
UNSENT_ERRORS = ("Must be authenticated", "WebSocket not connected")
ORDER_METHODS = frozenset(
    {
        "submit_order",
        "batch_place_orders",
        "modify_order",
        "batch_modify_orders",
        "cancel_order",
        "batch_cancel_orders",
    }
)
DEFAULT_PATIENCE_SECS = 20.0  # below Nautilus' in-flight resolution (5 s threshold + 5 queries)


def is_unsent(error: BaseException) -> bool:
    text = str(error)
    return any(marker in text for marker in UNSENT_ERRORS)


class PatientTradeSocket:
    """Delegates to a pyo3 `BybitWebSocketClient`; its order methods retry unsent requests."""

    def __init__(self, inner: Any, patience_secs: float = DEFAULT_PATIENCE_SECS, log: Any = None) -> None:
        self._inner = inner
        self._patience_secs = patience_secs
        self._log = log
        self.retries = 0  # requests sent again after an unsent error (for logs and tests)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in ORDER_METHODS:
            return attribute

        async def patient(*args: Any, **kwargs: Any) -> Any:
            deadline = time.monotonic() + self._patience_secs
            delay = 0.1
            while True:
                try:
                    return await attribute(*args, **kwargs)
                except Exception as error:
                    if not is_unsent(error) or time.monotonic() + delay > deadline:
                        raise
                    self.retries += 1
                    if self._log is not None:
                        self._log.warning(f"{name}: trade socket not ready ({error}); retry in {delay:.1f}s")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)

        return patient


class QABybitExecutionClient(BybitExecutionClient):
    def __init__(self, *, patience_secs: float = DEFAULT_PATIENCE_SECS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ws_trade_client = PatientTradeSocket(self._ws_trade_client, patience_secs, self._log)
        self._connection_watch = ConnectionWatch(
            self,
            f"{self.id}-exec",
            lambda: {"private": self._ws_private_client, "trade": self._ws_trade_client},
        )

    async def _connect(self) -> None:
        await super()._connect()
        self._connection_watch.start()

    async def _disconnect(self) -> None:
        self._connection_watch.stop()
        await super()._disconnect()
