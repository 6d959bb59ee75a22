"""The FeatureActor inside a real backtest publishes the same values the batch library computes."""

import numpy as np
import polars as pl

from actors.feature_actor import FeatureActor
from qa_engine.backtest.runner import run_backtest
from qa_engine.config.models import BacktestConfig
from qa_engine.features.batch import compute_features_batch
from qa_engine.features.io import load_catalog_bars
from qa_engine.features.sets import default_feature_set

INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"
BAR_TYPE = f"{INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL"
FIVE_MINUTES_NS = 300_000_000_000


def test_streamed_feature_vectors_equal_batch_features(sample_catalog, tmp_path):
    config = BacktestConfig.model_validate(
        {
            "id": "feature-actor",
            "venues": [{"name": "BYBIT"}],
            "data": {
                "catalog": str(sample_catalog),
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "5m"}],
                "start": "2025-01-01T00:00:00Z",
                "end": "2025-01-04T00:00:00Z",
            },
            "strategies": [
                {"name": "ema_cross", "params": {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE}},
            ],
            "actors": [
                {
                    "name": "features",
                    "params": {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE, "keep_history": True},
                },
            ],
        },
    )
    captured = {}

    def inspect(engine):
        actor = next(a for a in engine.trader.actors() if isinstance(a, FeatureActor))
        captured["history"] = actor.history

    run_backtest(config, run_dir=tmp_path, inspect=inspect)
    history = captured["history"]
    assert len(history) == 3 * 288
    feature_set = default_feature_set()
    assert {vector.feature_set_hash for vector in history} == {feature_set.hash}

    bars, _ = load_catalog_bars(sample_catalog, INSTRUMENT_ID, "5m", end_ns=history[-1].ts_event)
    batch = compute_features_batch(bars, feature_set, FIVE_MINUTES_NS)
    batch = batch.filter(pl.col("ts").dt.epoch("ns").is_in([v.ts_event for v in history]))
    streamed = np.vstack([vector.values for vector in history])
    expected = batch.select(feature_set.names).to_numpy()
    warm = np.array([vector.warm for vector in history])
    assert warm.sum() == 3 * 288 - (feature_set.warmup_bars - 1)  # warm from the warm-up'th bar on
    assert np.allclose(streamed[warm], expected[warm], rtol=0, atol=1e-9)


def _config(sample_catalog, actor_params: dict) -> BacktestConfig:
    return BacktestConfig.model_validate(
        {
            "id": "feature-actor-artifact",
            "venues": [{"name": "BYBIT"}],
            "data": {
                "catalog": str(sample_catalog),
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "5m"}],
                "start": "2025-01-01T00:00:00Z",
                "end": "2025-01-01T06:00:00Z",
            },
            "strategies": [
                {"name": "ema_cross", "params": {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE}},
            ],
            "actors": [
                {
                    "name": "features",
                    "params": {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE, **actor_params},
                },
            ],
        },
    )


def test_feature_actor_computes_an_artifacts_fitted_feature_set(sample_catalog, repo_root, tmp_path):
    from qa_engine.inference.artifact import load_artifact

    folder = repo_root / "artifacts" / "oracle"
    captured = {}

    def inspect(engine):
        captured["history"] = next(a for a in engine.trader.actors() if isinstance(a, FeatureActor)).history

    config = _config(sample_catalog, {"artifact": str(folder), "keep_history": True})
    run_backtest(config, run_dir=tmp_path, inspect=inspect)
    expected_hash = load_artifact(folder).manifest.feature_set.hash
    assert expected_hash != default_feature_set().hash  # fitted (FFD order) != registered
    assert {vector.feature_set_hash for vector in captured["history"]} == {expected_hash}


def test_feature_actor_refuses_a_broken_artifact_with_a_config_error(sample_catalog, tmp_path):
    import pytest

    from qa_engine.errors import ConfigError

    config = _config(sample_catalog, {"artifact": str(tmp_path / "no-such-model")})
    with pytest.raises(ConfigError, match="no-such-model"):
        run_backtest(config, run_dir=tmp_path / "run")
