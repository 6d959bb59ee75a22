"""The one composition point between the library and the application packages.

qa_engine never imports strategies/, actors/ or adapters/ statically (dependencies point down). It
finds them here, by explicit registries those packages declare, or by a `package.module:Name` path
given in a run config. No filesystem scanning, no sys.path surgery.
"""

from __future__ import annotations

import importlib
from typing import Any

from qa_engine.errors import ConfigError
from qa_engine.errors import PluginError

STRATEGY_REGISTRY_MODULE = "strategies"  # declares REGISTRY: dict[name, "module:StrategyClass"]
ACTOR_REGISTRY_MODULE = "actors"  # declares REGISTRY: dict[name, "module:ActorClass"]
INSTRUMENT_PROVIDERS_MODULE = "adapters"  # declares INSTRUMENT_PROVIDERS: dict[market, "module:function"]
DOWNLOADERS_MODULE = "adapters"  # declares DOWNLOADERS: dict[market, "module:function"]


def import_object(path: str) -> Any:
    """Import `package.module:Name`; a bad path is a config error naming the path."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"'{path}' is not an import path of the form 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module '{module_name}' (from '{path}'): {exc}") from exc
    except Exception as exc:  # user code raising at import time
        raise PluginError(f"plug-in module '{module_name}' raised on import: {exc!r}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError as exc:
        raise ConfigError(f"module '{module_name}' has no attribute '{attribute}'") from exc


def _registry(module_name: str, attribute: str) -> dict[str, str]:
    return dict(getattr(importlib.import_module(module_name), attribute))


def strategy_registry() -> dict[str, str]:
    return _registry(STRATEGY_REGISTRY_MODULE, "REGISTRY")


def actor_registry() -> dict[str, str]:
    return _registry(ACTOR_REGISTRY_MODULE, "REGISTRY")


def resolve_component_path(name_or_path: str, kind: str) -> str:
    """Registry name or `module:Class` -> `module:Class`; an unknown name lists the valid ones."""
    if ":" in name_or_path:
        return name_or_path
    registry = strategy_registry() if kind == "strategy" else actor_registry()
    if name_or_path not in registry:
        valid = ", ".join(sorted(registry)) or "(none)"
        kinds = "strategies" if kind == "strategy" else f"{kind}s"
        raise ConfigError(
            f"unknown {kind} '{name_or_path}'; registered {kinds}: {valid}; "
            f"or give a 'package.module:Class' path",
        )
    return registry[name_or_path]


def load_instrument(market: str, symbol: str) -> Any:
    """The venue's real instrument definition (a Nautilus Instrument) for `symbol` on `market`."""
    providers = _registry(INSTRUMENT_PROVIDERS_MODULE, "INSTRUMENT_PROVIDERS")
    if market not in providers:
        raise ConfigError(f"unknown market '{market}'; known: {', '.join(sorted(providers))}")
    return import_object(providers[market])(symbol)


def load_historical_venue(market: str, base_url: str | None = None, timeout_secs: float = 10.0) -> Any:
    """The market's historical downloader (a qa_engine.data.download.HistoricalVenue), pointed at
    `base_url` when given (regional endpoints, proxies, test servers)."""
    downloaders = _registry(DOWNLOADERS_MODULE, "DOWNLOADERS")
    if market not in downloaders:
        raise ConfigError(f"no downloader for market '{market}'; known: {', '.join(sorted(downloaders))}")
    return import_object(downloaders[market])(base_url=base_url, timeout_secs=timeout_secs)


LIVE_CLIENTS_MODULE = "adapters"  # declares LIVE_CLIENTS: dict[source, "module:function"]


def load_live_clients(source: str) -> Any:
    """The adapter's `live_clients(LiveClientSpec) -> LiveClients` for `source` (bybit, binance)."""
    factories = _registry(LIVE_CLIENTS_MODULE, "LIVE_CLIENTS")
    if source not in factories:
        raise ConfigError(f"no live clients for '{source}'; known: {', '.join(sorted(factories))}")
    return import_object(factories[source])
