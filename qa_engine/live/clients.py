"""The contract between the live node builder (qa_engine.live.node) and the venue adapters (adapters/).

qa_engine never imports adapters/: it asks `qa_engine.plugins.load_live_clients(venue)` for the adapter's
`live_clients(spec) -> LiveClients` function (adapters.LIVE_CLIENTS) and hands it a `LiveClientSpec`.
Secrets travel as `SecretStr` and are unwrapped only inside the adapter, into Nautilus' client config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from pydantic import SecretStr

from qa_engine.errors import ConfigError

# Environment variables holding API keys, per environment (Nautilus' own names).
KEY_VARIABLES: dict[str, tuple[str, str]] = {
    "mainnet": ("BYBIT_API_KEY", "BYBIT_API_SECRET"),
    "demo": ("BYBIT_DEMO_API_KEY", "BYBIT_DEMO_API_SECRET"),
    "testnet": ("BYBIT_TESTNET_API_KEY", "BYBIT_TESTNET_API_SECRET"),
}


@dataclass(frozen=True)
class Credentials:
    api_key: SecretStr
    api_secret: SecretStr

    def __repr__(self) -> str:  # never the secret, not even in a traceback's locals
        return "Credentials(api_key=**********, api_secret=**********)"


def credentials_from_environment(environment: str, *, required: bool) -> Credentials | None:
    """The API key pair of `environment` from the process environment; None when absent and not required."""
    key_name, secret_name = KEY_VARIABLES[environment]
    key, secret = os.environ.get(key_name, ""), os.environ.get(secret_name, "")
    if key and secret:
        return Credentials(SecretStr(key), SecretStr(secret))
    if required:
        missing = " and ".join(name for name, value in ((key_name, key), (secret_name, secret)) if not value)
        raise ConfigError(
            f"Bybit {environment} execution needs API keys: set {missing} in the environment "
            "(keys are read from the environment only, never from a config file)"
        )
    return None


@dataclass(frozen=True)
class LiveClientSpec:
    """What a venue adapter needs to build its Nautilus live clients."""

    environment: str  # testnet | demo | mainnet (Binance: testnet or mainnet)
    instrument_ids: tuple[str, ...]  # the instruments the node trades or streams at this venue
    endpoints: dict[str, str | None] = field(default_factory=dict)  # http, ws_public, ws_private, ws_trade
    credentials: Credentials | None = None
    leverages: dict[str, int] = field(default_factory=dict)  # venue symbol -> leverage (execution only)
    want_data: bool = True
    want_execution: bool = True
    reconciliation: bool = True


@dataclass(frozen=True)
class LiveClients:
    """Nautilus client configs and factories, keyed in the node by `name` (the venue's client id)."""

    name: str
    data_config: Any | None = None
    data_factory: type | None = None
    exec_config: Any | None = None
    exec_factory: type | None = None


# --- connection events ---------------------------------------------------------------------------------

# Live clients publish a `ConnectionEvent` on this bus topic when one of their websockets goes down and when
# it is back (adapters/bybit/connection.py): alerts and the reconnect metrics read them.
CONNECTION_TOPIC = "qa.connection"


@dataclass(frozen=True)
class ConnectionEvent:
    client: str  # e.g. "BYBIT-data", "BYBIT-exec"
    stream: str  # e.g. "public-LINEAR", "private", "trade"
    state: str  # "down" or "up"
    ts_ns: int  # node clock
    down_secs: float | None = None  # state "up": how long it was down
