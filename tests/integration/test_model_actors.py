"""OracleActor and GuardianActor inside real backtests on the sample catalog (real Bybit BTCUSDT 5m bars).

One 3-day backtest runs two FeatureActors side by side (the Oracle's fitted set and the Guardian's)
with both model actors: each model takes only its own vectors, and every Forecast / Regime equals
what onnxruntime gives on the batch-computed features (qa_engine.features) of the same bars. A second
GuardianActor in it takes its features from the Oracle's vectors (`features_from`): the same values
and the same Regimes as the Guardian fed by its own FeatureActor. Short
backtests then show the refusals: an altered manifest, a missing FeatureActor.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from actors.feature_actor import FeatureActor
from actors.guardian_actor import GuardianActor
from actors.oracle_actor import OracleActor
from qa_engine.backtest.runner import run_backtest
from qa_engine.config.models import BacktestConfig
from qa_engine.errors import ConfigError
from qa_engine.inference.artifact import load_artifact
from qa_engine.inference.guardian import GuardianOnline
from qa_engine.inference.runner import OnnxRunner
from tests.pristine import pristine_catalog
from tests.unit.actors.harness import BAR_TYPE
from tests.unit.actors.harness import INSTRUMENT_ID
from tests.unit.actors.harness import REPO_ROOT
from tests.unit.actors.harness import batch_features
from tests.unit.actors.harness import tiny_guardian_artifact

ORACLE = REPO_ROOT / "artifacts" / "oracle"
START, END = "2025-01-01T00:00:00Z", "2025-01-04T00:00:00Z"
BARS = 3 * 288  # 5m bars closing in (START, END]


def actor(name: str, **params) -> dict:
    return {"name": name, "params": {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE, **params}}


def backtest_config(catalog: Path, actors: list[dict], end: str = END) -> BacktestConfig:
    return BacktestConfig.model_validate(
        {
            "id": "model-actors",
            "venues": [{"name": "BYBIT"}],
            "data": {
                "catalog": str(catalog),
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "5m"}],
                "start": START,
                "end": end,
            },
            "strategies": [
                {"name": "ema_cross", "params": {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE}},
            ],
            "actors": actors,
        },
    )


@pytest.fixture(scope="module")
def guardian_folder(tmp_path_factory) -> Path:
    return tiny_guardian_artifact(tmp_path_factory)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory, guardian_folder):
    """One backtest: FeatureActor(oracle) + FeatureActor(guardian) + OracleActor + GuardianActor."""
    config = backtest_config(
        pristine_catalog(),
        [
            actor("features", artifact=str(ORACLE), component_id="FeatureActor-oracle", keep_history=True),
            actor(
                "features",
                artifact=str(guardian_folder),
                component_id="FeatureActor-guardian",
                keep_history=True,
            ),
            actor("oracle", artifact=str(ORACLE), keep_history=True),
            actor("guardian", artifact=str(guardian_folder), keep_history=True),
            actor(
                "guardian",
                artifact=str(guardian_folder),
                features_from=str(ORACLE),
                component_id="GuardianActor-shared",
                keep_history=True,
            ),
        ],
    )
    captured = {}

    def inspect(engine):
        for component in engine.trader.actors():
            if isinstance(component, OracleActor | GuardianActor):
                captured[str(component.id)] = component
            elif isinstance(component, FeatureActor):
                captured[str(component.id)] = component.feature_set_hash
                captured[f"{component.id}.history"] = component.history

    run_backtest(config, run_dir=tmp_path_factory.mktemp("model_actors_run"), inspect=inspect)
    return captured


def warm_batch(folder: Path):
    """The artifact, bar close times and raw batch features of its fitted set over the backtest's bars."""
    artifact = load_artifact(folder)
    ts, values = batch_features(artifact.feature_set(), START[:-1], "2025-01-04T00:05:00")
    assert len(ts) == BARS
    return artifact, ts, values


def test_streamed_forecasts_equal_onnx_on_batch_features(streamed) -> None:
    oracle: OracleActor = streamed["OracleActor"]
    artifact, ts, values = warm_batch(ORACLE)
    manifest = artifact.manifest
    window_bars = manifest.window.encoder_bars
    assert oracle.config_errors == []
    assert streamed["FeatureActor-oracle"] == oracle.feature_set_hash == manifest.feature_set.hash
    assert streamed["FeatureActor-guardian"] in oracle.other_hashes  # ignored, not used
    # warm from bar warmup_bars (1-based), full window window_bars - 1 bars later
    first = manifest.feature_set.warmup_bars - 1 + window_bars - 1
    forecasts = oracle.history
    assert oracle.forecasts_published == len(forecasts) == BARS - first > 0
    assert [f.ts_event for f in forecasts] == [f.ts_init for f in forecasts] == ts[first:].tolist()
    assert np.all(np.isfinite(values[first - window_bars + 1]))  # the first full window starts warm
    assert not np.all(np.isfinite(values[first - window_bars]))

    runner = OnnxRunner(artifact)
    expected = runner.predict_batch(
        np.stack([values[end - window_bars + 1 : end + 1] for end in range(first, BARS)])
    )  # (N, H, Q)
    streamed_values = np.stack([f.values for f in forecasts])
    horizon_bars, quantiles = manifest.window.horizon_bars, len(manifest.oracle.quantiles)
    assert streamed_values.shape == (BARS - first, horizon_bars, quantiles)
    np.testing.assert_allclose(streamed_values, expected, rtol=0, atol=1e-6)
    assert {f.model_id for f in forecasts} == {f"{manifest.model_name}-{manifest.model_sha256[:12]}"}
    assert all(f.quantiles.tolist() == manifest.oracle.quantiles for f in forecasts)
    assert str(forecasts[0].instrument_id) == INSTRUMENT_ID
    assert oracle.session.calls == len(forecasts) and 0 < oracle.onnx_secs < oracle.handler_secs


def test_streamed_regimes_equal_guardian_online_on_batch_features(streamed, guardian_folder) -> None:
    guardian: GuardianActor = streamed["GuardianActor"]
    artifact, ts, values = warm_batch(guardian_folder)
    manifest = artifact.manifest
    window_bars = manifest.window.encoder_bars
    assert guardian.config_errors == []
    assert streamed["FeatureActor-guardian"] == guardian.feature_set_hash == manifest.feature_set.hash
    first = manifest.feature_set.warmup_bars - 1 + window_bars - 1
    regimes = guardian.history
    assert guardian.regimes_published == len(regimes) == BARS - first > 0
    assert [r.ts_event for r in regimes] == ts[first:].tolist()

    online = GuardianOnline(artifact)
    readings = [online.update(values[end - window_bars + 1 : end + 1]) for end in range(first, BARS)]
    assert [r.regime_id for r in regimes] == [reading.regime for reading in readings]
    np.testing.assert_allclose(
        np.vstack([r.probabilities for r in regimes]),
        np.vstack([reading.probabilities for reading in readings]),
        rtol=0,
        atol=1e-6,
    )
    assert [r.risk_scale for r in regimes] == [reading.risk_scale for reading in readings]
    assert len({r.regime_id for r in regimes}) >= 1 and all(0 <= r.risk_scale <= 1 for r in regimes)


def test_a_guardian_fed_from_the_oracles_vectors_sees_the_same_features_and_regimes(
    streamed, guardian_folder
) -> None:
    own: GuardianActor = streamed["GuardianActor"]
    shared: GuardianActor = streamed["GuardianActor-shared"]
    assert shared.config_errors == [] and shared.feature_set_hash == streamed["FeatureActor-oracle"]
    # the selected columns of the Oracle's set's vectors = the Guardian's set's vectors, bar by bar
    own_set = load_artifact(guardian_folder).feature_set()
    source_set = load_artifact(ORACLE).feature_set()
    assert [source_set.names[i] for i in shared.columns] == list(own_set.names)
    source_vectors = streamed["FeatureActor-oracle.history"]
    own_vectors = streamed["FeatureActor-guardian.history"]
    assert [v.ts_event for v in source_vectors] == [v.ts_event for v in own_vectors] and len(
        own_vectors
    ) == BARS
    selected = np.vstack([v.values[shared.columns] for v in source_vectors])
    expected = np.vstack([v.values for v in own_vectors])
    np.testing.assert_array_equal(selected, expected)  # bitwise, NaN in the same places
    # warm of the Guardian's set <=> its 20 selected values are finite (the Oracle's set warms later)
    assert [v.warm for v in own_vectors] == np.all(np.isfinite(selected), axis=1).tolist()
    assert sum(v.warm for v in own_vectors) > sum(v.warm for v in source_vectors)
    # hence the very same Regimes, from the same first bar
    assert shared.regimes_published == own.regimes_published == len(own.history) > 0
    for mine, theirs in zip(own.history, shared.history, strict=True):
        assert (mine.ts_event, mine.regime_id, mine.risk_scale) == (
            theirs.ts_event,
            theirs.regime_id,
            theirs.risk_scale,
        )
        assert theirs.probabilities_f8 == mine.probabilities_f8  # bitwise


# ---- refusals: ConfigError from run_backtest ---------------------------------------------------


def altered_oracle(tmp_path: Path, change) -> Path:
    folder = tmp_path / "oracle_altered"
    shutil.copytree(ORACLE, folder, ignore=shutil.ignore_patterns("folds", "plots"))
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def swap_first_two_names(manifest: dict) -> None:
    names = manifest["feature_set"]["names"]
    names[0], names[1] = names[1], names[0]


def other_hash(manifest: dict) -> None:
    manifest["feature_set"]["hash"] = "0" * 64


def shorter_window(manifest: dict) -> None:
    manifest["window"]["encoder_bars"] = 30


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (swap_first_two_names, "names differ; the manifest was edited"),
        (other_hash, "feature_set.hash 000000000000... but its own feature specs hash to 1d915fba7fc3"),
        (shorter_window, "manifest window says 30 bars x 52 features but model.onnx takes \\[60, 52\\]"),
    ],
)
def test_an_altered_oracle_manifest_is_a_config_error(sample_catalog, tmp_path, change, problem) -> None:
    folder = altered_oracle(tmp_path, change)
    config = backtest_config(
        sample_catalog,
        [actor("features", artifact=str(ORACLE)), actor("oracle", artifact=str(folder))],
        end="2025-01-01T02:00:00Z",
    )
    with pytest.raises(ConfigError, match=problem) as caught:
        run_backtest(config, run_dir=tmp_path / "run")
    assert "OracleActor" in str(caught.value) and str(folder) in str(caught.value)


def test_a_hash_edited_consistently_in_feature_actor_and_model_is_refused(sample_catalog, tmp_path) -> None:
    """Both artifacts agree with each other, so only the manifest's own specs can tell: refused (exit 2)."""
    folder = altered_oracle(tmp_path, other_hash)
    config = backtest_config(
        sample_catalog,
        [actor("features", artifact=str(folder)), actor("oracle", artifact=str(folder))],
        end="2025-01-01T02:00:00Z",
    )
    with pytest.raises(ConfigError, match="the manifest was edited") as caught:
        run_backtest(config, run_dir=tmp_path / "run")
    assert caught.value.exit_code == 2 and str(folder) in str(caught.value)


@pytest.mark.parametrize(
    ("features", "seen"),
    [
        ([actor("features")], "only FeatureVectors of other feature sets arrived"),  # the registered set
        ([], "no FeatureVector arrived"),
    ],
)
def test_an_oracle_without_a_feature_actor_of_its_set_is_a_config_error(
    sample_catalog, tmp_path, features, seen
) -> None:
    config = backtest_config(
        sample_catalog, [*features, actor("oracle", artifact=str(ORACLE))], end="2025-01-01T06:00:00Z"
    )
    with pytest.raises(ConfigError) as caught:
        run_backtest(config, run_dir=tmp_path / "run")
    message = str(caught.value)
    assert seen in message
    assert 'name = "features"' in message and f'artifact = "{ORACLE}"' in message
    assert load_artifact(ORACLE).manifest.feature_set.hash[:12] in message


def test_an_oracle_fed_by_a_feature_actor_on_other_bars_is_a_config_error(sample_catalog, tmp_path) -> None:
    """The FeatureActor computes the Oracle's set on Binance 1m bars; the Oracle expects 5m bars."""
    instrument = "BTCUSDT-PERP.BINANCE"
    one_minute, five_minutes = (f"{instrument}-{step}-MINUTE-LAST-EXTERNAL" for step in (1, 5))
    params = {"instrument_id": instrument}
    config = BacktestConfig.model_validate(
        {
            "id": "model-actors-other-bars",
            "venues": [{"name": "BINANCE"}],
            "data": {
                "catalog": str(sample_catalog),
                "bars": [{"instrument_id": instrument, "interval": "1m"}],
                "start": "2025-05-05T00:00:00Z",
                "end": "2025-05-05T02:00:00Z",
            },
            "strategies": [{"name": "ema_cross", "params": {**params, "bar_type": one_minute}}],
            "actors": [
                {"name": "features", "params": {**params, "bar_type": one_minute, "artifact": str(ORACLE)}},
                {"name": "oracle", "params": {**params, "bar_type": five_minutes, "artifact": str(ORACLE)}},
            ],
        },
    )
    with pytest.raises(ConfigError) as caught:
        run_backtest(config, run_dir=tmp_path / "run")
    message = str(caught.value)
    assert "61 FeatureVectors of the model's feature set arrived, none 300 s" in message
    assert "the last step: 60 s" in message and f'give it bar_type = "{five_minutes}"' in message
