"""Baselines: label construction on real prices, shapes, tiny LSTM/MLP overfitting real windows, ONNX
parity (torch and xgboost vs onnxruntime), the ensemble's agreement flag, naive forecasters, positions,
the vectorised backtest, metrics, and one tiny end-to-end fold with its artifacts.

Market data: Bybit linear BTCUSDT 5m bars from data/klines (real, see its PROVENANCE.md)."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from qa_engine.contract.baseline import agreement_classes
from qa_engine.contract.baseline import ensemble_probabilities
from qa_engine.contract.labels import NO_LABEL
from qa_engine.contract.labels import class_weights
from qa_engine.contract.labels import forward_return_bps
from qa_engine.contract.labels import threshold_for_hold_share
from qa_engine.contract.labels import triple_class_labels
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.features.build import build_feature_table
from qa_engine.features.io import interval_ns
from qa_engine.features.io import load_kline_file
from qa_engine.features.sets import default_feature_set
from qa_engine.features.spec import FeatureSet
from qa_engine.inference.scaling import fit_feature_scaler
from qa_engine.models.baselines.evaluate import backtest_metrics
from qa_engine.models.baselines.evaluate import classification_metrics
from qa_engine.models.baselines.evaluate import directional_accuracy
from qa_engine.models.baselines.evaluate import vectorised_backtest
from qa_engine.models.baselines.network import ClassifierShape
from qa_engine.models.baselines.network import LSTMClassifier
from qa_engine.models.baselines.network import LSTMClassifierConfig
from qa_engine.models.baselines.network import MLPClassifier
from qa_engine.models.baselines.network import MLPClassifierConfig
from qa_engine.models.baselines.network import ProbabilityHead
from qa_engine.models.baselines.network import XGBoostConfig
from qa_engine.models.baselines.network import export_classifier_onnx
from qa_engine.models.baselines.network import weighted_cross_entropy
from qa_engine.models.baselines.signals import class_prior_forecast
from qa_engine.models.baselines.signals import persistence_forecast
from qa_engine.models.baselines.signals import positions_from_classes
from qa_engine.models.baselines.signals import zero_return_forecast
from qa_engine.models.export import onnx_session
from qa_engine.models.export import parity_max_abs_diff
from tests.factories import research_klines

BYBIT_BTC_5M = research_klines("bybit_linear_BTCUSDT_5m")  # data/klines: real, gap-free, 2025-01-01 on
STEP_NS = interval_ns("5m")
WINDOW_BARS = 20
SMALL_FEATURES = ("log_return_1", "log_return_5", "rsi_14", "realised_volatility_20", "time_of_day_sin")
# The first 16 closes of the Bybit file (bars opening 2025-01-01 00:00 .. 01:15 UTC).
FIRST_CLOSES = [
    93630.1, 93574.1, 93623.1, 93762.1, 93690.0, 93720.0, 93837.7, 93866.1,
    93838.3, 93929.0, 94205.0, 94343.2, 94058.2, 94015.3, 94093.8, 93940.2,
]  # fmt: skip
SELL, HOLD, BUY = 0, 1, 2


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def bybit_bars() -> pl.DataFrame:
    return load_kline_file(BYBIT_BTC_5M, "5m")


@cache
def small_feature_set() -> FeatureSet:
    full = default_feature_set()
    return FeatureSet("small-test", 1, tuple(full.spec(name) for name in SMALL_FEATURES))


@cache
def real_windows(count: int = 64, horizon_bars: int = 12, threshold_bps: float = 20.0):
    """`count` consecutive real 20-bar windows of scaled features (float32) and their classes."""
    bars = bybit_bars().slice(20_000, 1_000)
    table = build_feature_table(bars, small_feature_set(), STEP_NS).table
    values = table.select(list(SMALL_FEATURES)).to_numpy()
    scaler = fit_feature_scaler(values, SMALL_FEATURES, clip=8.0)
    scaled = scaler.transform(values).astype(np.float32)
    close = bars.filter(pl.col("ts").is_in(table.get_column("ts").implode())).get_column("close").to_numpy()
    labels = triple_class_labels(close, horizon_bars, threshold_bps)
    ends = np.arange(WINDOW_BARS - 1, WINDOW_BARS - 1 + count)
    windows = np.stack([scaled[end - WINDOW_BARS + 1 : end + 1] for end in ends])  # (B, E, F)
    assert np.all(labels[ends] != NO_LABEL)
    return windows, labels[ends].astype(np.int64)


# ---- labels -----------------------------------------------------------------------------------


def test_labels_first_real_bybit_closes_by_hand():
    close = np.array(FIRST_CLOSES)
    assert bybit_bars().get_column("close").head(16).to_list() == FIRST_CLOSES

    labels = triple_class_labels(close, horizon_bars=12, threshold_bps=20.0)

    # r[0] = 94058.2 / 93630.1 - 1 = +45.7 bp; r[1] = 94015.3 / 93574.1 - 1 = +47.1 bp;
    # r[2] = 94093.8 / 93623.1 - 1 = +50.3 bp; r[3] = 93940.2 / 93762.1 - 1 = +19.0 bp (inside +-20)
    assert labels.tolist() == [BUY, BUY, BUY, HOLD] + [NO_LABEL] * 12
    assert forward_return_bps(close, 12)[3] == pytest.approx(178.1 / 93762.1 * 1e4)
    assert triple_class_labels(close, 12, threshold_bps=18.9)[3] == BUY
    # one bar ahead: r[0] = 93574.1 / 93630.1 - 1 = -5.98 bp
    assert triple_class_labels(close, 1, threshold_bps=5.0)[0] == SELL
    assert triple_class_labels(close, 1, threshold_bps=6.0)[0] == HOLD


def test_labels_undefined_across_a_gap_and_at_the_end():
    close = np.array(FIRST_CLOSES[:8])
    ts = np.arange(8, dtype=np.int64) * STEP_NS
    ts[5:] += STEP_NS  # one bar missing between rows 4 and 5

    labels = triple_class_labels(close, 2, 1.0, ts=ts, step_ns=STEP_NS)

    assert labels[3] == NO_LABEL and labels[4] == NO_LABEL  # their 2nd successor is 3 steps away
    assert labels[2] != NO_LABEL and labels[5] != NO_LABEL
    assert labels[-2:].tolist() == [NO_LABEL, NO_LABEL]


def test_class_weights_balance_the_training_classes_and_refuse_a_missing_class():
    labels = np.array([SELL, HOLD, HOLD, HOLD, BUY, BUY, NO_LABEL])

    weights = class_weights(labels)

    np.testing.assert_allclose(weights, [6 / 3, 6 / 9, 6 / 6])
    np.testing.assert_allclose(np.mean(weights[labels[labels != NO_LABEL]]), 1.0)
    with pytest.raises(DataError, match="absent"):
        class_weights(np.array([HOLD, HOLD, BUY]))


def test_threshold_for_hold_share_is_the_quantile_of_absolute_returns():
    returns = np.array([-30.0, -10.0, 5.0, 20.0, np.nan])
    assert threshold_for_hold_share(returns, 0.5) == pytest.approx(np.quantile([30.0, 10.0, 5.0, 20.0], 0.5))


# ---- models -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["flatten", "last"])
def test_classifiers_map_windows_to_three_logits(mode):
    shape = ClassifierShape(n_features=7, window_bars=WINDOW_BARS)
    x = torch.zeros(5, WINDOW_BARS, 7)

    lstm = LSTMClassifier(LSTMClassifierConfig(hidden_size=8), shape)
    mlp = MLPClassifier(MLPClassifierConfig(hidden_sizes=(8,), input_mode=mode), shape)

    assert lstm(x).shape == (5, 3)
    assert mlp(x).shape == (5, 3)
    first_layer = mlp.net[0]
    assert first_layer.in_features == (7 * WINDOW_BARS if mode == "flatten" else 7)


@pytest.mark.parametrize("family", ["lstm", "mlp"])
def test_tiny_classifier_overfits_a_tiny_batch_of_real_windows(family):
    windows, classes = real_windows(32)
    shape = ClassifierShape(windows.shape[2], windows.shape[1])
    torch.manual_seed(0)
    model = (
        LSTMClassifier(LSTMClassifierConfig(hidden_size=32, dropout=0.0), shape)
        if family == "lstm"
        else MLPClassifier(MLPClassifierConfig(hidden_sizes=(64,), dropout=0.0), shape)
    )
    loss_fn = weighted_cross_entropy(np.ones(3))
    batch = {"x": torch.from_numpy(windows), "y": torch.from_numpy(classes)}
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    first = float(loss_fn(model, batch).detach())

    for _ in range(300):
        optimiser.zero_grad()
        loss = loss_fn(model, batch)
        loss.backward()
        optimiser.step()

    assert float(loss_fn(model, batch).detach()) < 0.1 * first


@pytest.mark.parametrize("family", ["lstm", "mlp"])
def test_torch_classifier_onnx_parity_on_real_windows(family, tmp_path):
    windows, _ = real_windows(64)
    shape = ClassifierShape(windows.shape[2], windows.shape[1])
    torch.manual_seed(1)
    model = (
        LSTMClassifier(LSTMClassifierConfig(), shape)
        if family == "lstm"
        else MLPClassifier(MLPClassifierConfig(), shape)
    )

    export = export_classifier_onnx(model, windows[:1], tmp_path / "model.onnx")

    assert [r.shape for r in export.inputs] == [["batch", WINDOW_BARS, len(SMALL_FEATURES)]]
    assert [(r.name, r.shape) for r in export.outputs] == [("probabilities", ["batch", 3])]
    assert parity_max_abs_diff(ProbabilityHead(model), export.path, {"features": windows}) <= 1e-5
    probabilities = onnx_session(export.path).run(None, {"features": windows})[0]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_xgboost_onnx_parity_on_real_features(tmp_path):
    pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    from qa_engine.models.baselines.network import export_xgboost_onnx
    from qa_engine.models.baselines.network import load_xgboost_fit
    from qa_engine.models.baselines.network import save_xgboost_fit
    from qa_engine.models.baselines.network import train_xgboost

    windows, classes = real_windows(400)
    rows = windows[:, -1, :]  # (N, F): the features at t
    weights = class_weights(classes)[classes]
    fit = train_xgboost(
        XGBoostConfig(max_rounds=15, early_stopping_rounds=5, threads=1),
        rows[:300], classes[:300], weights[:300], rows[300:], classes[300:], weights[300:],
    )  # fmt: skip

    export = export_xgboost_onnx(fit, rows.shape[1], tmp_path / "model.onnx")
    onnx_probabilities = onnx_session(export.path).run(None, {"features": windows[:, -1:, :]})[0]

    assert [r.shape for r in export.inputs] == [["batch", 1, rows.shape[1]]]
    assert [r.name for r in export.outputs] == ["probabilities"]
    assert 1 <= fit.best_round <= fit.rounds_tried <= 15
    assert np.max(np.abs(onnx_probabilities - fit.predict_probabilities(rows))) <= 1e-5
    reloaded = load_xgboost_fit(save_xgboost_fit(fit, tmp_path / "saved").parent)
    np.testing.assert_array_equal(reloaded.predict_probabilities(rows), fit.predict_probabilities(rows))


# ---- ensemble, naive forecasters, positions --------------------------------------------------


def test_ensemble_blends_point_six_point_four_and_flags_agreement():
    xgb = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    lstm = np.array([[0.6, 0.3, 0.1], [0.5, 0.1, 0.4], [0.1, 0.2, 0.7]])

    output = ensemble_probabilities({"xgboost": xgb, "lstm": lstm})

    np.testing.assert_allclose(output.probabilities[1], [0.26, 0.22, 0.52])
    assert output.classes.tolist() == [SELL, BUY, BUY]  # row 2: 0.6*0.3 + 0.4*0.7 = 0.46 vs 0.38
    assert output.agreement.tolist() == [True, False, False]
    assert agreement_classes(output).tolist() == [SELL, HOLD, HOLD]
    with pytest.raises(ConfigError, match="members"):
        ensemble_probabilities({"xgboost": xgb, "mlp": lstm})


def test_naive_forecasters():
    train = np.array([SELL, HOLD, HOLD, BUY, NO_LABEL])

    assert np.argmax(zero_return_forecast(2, 20.0), axis=1).tolist() == [HOLD, HOLD]
    np.testing.assert_allclose(class_prior_forecast(train, 2), [[0.25, 0.5, 0.25]] * 2)
    persistence = persistence_forecast(np.array([35.0, -25.0, 5.0, np.nan]), 20.0)
    assert np.argmax(persistence, axis=1).tolist() == [BUY, SELL, HOLD, HOLD]


def test_positions_flat_on_hold_and_hold_previous():
    classes = np.array([HOLD, BUY, HOLD, SELL, HOLD, HOLD, BUY])

    assert positions_from_classes(classes, "flat_on_hold").tolist() == [0, 1, 0, -1, 0, 0, 1]
    assert positions_from_classes(classes, "hold_previous").tolist() == [0, 1, 1, -1, -1, -1, 1]


# ---- evaluation -------------------------------------------------------------------------------


def test_vectorised_backtest_by_hand():
    close = np.array(FIRST_CLOSES[:5])
    bar_returns = close[1:] / close[:-1] - 1.0  # earned by the position decided at bars 0..3
    positions = np.array([1.0, 1.0, -1.0, 0.0])
    fee = 0.00055

    curve = vectorised_backtest(positions, bar_returns, np.arange(4), fee)
    metrics = backtest_metrics(curve)

    expected = np.array(
        [bar_returns[0] - fee, bar_returns[1], -bar_returns[2] - 2 * fee, 0.0 - fee]
    )  # enter, hold, flip (2 units), close
    np.testing.assert_allclose(curve.net_returns, expected)
    assert metrics["total_return_pct"] == pytest.approx((np.prod(1 + expected) - 1) * 100)
    assert metrics["position_changes"] == 3
    assert metrics["turnover"] == pytest.approx(4.0)
    assert metrics["fees_pct_of_equity"] == pytest.approx(4 * fee * 100)


def test_classification_metrics_by_hand():
    true = np.array([SELL, SELL, HOLD, HOLD, BUY, BUY])
    predicted = np.array([SELL, HOLD, HOLD, HOLD, SELL, BUY])
    forward_bps = np.array([-30.0, -25.0, 1.0, -2.0, 40.0, 22.0])

    metrics = classification_metrics(np.eye(3)[predicted], true, forward_bps, horizon_bars=1)

    assert metrics["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 * (2 / 3) * 1.0 / (2 / 3 + 1.0), 2 * 1.0 * 0.5 / 1.5]
    assert metrics["macro_f1"] == pytest.approx(np.mean(f1))
    assert metrics["directional"]["count"] == 3 and metrics["directional"]["hits"] == 2  # SELL on +40 misses
    assert directional_accuracy(predicted, forward_bps, stride=2)["count"] == 2


# ---- one tiny fold end to end -----------------------------------------------------------------


def test_inference_package_does_not_import_torch():
    code = "import sys, qa_engine.inference.baseline; print('torch' in sys.modules, 'xgboost' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_tiny_fold_end_to_end_artifacts_load_and_match(tmp_path):
    pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    from qa_engine.inference.baseline import BaselineClassifier
    from qa_engine.inference.baseline import BaselineEnsemble
    from qa_engine.inference.baseline import load_baseline_artifact
    from qa_engine.models.baselines.train import BaselinesTrainConfig
    from qa_engine.models.baselines.train import evaluate
    from qa_engine.models.baselines.train import export_fold_models
    from qa_engine.models.baselines.train import train_fold
    from qa_engine.models.data import build_fold
    from qa_engine.models.data import iso

    bars = bybit_bars().slice(30_000, 1_400)
    ts = bars.get_column("ts").to_numpy()
    config = BaselinesTrainConfig.model_validate(
        {
            "id": "tiny",
            "data": {
                "sources": [{"symbol": "BTCUSDT", "klines": str(BYBIT_BTC_5M)}],
                "encoder_bars": WINDOW_BARS,
                "horizon_bars": 6,
                "folds": [
                    {
                        "name": "tiny",
                        "train_start": iso(int(ts[0])),
                        "validation_start": iso(int(ts[800])),
                        "test_start": iso(int(ts[1_050])),
                        "test_end": iso(int(ts[-1])),
                    }
                ],
            },
            "labels": {"threshold_bps": 10.0},
            "xgboost": {"max_rounds": 8, "early_stopping_rounds": 3, "threads": 1},
            "lstm": {"hidden_size": 8},
            "mlp": {"hidden_sizes": [8]},
            "trainer": {"max_epochs": 2, "batch_size": 64, "warmup_steps": 2, "threads": 1},
        }
    )
    data = build_fold(config.data, config.data.folds[0], {"BTCUSDT": bars}, feature_set=small_feature_set())

    outcome = train_fold(config, data, {"BTCUSDT": bars}, tmp_path / "fold", resume=False)
    report = evaluate(config, [outcome])
    parity = export_fold_models(config, outcome, [outcome], tmp_path / "models", report)

    test = data.splits["test"]
    assert outcome.probabilities["xgboost"].shape == (len(test), 3)
    assert set(report["pooled"]["backtest"]["flat_on_hold"]) >= {"xgboost", "lstm", "mlp", "buy_and_hold"}
    assert max(parity.values()) <= 1e-5
    classifiers = {
        family: BaselineClassifier(
            load_baseline_artifact(tmp_path / "models" / family, data.feature_set, "5m")
        )
        for family in ("xgboost", "lstm", "mlp")
    }
    raw = build_feature_table(bars, data.feature_set, STEP_NS).table
    window_ts = test.ts[test.rows(np.array([3]))[0]]  # (E,) bar closes of test window 3
    raw_window = (
        raw.filter(pl.col("ts").is_in(window_ts.tolist())).select(list(data.meta.feature_names)).to_numpy()
    )
    assert raw_window.shape == (WINDOW_BARS, len(SMALL_FEATURES))
    for family, classifier in classifiers.items():
        np.testing.assert_allclose(
            classifier.probabilities(raw_window), outcome.probabilities[family][3], atol=1e-5
        )
    signal = BaselineEnsemble({"xgboost": classifiers["xgboost"], "lstm": classifiers["lstm"]}).predict(
        raw_window
    )
    np.testing.assert_allclose(signal.probabilities, outcome.probabilities["ensemble"][3], atol=1e-5)
    assert signal.position == int(np.argmax(outcome.probabilities["ensemble"][3])) - 1
    with pytest.raises(ConfigError, match="refusing"):
        load_baseline_artifact(tmp_path / "models" / "lstm", default_feature_set())


# ---- the CLI hook and the committed artifacts --------------------------------------------------


def test_cli_dry_run_resolves_the_baselines_config(capsys, repo_root: Path):
    import tomllib

    from qa_engine.cli.main import main

    code = main(
        [
            "train",
            "baselines",
            "--config",
            str(repo_root / "configs/train/baselines.toml"),
            "--dry-run",
            "--set",
            "labels.threshold_bps=15",
        ]
    )

    resolved = tomllib.loads(capsys.readouterr().out)
    assert code == 0
    assert resolved["labels"]["threshold_bps"] == 15
    assert resolved["data"]["encoder_bars"] == WINDOW_BARS and resolved["data"]["embargo_bars"] >= 12
    assert resolved["ensemble"] == {"xgboost_weight": 0.6, "lstm_weight": 0.4}


@pytest.mark.parametrize("family", ["xgboost", "lstm", "mlp"])
def test_committed_artifact_loads_against_the_default_feature_set(family, repo_root: Path):
    from qa_engine.inference.baseline import BaselineClassifier
    from qa_engine.inference.baseline import load_baseline_artifact

    folder = repo_root / "artifacts" / "baselines" / "models" / family
    if not folder.is_dir():
        pytest.skip(f"{folder} is not there (run the command in artifacts/baselines/README.md)")
    # The registered (unfitted) default set is refused: its FFD order and OFI fallback differ from
    # the set fitted on the training range, which the artifact carries and the feed must compute.
    with pytest.raises(ConfigError, match="registered set before fitting"):
        load_baseline_artifact(folder, default_feature_set(), "5m")
    feature_set = load_baseline_artifact(folder, None, "5m").feature_set()
    artifact = load_baseline_artifact(folder, feature_set, "5m")
    classifier = BaselineClassifier(artifact)
    bars = bybit_bars().tail(feature_set.warmup_bars + 40)
    table = build_feature_table(bars, feature_set, STEP_NS).table
    window = table.select(list(feature_set.names)).to_numpy()[-WINDOW_BARS:]

    probabilities = classifier.probabilities(window)

    assert artifact.manifest.baseline.family == family
    assert probabilities.shape == (3,) and probabilities.sum() == pytest.approx(1.0, abs=1e-5)
