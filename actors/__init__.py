"""Actor plug-ins: one file per actor. REGISTRY maps run-config names to `module:Class`."""

REGISTRY: dict[str, str] = {
    "features": "actors.feature_actor:FeatureActor",
    "oracle": "actors.oracle_actor:OracleActor",
    "guardian": "actors.guardian_actor:GuardianActor",
    "volatility_regime": "actors.volatility_regime:VolatilityRegimeActor",  # the naive regime (Regime)
    "risk_guard": "actors.risk_guard:RiskGuardActor",
    "operations": "actors.operations:OperationsActor",  # added to every live node (qa_engine/live/node.py)
}
