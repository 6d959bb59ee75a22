"""Model actors driven by hand: the rolling window, gaps, foreign feature sets, refusals.

Feature values are the batch features (qa_engine.features) of the sample catalog's real Bybit BTCUSDT
5m bars; the actors run the committed Oracle artifact and a tiny Guardian trained on real bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nautilus_trader.model.data import BarType
from nautilus_trader.model.identifiers import InstrumentId

from actors.guardian_actor import GuardianActor
from actors.guardian_actor import GuardianActorConfig
from actors.model_actor import FeatureWindow
from actors.model_actor import bar_interval
from actors.model_actor import source_columns
from actors.oracle_actor import OracleActor
from actors.oracle_actor import OracleActorConfig
from qa_engine.errors import ConfigError
from qa_engine.features.sets import default_feature_set
from qa_engine.features.sets import guardian_feature_set
from qa_engine.inference.artifact import load_artifact
from qa_engine.inference.guardian import GuardianOnline
from qa_engine.inference.runner import OnnxRunner
from tests.unit.actors.harness import BAR_TYPE
from tests.unit.actors.harness import INSTRUMENT_ID
from tests.unit.actors.harness import REPO_ROOT
from tests.unit.actors.harness import STEP_NS
from tests.unit.actors.harness import Kernel
from tests.unit.actors.harness import batch_features
from tests.unit.actors.harness import feature_vector
from tests.unit.actors.harness import tiny_guardian_artifact

ORACLE = REPO_ROOT / "artifacts" / "oracle"


@pytest.fixture(scope="module")
def oracle_features():
    """ts, raw values and hash of the Oracle's fitted feature set, warm rows of 2025-01-01..04."""
    artifact = load_artifact(ORACLE)
    ts, values = batch_features(artifact.feature_set(), "2025-01-01", "2025-01-04")
    warm = np.all(np.isfinite(values), axis=1)
    return ts[warm], values[warm], artifact.manifest.feature_set.hash


@pytest.fixture(scope="module")
def guardian_folder(tmp_path_factory) -> Path:
    return tiny_guardian_artifact(tmp_path_factory)


def oracle_config(**params) -> OracleActorConfig:
    return OracleActorConfig(
        instrument_id=InstrumentId.from_str(INSTRUMENT_ID),
        bar_type=BarType.from_str(BAR_TYPE),
        artifact=str(params.pop("artifact", ORACLE)),
        **params,
    )


# ---- FeatureWindow -----------------------------------------------------------------------------


def test_feature_window_holds_the_last_bars_oldest_first(oracle_features) -> None:
    ts, values, _ = oracle_features
    window = FeatureWindow(window_bars=5, n_features=values.shape[1], step_ns=STEP_NS)
    outputs = [window.push(int(t), v, warm=True) for t, v in zip(ts[:12], values[:12], strict=True)]
    assert all(output is None for output in outputs[:4])
    last = outputs[11]
    assert last.flags.c_contiguous and last.shape == (5, values.shape[1])
    np.testing.assert_array_equal(last, values[7:12])
    assert window.windows_in_segment == 8 and window.breaks == 0


def test_feature_window_each_window_is_the_rows_before_it(oracle_features) -> None:
    ts, values, _ = oracle_features
    window = FeatureWindow(window_bars=3, n_features=values.shape[1], step_ns=STEP_NS)
    for end in range(10):
        output = window.push(int(ts[end]), values[end], warm=True)
        if end >= 2:
            np.testing.assert_array_equal(output, values[end - 2 : end + 1])  # copy-free view, refreshed


def test_feature_window_restarts_after_a_gap_a_cold_vector_or_nan(oracle_features) -> None:
    ts, values, _ = oracle_features
    window = FeatureWindow(window_bars=3, n_features=values.shape[1], step_ns=STEP_NS)
    for row in range(4):
        window.push(int(ts[row]), values[row], warm=True)
    assert window.windows_in_segment == 2
    # gap: row 6 follows row 3
    assert window.push(int(ts[6]), values[6], warm=True) is None
    assert window.push(int(ts[7]), values[7], warm=True) is None
    np.testing.assert_array_equal(window.push(int(ts[8]), values[8], warm=True), values[6:9])
    assert window.windows_in_segment == 1 and window.breaks == 1
    # the same bar again is ignored, not a gap
    assert window.push(int(ts[8]), values[8], warm=True) is None
    np.testing.assert_array_equal(window.push(int(ts[9]), values[9], warm=True), values[7:10])
    # a vector that is not warm, or one holding NaN, breaks the window too
    assert window.push(int(ts[10]), values[10], warm=False) is None
    assert window.breaks == 2
    for row in (11, 12):
        assert window.push(int(ts[row]), values[row], warm=True) is None
    bad = values[13].copy()
    bad[0] = np.nan
    assert window.push(int(ts[13]), bad, warm=True) is None
    assert window.breaks == 3 and window.count == 0


def test_feature_window_scales_each_row_once_as_the_runner_scales_the_window(oracle_features) -> None:
    ts, values, _ = oracle_features
    runner = OnnxRunner(load_artifact(ORACLE))
    window = FeatureWindow(5, values.shape[1], STEP_NS, scaler=runner.scaler)
    for end in range(40):
        if end == 20:  # a gap: the scaled ring restarts with the raw one
            continue
        raw = window.push(int(ts[end]), values[end], warm=True)
        if raw is None:
            continue
        scaled = window.scaled_window()
        assert scaled.shape == (1, 5, values.shape[1]) and scaled.flags.c_contiguous
        expected = runner.scaler.transform(raw[None]).astype(np.float32)  # what predict feeds ORT
        np.testing.assert_array_equal(scaled, expected)
        np.testing.assert_array_equal(raw, values[end - 4 : end + 1])
    assert window.breaks == 1
    extreme = values[0] + runner.scaler.std * np.linspace(-3, 3, values.shape[1]) * runner.scaler.clip
    out = np.empty(values.shape[1], dtype=np.float32)
    window.scale_row(extreme, out)  # beyond the clip on both sides
    np.testing.assert_array_equal(out, runner.scaler.transform(extreme).astype(np.float32))
    assert out.min() == -runner.scaler.clip and out.max() == runner.scaler.clip


def test_source_columns_select_a_models_features_from_a_larger_set() -> None:
    default, guardian = default_feature_set(), guardian_feature_set()
    columns = source_columns(guardian, default, "test")
    assert [default.names[i] for i in columns] == list(guardian.names)
    assert source_columns(default, default, "test") is None  # the same set: every column
    with pytest.raises(ConfigError, match=r"missing features: \['sma_5'"):
        source_columns(default, guardian, "test")
    rsi = guardian.spec("rsi_14")
    altered = guardian.replace_spec(rsi.with_params(**{key: value for key, value in rsi.params}, extra=1))
    with pytest.raises(ConfigError, match=r"computed differently \(canonical spec\): \['rsi_14'\]"):
        source_columns(altered, default, "test")


def test_bar_interval_of_bar_types() -> None:
    assert bar_interval(BarType.from_str(BAR_TYPE)) == "5m"
    assert bar_interval(BarType.from_str("BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL")) == "1m"
    assert bar_interval(BarType.from_str("BTCUSDT-PERP.BINANCE-4-HOUR-LAST-EXTERNAL")) == "4h"
    with pytest.raises(ConfigError, match="not time-based"):
        bar_interval(BarType.from_str("BTCUSDT-PERP.BINANCE-100-TICK-LAST-EXTERNAL"))


def test_config_refuses_a_bar_type_of_another_instrument() -> None:
    with pytest.raises(ValueError, match="not a bar type of"):
        OracleActorConfig(
            instrument_id=InstrumentId.from_str("ETHUSDT-LINEAR.BYBIT"), bar_type=BarType.from_str(BAR_TYPE)
        )


# ---- actors driven by hand ---------------------------------------------------------------------


def test_oracle_publishes_nothing_across_a_gap_until_the_window_refills(oracle_features) -> None:
    ts, values, fitted_hash = oracle_features
    kernel = Kernel()
    actor = kernel.start(OracleActor(oracle_config(keep_history=True)))
    assert actor.config_errors == [] and actor.feature_set_hash == fitted_hash
    window_bars = actor.window.window_bars  # 60, from the manifest
    before, gap, after = window_bars + 9, 5, window_bars + 4
    fed = [*range(before), *range(before + gap, before + gap + after)]
    for row in fed:
        actor.handle_data(feature_vector("another-feature-set", ts[row], values[row][:3]))  # ignored
        actor.handle_data(feature_vector(fitted_hash, ts[row], values[row]))

    expected_rows = [*range(window_bars - 1, before), *range(before + gap + window_bars - 1, fed[-1] + 1)]
    assert [f.ts_event for f in kernel.published] == [int(ts[row]) for row in expected_rows]
    assert actor.forecasts_published == len(expected_rows) == 10 + 5
    assert actor.history == kernel.published
    runner = OnnxRunner(load_artifact(ORACLE))
    for forecast, row in zip(kernel.published, expected_rows, strict=True):
        expected = runner.predict(values[row - window_bars + 1 : row + 1])  # (H, Q), no pre-gap row
        np.testing.assert_allclose(forecast.values, expected, rtol=0, atol=1e-12)
        assert forecast.quantiles.tolist() == [0.1, 0.5, 0.9] and forecast.values.shape == (12, 3)
    assert actor.other_hashes == {"another-feature-set"}
    assert actor.session.calls == len(expected_rows) and 0 < actor.onnx_secs <= actor.handler_secs


def test_guardian_restarts_its_persistence_filter_after_a_gap(guardian_folder) -> None:
    artifact = load_artifact(guardian_folder)
    ts, values = batch_features(artifact.feature_set(), "2025-01-01", "2025-01-04")
    warm = np.all(np.isfinite(values), axis=1)
    ts, values = ts[warm], values[warm]
    kernel = Kernel()
    config = GuardianActorConfig(
        instrument_id=InstrumentId.from_str(INSTRUMENT_ID),
        bar_type=BarType.from_str(BAR_TYPE),
        artifact=str(guardian_folder),
    )
    actor = kernel.start(GuardianActor(config))
    assert actor.config_errors == []
    window_bars = actor.window.window_bars  # 16, from the manifest
    segments = [range(0, 120), range(125, 260)]  # 5 bars missing between them
    for rows in segments:
        for row in rows:
            actor.handle_data(feature_vector(artifact.manifest.feature_set.hash, ts[row], values[row]))

    expected = []
    for rows in segments:  # a fresh GuardianOnline per gap-free segment = a cold start at the gap
        online = GuardianOnline(artifact)
        for end in rows[window_bars - 1 :]:
            expected.append((int(ts[end]), online.update(values[end - window_bars + 1 : end + 1])))
    assert [r.ts_event for r in kernel.published] == [t for t, _ in expected]
    assert [r.regime_id for r in kernel.published] == [reading.regime for _, reading in expected]
    np.testing.assert_allclose(
        np.vstack([r.probabilities for r in kernel.published]),
        np.vstack([reading.probabilities for _, reading in expected]),
        rtol=0,
        atol=1e-12,
    )
    assert [r.risk_scale for r in kernel.published] == [reading.risk_scale for _, reading in expected]


def guardian_config(guardian_folder: Path, **params) -> GuardianActorConfig:
    return GuardianActorConfig(
        instrument_id=InstrumentId.from_str(INSTRUMENT_ID),
        bar_type=BarType.from_str(BAR_TYPE),
        artifact=str(guardian_folder),
        **params,
    )


def test_guardian_fed_from_the_oracles_set_publishes_what_its_own_set_gives(guardian_folder) -> None:
    """From the catalog's first bar: the Oracle's set warms up (FFD) long after the Guardian's 20
    features; selected from the Oracle's vectors, the Guardian still starts at its own warm-up."""
    own = load_artifact(guardian_folder)
    source = load_artifact(ORACLE)
    ts, own_values = batch_features(own.feature_set(), "2024-12-01", "2025-01-04")
    source_ts, source_values = batch_features(source.feature_set(), "2024-12-01", "2025-01-04")
    assert ts.tolist() == source_ts.tolist()
    own_warm = np.all(np.isfinite(own_values), axis=1)
    source_warm = np.all(np.isfinite(source_values), axis=1)
    assert own_warm.sum() > source_warm.sum() + 100  # the window starts before the Oracle's set is warm
    runs = {}
    for name, fs_hash, values, warm, params in (
        ("own", own.manifest.feature_set.hash, own_values, own_warm, {}),
        (
            "shared",
            source.manifest.feature_set.hash,
            source_values,
            source_warm,
            {"features_from": str(ORACLE)},
        ),
    ):
        kernel = Kernel()
        actor = kernel.start(GuardianActor(guardian_config(guardian_folder, **params)))
        assert actor.config_errors == [] and actor.feature_set_hash == fs_hash
        for row in range(len(ts)):
            actor.handle_data(feature_vector(fs_hash, ts[row], values[row], warm=bool(warm[row])))
        runs[name] = kernel.published
    assert len(runs["own"]) == len(runs["shared"]) > own_warm.sum() - source_warm.sum()
    for mine, shared in zip(runs["own"], runs["shared"], strict=True):
        assert (mine.ts_event, mine.regime_id, mine.risk_scale) == (
            shared.ts_event,
            shared.regime_id,
            shared.risk_scale,
        )
        assert mine.probabilities_f8 == shared.probabilities_f8  # bitwise


def test_a_model_refuses_features_from_a_set_that_lacks_its_features(guardian_folder) -> None:
    actor = Kernel().start(OracleActor(oracle_config(features_from=str(guardian_folder))))
    assert len(actor.config_errors) == 1 and not actor.is_running
    message = actor.config_errors[0]
    assert f"from the feature set of '{guardian_folder}'" in message
    assert "the missing features: ['sma_5', 'sma_10'" in message


def test_oracle_refuses_a_guardian_artifact_and_stops(guardian_folder) -> None:
    actor = Kernel().start(OracleActor(oracle_config(artifact=guardian_folder)))
    assert len(actor.config_errors) == 1
    assert "holds a 'guardian' model; this actor runs 'oracle' models" in actor.config_errors[0]
    assert str(guardian_folder) in actor.config_errors[0]
    assert not actor.is_running


def test_oracle_refuses_an_artifact_for_another_bar_interval() -> None:
    config = OracleActorConfig(
        instrument_id=InstrumentId.from_str(INSTRUMENT_ID),
        bar_type=BarType.from_str(f"{INSTRUMENT_ID}-1-MINUTE-LAST-EXTERNAL"),
        artifact=str(ORACLE),
    )
    actor = Kernel().start(OracleActor(config))
    assert len(actor.config_errors) == 1
    assert "trained on 5m bars, the feed provides 1m" in actor.config_errors[0]
