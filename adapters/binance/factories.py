"""Binance USD-M futures as a live market-data source (execution stays on Bybit).

`live_clients(spec)` is this adapter's side of qa_engine.live.clients: Nautilus' own Binance data client
and factory, USDT_FUTURES account type, every URL overridable. Market data needs no API key; one is
passed through when the environment has it (Nautilus reads none itself here).
"""

from __future__ import annotations

from nautilus_trader.adapters.binance.common.enums import BinanceAccountType
from nautilus_trader.adapters.binance.common.enums import BinanceEnvironment
from nautilus_trader.adapters.binance.config import BinanceDataClientConfig
from nautilus_trader.adapters.binance.factories import BinanceLiveDataClientFactory
from nautilus_trader.config import InstrumentProviderConfig

from qa_engine.errors import ConfigError
from qa_engine.live.clients import LiveClients
from qa_engine.live.clients import LiveClientSpec

ENVIRONMENTS = {"mainnet": BinanceEnvironment.LIVE, "testnet": BinanceEnvironment.TESTNET}


def live_clients(spec: LiveClientSpec) -> LiveClients:
    if spec.want_execution:
        raise ConfigError("Binance is a market-data source here; execution is on Bybit")
    # Bybit's demo environment streams mainnet market data; Binance's closest match is its live feed.
    environment = ENVIRONMENTS.get(spec.environment, BinanceEnvironment.LIVE)
    data_config = BinanceDataClientConfig(
        api_key=spec.credentials.api_key.get_secret_value() if spec.credentials else None,
        api_secret=spec.credentials.api_secret.get_secret_value() if spec.credentials else None,
        account_type=BinanceAccountType.USDT_FUTURES,
        environment=environment,
        base_url_http=spec.endpoints.get("http"),
        base_url_ws=spec.endpoints.get("ws"),
        instrument_provider=InstrumentProviderConfig(load_ids=frozenset(spec.instrument_ids)),
    )
    return LiveClients(name="BINANCE", data_config=data_config, data_factory=BinanceLiveDataClientFactory)
