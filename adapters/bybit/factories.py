"""Bybit live client factories: every URL where the config says, keys from the caller, linear only.

`live_clients(spec)` is this adapter's side of qa_engine.live.clients: it turns a `LiveClientSpec` into
Nautilus `BybitDataClientConfig` / `BybitExecClientConfig` and the factories that build them. The data
factory builds `QABybitDataClient` (public websocket URL fixed, see adapters/bybit/config.py), the
execution factory `QABybitExecutionClient` (order requests survive a trade-socket reconnection, see
adapters/bybit/execution.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nautilus_trader.adapters.bybit.factories import get_cached_bybit_http_client
from nautilus_trader.adapters.bybit.factories import get_cached_bybit_instrument_provider
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock
from nautilus_trader.common.component import MessageBus
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.core import nautilus_pyo3
from nautilus_trader.core.nautilus_pyo3 import BybitEnvironment
from nautilus_trader.core.nautilus_pyo3 import BybitProductType
from nautilus_trader.live.factories import LiveDataClientFactory
from nautilus_trader.live.factories import LiveExecClientFactory

from adapters.bybit.config import BybitExecClientConfig
from adapters.bybit.config import QABybitDataClientConfig
from adapters.bybit.data import QABybitDataClient
from adapters.bybit.execution import QABybitExecutionClient
from qa_engine.live.clients import LiveClients
from qa_engine.live.clients import LiveClientSpec

ENVIRONMENTS = {
    "mainnet": BybitEnvironment.MAINNET,
    "demo": BybitEnvironment.DEMO,
    "testnet": BybitEnvironment.TESTNET,
}
PRODUCT_TYPES = (BybitProductType.LINEAR,)  # USDT perpetuals: what the project trades


def default_endpoints(environment: str) -> dict[str, str]:
    """The environment's own URLs (Nautilus' table), for the start-up banner."""
    env = ENVIRONMENTS[environment]
    return {
        "http": nautilus_pyo3.get_bybit_http_base_url(env),
        "ws_public": nautilus_pyo3.get_bybit_ws_url_public(BybitProductType.LINEAR, env),
        "ws_private": nautilus_pyo3.get_bybit_ws_url_private(env),
        "ws_trade": nautilus_pyo3.get_bybit_ws_url_trade(env),
    }


def _http_client_and_provider(config: QABybitDataClientConfig | BybitExecClientConfig):
    """What Nautilus' Bybit factories build before their client: the cached HTTP client at the config's
    URL, and the cached instrument provider over it."""
    client = get_cached_bybit_http_client(
        environment=config.environment or BybitEnvironment.MAINNET,
        api_key=config.api_key,
        api_secret=config.api_secret,
        base_url=config.base_url_http,
        timeout_secs=None,
        max_retries=config.max_retries,
        retry_delay_ms=config.retry_delay_initial_ms,
        retry_delay_max_ms=config.retry_delay_max_ms,
        recv_window_ms=config.recv_window_ms,
        proxy_url=config.proxy_url,
    )
    provider = get_cached_bybit_instrument_provider(
        client=client,
        product_types=tuple(config.product_types or PRODUCT_TYPES),
        config=config.instrument_provider,
    )
    return client, provider


def _build_client[ClientT](
    client_class: Callable[..., ClientT],
    loop: asyncio.AbstractEventLoop,
    name: str,
    config: QABybitDataClientConfig | BybitExecClientConfig,
    msgbus: MessageBus,
    cache: Cache,
    clock: LiveClock,
) -> ClientT:
    """The body both factories' `create` share: the client of `client_class` over the cached HTTP client
    and instrument provider (the data and execution clients take the same arguments)."""
    client, provider = _http_client_and_provider(config)
    return client_class(
        loop=loop,
        client=client,
        msgbus=msgbus,
        cache=cache,
        clock=clock,
        instrument_provider=provider,
        config=config,
        name=name,
    )


class QABybitLiveDataClientFactory(LiveDataClientFactory):
    """Nautilus' BybitLiveDataClientFactory.create, building QABybitDataClient instead."""

    @staticmethod
    def create(  # type: ignore[override]
        loop: asyncio.AbstractEventLoop,
        name: str,
        config: QABybitDataClientConfig,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
    ) -> QABybitDataClient:
        return _build_client(QABybitDataClient, loop, name, config, msgbus, cache, clock)


class QABybitLiveExecClientFactory(LiveExecClientFactory):
    """Nautilus' BybitLiveExecClientFactory.create, building QABybitExecutionClient instead (order
    requests retried across a trade-socket reconnection, see adapters/bybit/execution.py)."""

    @staticmethod
    def create(  # type: ignore[override]
        loop: asyncio.AbstractEventLoop,
        name: str,
        config: BybitExecClientConfig,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
    ) -> QABybitExecutionClient:
        return _build_client(QABybitExecutionClient, loop, name, config, msgbus, cache, clock)


def live_clients(spec: LiveClientSpec) -> LiveClients:
    environment = ENVIRONMENTS[spec.environment]
    endpoints = spec.endpoints
    key = spec.credentials.api_key.get_secret_value() if spec.credentials else None
    secret = spec.credentials.api_secret.get_secret_value() if spec.credentials else None
    provider = InstrumentProviderConfig(load_ids=frozenset(spec.instrument_ids))
    data_config = exec_config = None
    if spec.want_data:
        data_config = QABybitDataClientConfig(
            api_key=key,
            api_secret=secret,
            product_types=PRODUCT_TYPES,
            environment=environment,
            base_url_http=endpoints.get("http"),
            base_url_ws_public=endpoints.get("ws_public"),
            instrument_provider=provider,
            instrument_status_poll_secs=None,  # trading halts arrive as order rejections; no extra polling
        )
    if spec.want_execution:
        exec_config = BybitExecClientConfig(
            api_key=key,
            api_secret=secret,
            product_types=PRODUCT_TYPES,
            environment=environment,
            base_url_http=endpoints.get("http"),
            base_url_ws_private=endpoints.get("ws_private"),
            base_url_ws_trade=endpoints.get("ws_trade"),
            instrument_provider=provider,
            futures_leverages=dict(spec.leverages) or None,
        )
    return LiveClients(
        name="BYBIT",
        data_config=data_config,
        data_factory=QABybitLiveDataClientFactory if spec.want_data else None,
        exec_config=exec_config,
        exec_factory=QABybitLiveExecClientFactory if spec.want_execution else None,
    )
