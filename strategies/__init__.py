"""Strategy plug-ins: one file per strategy (<Name>StrategyConfig + <Name>Strategy).

REGISTRY maps the name used in run configs to `module:Class`; qa_engine.plugins reads it.
A user strategy needs no entry here: reference it as `package.module:Class` in the run config.
The interface to implement is documented in strategies/base.py.
"""

REGISTRY: dict[str, str] = {
    "ema_cross": "strategies.ema_cross:EMACrossStrategy",
    "supertrend": "strategies.supertrend:SuperTrendStrategy",
    "rsi_ema": "strategies.rsi_ema:RSIEMAStrategy",
    "macd_stochastic": "strategies.macd_stochastic:MACDStochasticStrategy",
    "trinity": "strategies.trinity:TrinityStrategy",
    "ml_signal": "strategies.ml_signal:MLSignalStrategy",
    "buy_and_hold": "strategies.buy_and_hold:BuyAndHoldStrategy",
}
