"""`QABybitDataClient`: Nautilus' Bybit data client with its public websockets where the config says, and
a `ConnectionWatch` that reports their drops and reconnections on the bus.

Written here because 1.231 passes `config.base_url_http` as the public websocket URL (see
adapters/bybit/config.py); everything else is Nautilus' own client, unchanged.
"""

from __future__ import annotations

from nautilus_trader.adapters.bybit.data import BybitDataClient
from nautilus_trader.core import nautilus_pyo3

from adapters.bybit.config import QABybitDataClientConfig
from adapters.bybit.connection import ConnectionWatch


class QABybitDataClient(BybitDataClient):
    def __init__(self, *, config: QABybitDataClientConfig, **kwargs) -> None:
        super().__init__(config=config, **kwargs)
        environment = config.environment or nautilus_pyo3.BybitEnvironment.MAINNET
        # Rebuild the public websocket clients the parent made (nothing is connected yet).
        for product_type in list(self._ws_clients):
            ws_client = nautilus_pyo3.BybitWebSocketClient.new_public(
                product_type=product_type,
                environment=environment,
                url=config.base_url_ws_public,
                proxy_url=config.proxy_url,
            )
            ws_client.set_bars_timestamp_on_close(self._bars_timestamp_on_close)
            self._ws_clients[product_type] = ws_client
        self._connection_watch = ConnectionWatch(
            self,
            f"{self.id}-data",
            lambda: {f"public-{product_type}": ws for product_type, ws in self._ws_clients.items()},
        )

    async def _connect(self) -> None:
        await super()._connect()
        self._connection_watch.start()

    async def _disconnect(self) -> None:
        self._connection_watch.stop()
        await super()._disconnect()
