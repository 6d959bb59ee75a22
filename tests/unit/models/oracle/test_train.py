"""The artifact contract: export + manifest on the training side, checks + onnxruntime on the trading side."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qa_engine.contract.manifest import read_manifest  # noqa: E402
from qa_engine.contract.manifest import write_manifest  # noqa: E402
from qa_engine.errors import ConfigError  # noqa: E402
from qa_engine.errors import DataError  # noqa: E402
from qa_engine.features.sets import default_feature_set  # noqa: E402
from qa_engine.features.spec import FeatureSet  # noqa: E402
from qa_engine.inference.artifact import feature_set_from_canonical  # noqa: E402
from qa_engine.inference.artifact import load_artifact  # noqa: E402
from qa_engine.inference.runner import OnnxRunner  # noqa: E402
from qa_engine.models.data import series_arrays  # noqa: E402
from qa_engine.models.oracle.train import OracleTrainConfig  # noqa: E402
from qa_engine.models.oracle.train import export_oracle  # noqa: E402
from qa_engine.models.oracle.train import oracle_manifest  # noqa: E402
from tests.unit.models.oracle_data import STEP_NS  # noqa: E402
from tests.unit.models.oracle_data import bars_from  # noqa: E402
from tests.unit.models.oracle_data import small_feature_set  # noqa: E402
from tests.unit.models.oracle_data import tiny_config  # noqa: E402
from tests.unit.models.oracle_data import tiny_fold  # noqa: E402
from tests.unit.models.oracle_data import tiny_model  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory):
    """A tiny Oracle artifact (untrained weights are enough for the contract) and its torch model."""
    data = tiny_fold()
    model, _ = tiny_model(data)
    folder = tmp_path_factory.mktemp("artifact")
    config = OracleTrainConfig(data=tiny_config(bars_from("2025-03-01T00:00:00", 1_500)), model=model.config)
    export, parity = export_oracle(model, data, folder)
    write_manifest(oracle_manifest(config, data, [data], export, {"pinball_mean": 0.0}), folder)
    return folder, model.eval(), data, parity


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def edit_manifest(folder: Path, change) -> None:
    path = folder / "manifest.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_manifest_records_the_contract(artifact) -> None:
    folder, _, data, parity = artifact

    manifest = read_manifest(folder)

    assert parity <= 1e-5
    assert manifest.feature_set.names == list(data.meta.feature_names)
    assert manifest.feature_set.hash == small_feature_set().hash
    assert manifest.window.encoder_bars == 16 and manifest.window.horizon_bars == 4
    assert [(t.name, t.shape) for t in manifest.inputs] == [("features", ["batch", 16, 5])]
    assert [(t.name, t.shape) for t in manifest.outputs] == [("quantiles", ["batch", 4, 3])]
    np.testing.assert_array_equal(manifest.scaler.mean, data.scaler.mean)
    assert manifest.oracle is not None and manifest.oracle.quantiles == [0.1, 0.5, 0.9]
    assert manifest.folds[0].name == "tiny" and manifest.folds[0].embargo_bars == 4
    assert manifest.training_data.sha256 == data.training_bars["sha256"]


def test_runner_predicts_the_torch_quantiles_from_raw_features(artifact) -> None:
    folder, model, data, _ = artifact
    bars = bars_from("2025-03-01T00:00:00", 1_500)
    arrays, _ = series_arrays(bars, small_feature_set(), data.meta.horizon_bars, STEP_NS)
    test = data.splits["test"]
    rows = test.rows(np.arange(5))  # (5, E) rows of the first five test windows
    raw = arrays["features"][rows]  # (5, E, F) unscaled, as a FeatureActor would hold them

    runner = OnnxRunner(load_artifact(folder, expected_feature_set=small_feature_set(), window_bars=16))
    batch = runner.predict_batch(raw)
    single = runner.predict(raw[2])

    with torch.no_grad():
        expected = model(torch.from_numpy(test.batch(np.arange(5))["x"])).numpy() * data.target_scale[:, None]
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-5 * float(data.target_scale.max()))
    np.testing.assert_allclose(single, batch[2], rtol=1e-6, atol=0)
    assert single.shape == (4, 3)


def test_wrong_feature_hash_is_refused_naming_the_feature(artifact) -> None:
    folder, *_ = artifact
    small = small_feature_set()
    changed = small.replace_spec(small.spec("williams_r_14").with_params(period_bars=21))

    with pytest.raises(ConfigError) as error:
        load_artifact(folder, expected_feature_set=changed)

    message = str(error.value)
    assert "refusing to load" in message
    assert f"hash {changed.hash[:12]}... does not match the model's 'small-test' v1 hash" in message
    assert (
        "feature 'williams_r_14' is computed differently "
        "(params: model [['period_bars', 14]] vs feed [['period_bars', 21]])"
    ) in message


def test_a_changed_registered_feature_set_means_retrain(artifact) -> None:
    loaded = load_artifact(artifact[0])
    small = small_feature_set()
    changed = small.replace_spec(small.spec("log_return_5").with_params(lag_bars=6))

    loaded.check_registered(small)  # unchanged code: accepted
    with pytest.raises(ConfigError, match="the feature code changed since training; retrain the model"):
        loaded.check_registered(changed)


def test_wrong_feature_order_is_refused(artifact) -> None:
    folder, *_ = artifact
    small = small_feature_set()
    swapped = FeatureSet(small.name, small.version, (small.specs[1], small.specs[0], *small.specs[2:]))

    with pytest.raises(
        ConfigError,
        match=(
            "feature order differs from position 0: the model expects 'log_return_1' there, "
            "the feed has 'log_return_5'"
        ),
    ):
        load_artifact(folder, expected_feature_set=swapped)


def test_missing_feature_is_refused(artifact) -> None:
    folder, *_ = artifact
    small = small_feature_set()
    fewer = FeatureSet(small.name, small.version, small.specs[:-1])

    with pytest.raises(ConfigError, match=r"the model needs features the feed lacks: \['time_of_day_sin'\]"):
        load_artifact(folder, expected_feature_set=fewer)


def test_wrong_window_and_interval_are_refused(artifact) -> None:
    folder, *_ = artifact

    with pytest.raises(ConfigError, match="the model takes windows of 16 bars, the feed provides 32"):
        load_artifact(folder, expected_feature_set=small_feature_set(), window_bars=32)
    with pytest.raises(ConfigError, match="the model was trained on 5m bars, the feed provides 1m bars"):
        load_artifact(folder, interval="1m")


def test_a_model_file_that_does_not_belong_to_the_manifest_is_refused(artifact, tmp_path: Path) -> None:
    folder = copy_of(artifact[0], tmp_path)
    with (folder / "model.onnx").open("ab") as handle:
        handle.write(b"\0")

    with pytest.raises(ConfigError, match="differs from the manifest's .*do not belong together"):
        load_artifact(folder)


def test_a_manifest_whose_window_disagrees_with_the_graph_is_refused(artifact, tmp_path: Path) -> None:
    folder = copy_of(artifact[0], tmp_path)
    edit_manifest(folder, lambda d: d["window"].update(encoder_bars=30))

    with pytest.raises(
        ConfigError, match=r"manifest window says 30 bars x 5 features but model.onnx takes \[16, 5\]"
    ):
        load_artifact(folder)


def test_an_invalid_manifest_is_a_readable_config_error(artifact, tmp_path: Path) -> None:
    folder = copy_of(artifact[0], tmp_path)
    edit_manifest(folder, lambda d: d.update(surprise=1))

    with pytest.raises(ConfigError, match=r"invalid manifest \(surprise: Extra inputs are not permitted\)"):
        load_artifact(folder)
    with pytest.raises(ConfigError, match="is not a model artifact: manifest.json is missing"):
        load_artifact(tmp_path)


def test_an_unknown_model_kind_lists_the_known_ones(artifact, tmp_path: Path) -> None:
    folder = copy_of(artifact[0], tmp_path)
    edit_manifest(folder, lambda d: d.update(model_kind="crystal_ball"))

    with pytest.raises(ConfigError, match="unknown model_kind 'crystal_ball'; known kinds: .*oracle"):
        load_artifact(folder)


def test_predict_refuses_bad_windows(artifact) -> None:
    runner = OnnxRunner(load_artifact(artifact[0]))

    with pytest.raises(DataError, match=r"expected windows of shape \(batch, 16, 5\)"):
        runner.predict(np.zeros((15, 5)))
    window = np.zeros((16, 5))
    window[3, 1] = np.nan
    with pytest.raises(DataError, match="NaN/inf"):
        runner.predict(window)


def test_feature_set_round_trips_through_the_manifest(artifact) -> None:
    default = default_feature_set()

    assert feature_set_from_canonical(json.loads(default.canonical_json())).hash == default.hash
    assert load_artifact(artifact[0]).feature_set().hash == small_feature_set().hash


def test_inference_never_imports_torch() -> None:
    code = (
        "import sys; import qa_engine.inference.artifact, qa_engine.inference.runner; "
        "from qa_engine.contract.manifest import MANIFEST_TYPES, manifest_type; "
        "[manifest_type(kind) for kind in MANIFEST_TYPES]; "  # every kind's manifest model is torch-free
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
