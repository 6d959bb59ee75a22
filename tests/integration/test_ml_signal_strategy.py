"""MLSignalStrategy in real backtests on the sample catalog (Bybit linear BTCUSDT 5m, January 2025)
acts on exactly the classes the research side predicts from batch-computed features, tags its fills
with them, and refuses members that cannot be blended.

The committed baselines were trained on 2025-01-01 .. 2025-10-31 Bybit bars, so these days are
in-sample for them: the tests check plumbing and parity, never skill.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from qa_engine.backtest.runner import run_backtest
from qa_engine.config.models import BacktestConfig
from qa_engine.contract.baseline import agreement_classes
from qa_engine.contract.baseline import ensemble_probabilities
from qa_engine.contract.labels import CLASS_NAMES
from qa_engine.errors import ConfigError
from qa_engine.features.batch import compute_features_batch
from qa_engine.features.io import load_catalog_bars
from qa_engine.inference.artifact import feature_set_from_canonical
from qa_engine.inference.baseline import BaselineClassifier
from qa_engine.inference.baseline import BaselineSignal
from qa_engine.inference.baseline import load_baseline_artifact
from qa_engine.models.baselines.signals import positions_from_classes
from qa_engine.signals import FeatureVector
from qa_engine.signals import Signal
from qa_engine.signals import pack
from strategies.base import TargetPositionStrategy
from strategies.ml_signal import MLSignalStrategy
from strategies.ml_signal import MLSignalStrategyConfig
from strategies.ml_signal import decide_from_signal
from strategies.ml_signal import load_members

INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"
BAR_TYPE = f"{INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL"
FIVE_MINUTES_NS = 300_000_000_000
START, END = "2025-01-01T00:00:00Z", "2025-01-04T00:00:00Z"
MODELS = Path(__file__).resolve().parents[2] / "artifacts" / "baselines" / "models"


def backtest_config(sample_catalog: Path, strategy_params: dict, end: str = END) -> BacktestConfig:
    return BacktestConfig.model_validate(
        {
            "id": "ml-signal",
            "venues": [{"name": "BYBIT"}],
            "data": {
                "catalog": str(sample_catalog),
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "5m"}],
                "start": START,
                "end": end,
            },
            "strategies": [
                {
                    "name": "ml_signal",
                    "params": {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE, **strategy_params},
                },
            ],
            "actors": [
                {
                    "name": "features",
                    "params": {
                        "instrument_id": INSTRUMENT_ID,
                        "bar_type": BAR_TYPE,
                        "artifact": strategy_params["models"][0],
                    },
                },
            ],
        },
    )


def run_with_history(config: BacktestConfig, run_dir: Path):
    captured = {}

    def inspect(engine):
        strategy = next(s for s in engine.trader.strategies() if isinstance(s, MLSignalStrategy))
        captured["history"] = list(strategy.history)

    outcome = run_backtest(config, run_dir=run_dir, inspect=inspect)
    return outcome, captured["history"]


def research_windows(sample_catalog: Path, folder: Path, window_bars: int, last_ts: int):
    """Batch features of the backtest's bars -> (ts, windows): every full window of warm rows."""
    feature_set = load_baseline_artifact(folder).feature_set()
    start_ns = int(pl.Series([START]).str.to_datetime().dt.epoch("ns")[0])
    bars, _ = load_catalog_bars(sample_catalog, INSTRUMENT_ID, "5m", start_ns=start_ns, end_ns=last_ts)
    table = compute_features_batch(bars, feature_set, FIVE_MINUTES_NS)
    features = table.select(feature_set.names).to_numpy()  # (N, F), NaN where null (warm-up)
    ts = table.get_column("ts").dt.epoch("ns").to_numpy()
    warm = np.flatnonzero(np.all(np.isfinite(features), axis=1))
    assert np.all(np.diff(warm) == 1)  # one gap-free segment: warm from the warm-up on
    ends = warm[window_bars - 1 :]
    windows = np.stack([features[end - window_bars + 1 : end + 1] for end in ends])  # (B, E, F)
    return ts[ends], windows, feature_set


def fills_by_ts(outcome) -> pl.DataFrame:
    return outcome.report.fills.with_columns(pl.col("ts").dt.epoch("ns").alias("ts_ns"))


def test_ensemble_with_agreement_acts_on_the_research_predictions(sample_catalog, tmp_path):
    folders = [str(MODELS / "xgboost"), str(MODELS / "lstm")]
    params = {"models": folders, "mode": "ensemble", "require_agreement": True, "keep_history": True}
    outcome, history = run_with_history(backtest_config(sample_catalog, params), tmp_path)

    ts, windows, feature_set = research_windows(sample_catalog, MODELS / "lstm", 20, history[-1].ts_event)
    members = {
        name: BaselineClassifier(load_baseline_artifact(MODELS / name, feature_set)).probabilities_batch(
            windows
        )
        for name in ("xgboost", "lstm")
    }
    expected = ensemble_probabilities(members)  # default weights 0.6 / 0.4
    acted = agreement_classes(expected)

    # Decided on every bar from the first full 20-row window on (503-bar warm-up + 19), the same bars.
    assert [record.ts_event for record in history] == ts.tolist()
    assert len(history) == 3 * 288 - (feature_set.warmup_bars - 1) - 19
    assert [r.predicted_class for r in history] == expected.classes.tolist()
    assert [r.acted_class for r in history] == acted.tolist()
    streamed = np.stack([r.signal.probabilities for r in history])
    assert np.allclose(streamed, expected.probabilities, rtol=0, atol=1e-6)
    assert [r.signal.agreement for r in history] == expected.agreement.tolist()
    # The agreement rule changed something on these days (else this test could not tell it apart).
    overridden = (~expected.agreement) & (expected.classes != 1)
    assert overridden.sum() > 10
    assert {r.decision.signal for r, o in zip(history, overridden, strict=True) if o} == {Signal.HOLD}

    # Fills: one per change of the target position (flat on HOLD), tagged with the decision.
    targets = acted.astype(np.int64) - 1  # SELL -1, HOLD 0, BUY +1
    changed = targets != np.concatenate([[0], targets[:-1]])
    fills = fills_by_ts(outcome)
    assert fills.height > 20
    assert fills.get_column("ts_ns").to_list() == ts[changed].tolist()
    by_ts = {r.ts_event: r for r in history}
    for row in fills.iter_rows(named=True):
        record = by_ts[row["ts_ns"]]
        assert row["signal"] == record.decision.signal.value
        assert row["reasoning"] == record.decision.reasoning
        assert np.sign(float(row["position_after"])) == record.decision.target_fraction
        probability = expected.probabilities[ts.tolist().index(row["ts_ns"]), record.acted_class]
        assert row["signal"].startswith("STRONG_") == (probability >= 0.6 and record.acted_class != 1)
    assert "agree; p(SELL/HOLD/BUY)=" in fills.get_column("reasoning")[0]
    assert outcome.report.reconciliation.balanced_to_the_cent


def test_single_model_holding_the_position_on_hold_matches_research_positions(sample_catalog, tmp_path):
    folder = str(MODELS / "mlp")
    params = {"models": [folder], "mode": "single", "hold_policy": "hold_previous", "keep_history": True}
    outcome, history = run_with_history(backtest_config(sample_catalog, params), tmp_path)

    ts, windows, feature_set = research_windows(sample_catalog, MODELS / "mlp", 20, history[-1].ts_event)
    probabilities = BaselineClassifier(
        load_baseline_artifact(MODELS / "mlp", feature_set)
    ).probabilities_batch(windows)
    classes = np.argmax(probabilities, axis=1)
    assert [r.ts_event for r in history] == ts.tolist()
    assert [r.acted_class for r in history] == classes.tolist()
    assert np.allclose(np.stack([r.signal.probabilities for r in history]), probabilities, rtol=0, atol=1e-6)

    positions = positions_from_classes(classes, "hold_previous")  # research: HOLD keeps the position
    changed = positions != np.concatenate([[0.0], positions[:-1]])
    fills = fills_by_ts(outcome)
    assert 0 < fills.height < int((classes != 1).sum())  # HOLD bars trade nothing
    assert fills.get_column("ts_ns").to_list() == ts[changed].tolist()
    signs = np.sign(fills.get_column("position_after").cast(pl.Float64).to_numpy())
    assert signs.tolist() == positions[changed].tolist()
    assert "HOLD" not in fills.get_column("signal").to_list()
    assert " agree" not in fills.get_column("reasoning")[0]  # one model: no agreement to report


# ---- the pairing of a bar with its FeatureVector ------------------------------------------------


def test_decides_once_per_bar_when_both_bar_and_vector_are_in_whichever_comes_first(monkeypatch):
    from nautilus_trader.model.data import Bar
    from nautilus_trader.model.data import BarType
    from nautilus_trader.model.objects import Price
    from nautilus_trader.model.objects import Quantity

    decided: list[int] = []
    monkeypatch.setattr(TargetPositionStrategy, "on_bar", lambda self, bar: decided.append(bar.ts_event))
    config = MLSignalStrategyConfig.parse(
        json.dumps(
            {
                "instrument_id": INSTRUMENT_ID,
                "bar_type": BAR_TYPE,
                "models": [str(MODELS / "mlp")],
                "mode": "single",
            }
        )
    )
    strategy = MLSignalStrategy(config)
    strategy.feature_set_hash = "ours"

    def bar(ts: int) -> Bar:
        price = Price.from_str("100.0")
        return Bar(BarType.from_str(BAR_TYPE), price, price, price, price, Quantity.from_str("1"), ts, ts)

    def vector(ts: int, feature_set_hash: str = "ours") -> FeatureVector:
        return FeatureVector(
            ts_event=ts, ts_init=ts, feature_set_hash=feature_set_hash, values_f8=pack([1.0]), warm=True
        )

    step = FIVE_MINUTES_NS
    strategy.on_data(vector(1 * step))  # vector first ...
    assert decided == []
    strategy.on_bar(bar(1 * step))  # ... then its bar: decide now
    strategy.on_bar(bar(2 * step))  # bar first ...
    assert decided == [1 * step]
    strategy.on_data(vector(2 * step, "another feature set"))  # ... another set's vector is not ours
    strategy.on_data(vector(2 * step))  # ... our vector: decide now
    strategy.on_bar(bar(3 * step))  # a bar whose vector never comes: no decision
    strategy.on_bar(bar(4 * step))
    strategy.on_data(vector(4 * step))
    strategy.on_data(vector(4 * step))  # a repeated vector does not decide twice
    assert decided == [1 * step, 2 * step, 4 * step]
    assert len(strategy._rows) == 1  # the gap at 3 (no vector) restarted the window


# ---- the agreement rule --------------------------------------------------------------------------


def signal_of(members: dict[str, list[float]], weights: dict[str, float]) -> BaselineSignal:
    arrays = {name: np.array([p]) for name, p in members.items()}
    blend = ensemble_probabilities(arrays, weights)
    chosen = int(blend.classes[0])
    return BaselineSignal(
        probabilities=blend.probabilities[0],
        signal=CLASS_NAMES[chosen],
        position=chosen - 1,
        confidence=float(blend.probabilities[0, chosen]),
        agreement=bool(blend.agreement[0]),
        members={name: array[0] for name, array in arrays.items()},
    )


WEIGHTS = {"xgboost": 0.6, "lstm": 0.4}


def test_members_that_disagree_hold_only_when_agreement_is_required():
    # xgboost says BUY (0.5), lstm says SELL (0.5); the 0.6/0.4 blend leans BUY: p = 0.32/0.30/0.38.
    signal = signal_of({"xgboost": [0.2, 0.3, 0.5], "lstm": [0.5, 0.3, 0.2]}, WEIGHTS)
    blended_buy = 0.6 * 0.5 + 0.4 * 0.2

    acted, decision = decide_from_signal(signal, True, "flat_on_hold", 0.6, ensemble=True)
    assert (acted, decision.signal, decision.target_fraction) == (1, Signal.HOLD, 0.0)
    assert decision.confidence_pct == pytest.approx(100 * 0.3)  # the blended p(HOLD)
    assert decision.reasoning == (
        "xgboost BUY 0.50, lstm SELL 0.50 disagree; p(SELL/HOLD/BUY)=0.32/0.30/0.38 -> HOLD"
    )

    acted, decision = decide_from_signal(signal, False, "flat_on_hold", 0.6, ensemble=True)
    assert (acted, decision.signal, decision.target_fraction) == (2, Signal.BUY, 1.0)
    assert decision.confidence_pct == pytest.approx(100 * blended_buy)

    _, decision = decide_from_signal(signal, True, "hold_previous", 0.6, ensemble=True)
    assert decision.target_fraction is None  # HOLD keeps the position


def test_members_that_agree_trade_and_a_high_probability_is_strong():
    signal = signal_of({"xgboost": [0.7, 0.2, 0.1], "lstm": [0.5, 0.3, 0.2]}, WEIGHTS)  # p(SELL) 0.62
    acted, decision = decide_from_signal(signal, True, "flat_on_hold", 0.6, ensemble=True)
    assert (acted, decision.signal, decision.target_fraction) == (0, Signal.STRONG_SELL, -1.0)
    assert decision.reasoning.startswith("xgboost SELL 0.70, lstm SELL 0.50 agree;")
    _, decision = decide_from_signal(signal, True, "flat_on_hold", 0.65, ensemble=True)
    assert decision.signal == Signal.SELL


# ---- refusals -------------------------------------------------------------------------------------


def edited_copy(source: Path, destination: Path, edit) -> Path:
    shutil.copytree(source, destination)
    manifest = json.loads((destination / "manifest.json").read_text())
    edit(manifest)
    (destination / "manifest.json").write_text(json.dumps(manifest))
    return destination


def refit_ffd(manifest: dict) -> None:
    """The feature set of a model fitted on another fold: another FFD order, so another hash."""
    canonical = manifest["feature_set"]["canonical"]
    for spec in canonical["specs"]:
        if spec["kind"] == "ffd":
            spec["params"] = [[k, 0.3 if k == "order" else v] for k, v in spec["params"]]
    manifest["feature_set"]["hash"] = feature_set_from_canonical(canonical).hash


def test_members_fitted_on_different_feature_sets_are_refused(tmp_path):
    other = edited_copy(MODELS / "lstm", tmp_path / "lstm-other-fold", refit_ffd)
    with pytest.raises(
        ConfigError, match=r"differ in fitted feature sets .*lstm-other-fold: default [0-9a-f]{12}"
    ):
        load_members((str(MODELS / "xgboost"), str(other)), FIVE_MINUTES_NS, None)


def test_members_trained_on_different_bar_intervals_are_refused(tmp_path):
    def to_15m(manifest: dict) -> None:
        manifest["window"]["interval"] = "15m"

    other = edited_copy(MODELS / "lstm", tmp_path / "lstm-15m", to_15m)
    with pytest.raises(ConfigError) as refused:
        load_members((str(MODELS / "xgboost"), str(other)), FIVE_MINUTES_NS, None)
    message = str(refused.value)
    assert "differ in bar intervals" in message and "lstm-15m: 15m" in message
    assert "lstm-15m was trained on 15m bars, the strategy's bar type closes every 300 s" in message


def test_a_mismatched_ensemble_fails_the_backtest_with_a_config_error(sample_catalog, tmp_path):
    other = edited_copy(MODELS / "lstm", tmp_path / "lstm-other-fold", refit_ffd)
    params = {"models": [str(MODELS / "xgboost"), str(other)], "mode": "ensemble"}
    config = backtest_config(sample_catalog, params, end="2025-01-01T02:00:00Z")
    with pytest.raises(ConfigError, match=r"MLSignalStrategy .*refusing the models"):
        run_backtest(config, run_dir=tmp_path / "run")


def test_members_without_default_weights_need_explicit_weights():
    with pytest.raises(ConfigError, match=r"no default ensemble weight for \['mlp'\]"):
        load_members((str(MODELS / "xgboost"), str(MODELS / "mlp")), FIVE_MINUTES_NS, None)
    ensemble = load_members(
        (str(MODELS / "xgboost"), str(MODELS / "mlp")), FIVE_MINUTES_NS, {"xgboost": 1, "mlp": 1}
    )
    assert ensemble.window_bars == 20


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mode": "single"}, "mode 'single' needs exactly one model"),
        ({"models": [str(MODELS / "xgboost")]}, "mode 'ensemble' needs two or more models"),
        ({"models": [str(MODELS / "mlp")], "mode": "single", "require_agreement": True}, "ensemble' only"),
        ({"strong_probability": 1.5}, r"strong_probability must be in \(0, 1\]"),
        ({"hold_policy": "flat"}, "hold_policy"),
    ],
)
def test_invalid_params_are_a_config_error_before_the_run(sample_catalog, tmp_path, params, message):
    config = backtest_config(
        sample_catalog, {"models": [str(MODELS / "xgboost"), str(MODELS / "lstm")], **params}
    )
    with pytest.raises(ConfigError, match=message):
        run_backtest(config, run_dir=tmp_path)
