"""Live client configs for Bybit: Nautilus' own, plus the one URL 1.231 does not let a config set.

NautilusTrader 1.231's `BybitDataClient` builds its public websockets with `url=config.base_url_http`
(nautilus_trader/adapters/bybit/data.py): any HTTP override then breaks the public stream ("invalid URL:
expected ws:// or wss:// scheme, was http"), and there is no field for the public websocket at all.
`QABybitDataClientConfig` adds `base_url_ws_public`; `adapters.bybit.data.QABybitDataClient` uses it
(None: the environment's own public URL, never the HTTP one). The execution config already has fields
for every URL (`base_url_http`, `base_url_ws_private`, `base_url_ws_trade`) and is used as it is.
"""

from __future__ import annotations

from nautilus_trader.adapters.bybit.config import BybitDataClientConfig
from nautilus_trader.adapters.bybit.config import BybitExecClientConfig

__all__ = ["BybitExecClientConfig", "QABybitDataClientConfig"]


class QABybitDataClientConfig(BybitDataClientConfig, frozen=True):
    """`BybitDataClientConfig` with the public websocket URL (e.g. ws://127.0.0.1:8765/v5/public/linear)."""

    base_url_ws_public: str | None = None
