"""Strategy plug-ins: one file per strategy (<Name>StrategyConfig + <Name>Strategy).

REGISTRY maps the name used in run configs to `module:Class`; qa_engine.plugins reads it.
A user strategy needs no entry here: reference it as `package.module:Class` in the run config.
"""

REGISTRY: dict[str, str] = {
    "ema_cross": "strategies.ema_cross:EMACrossStrategy",
}
