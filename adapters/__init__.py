"""Application adapters: venue instrument definitions (and later live client factories, downloaders).

INSTRUMENT_PROVIDERS maps a market name to `module:function`; the function takes a venue symbol
(e.g. "BTCUSDT") and returns the venue's Nautilus instrument. qa_engine.plugins.load_instrument reads it.
"""

INSTRUMENT_PROVIDERS: dict[str, str] = {
    "bybit-linear": "adapters.bybit.providers:bybit_linear_instrument",
    "binance-futures": "adapters.binance.providers:binance_futures_instrument",
    "binance-spot": "adapters.binance.providers:binance_spot_instrument",
}
