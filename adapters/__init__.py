"""Application adapters: venue instrument definitions, historical downloaders, live clients.

INSTRUMENT_PROVIDERS maps a market name to `module:function`; the function takes a venue symbol
(e.g. "BTCUSDT") and returns the venue's Nautilus instrument. qa_engine.plugins.load_instrument reads it.
"""

INSTRUMENT_PROVIDERS: dict[str, str] = {
    "bybit-linear": "adapters.bybit.providers:bybit_linear_instrument",
    "binance-futures": "adapters.binance.providers:binance_futures_instrument",
    "binance-spot": "adapters.binance.providers:binance_spot_instrument",
}

# Historical downloaders: market -> `module:function(base_url=None, timeout_secs=...)` returning an object
# with the qa_engine.data.download.HistoricalVenue methods. qa_engine.plugins.load_historical_venue reads it.
DOWNLOADERS: dict[str, str] = {
    "bybit-linear": "adapters.bybit.historical:bybit_linear_venue",
    "binance-futures": "adapters.binance.historical:binance_futures_venue",
    "binance-spot": "adapters.binance.historical:binance_spot_venue",
}

# Live trading: source -> `module:function(LiveClientSpec) -> LiveClients` (qa_engine.live.clients), read by
# qa_engine.plugins.load_live_clients.
LIVE_CLIENTS: dict[str, str] = {
    "bybit": "adapters.bybit.factories:live_clients",
    "binance": "adapters.binance.factories:live_clients",
}
