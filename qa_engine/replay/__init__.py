"""Replay mode: signal records computed in batch over the catalog, replayed in backtests.

`build.build_signals` computes, with the same ONNX artifacts and the same window, gap and warm-up
rules as the streaming actors, the Forecast, Regime and FeatureVector records a streamed run would
publish, and `store` keeps them in the catalog; a run config lists them under `[[data.signals]]`
and the data engine delivers them to the subscribers of DataType(cls, metadata={"instrument_id":
...}) exactly like the actors' messages (`qa_engine.config.build`).
"""
