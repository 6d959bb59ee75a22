"""Application adapters: venue instrument definitions, historical downloaders (later: live clients).

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
