"""Single-sample inference latency of the baseline classifiers on one thread.

    .venv/bin/python bench/bench_baselines.py [--models artifacts/baselines/models]
        [--booster runs/baselines/folds/2025-12/xgboost/booster.json] [--iterations 5000] [--json FILE]

For the LSTM, MLP and XGBoost artifacts: onnxruntime `session.run` on one (1, E, F) window (1 intra-op
thread, sequential), and the whole `BaselineClassifier.probabilities` call (raw features -> scaling ->
onnxruntime -> float64), p50/p99/max in microseconds over --iterations calls after a warm-up. The
window is real: the default feature set over the last bars of data/klines' Bybit BTCUSDT 5m file.
Baselines in the same run: a trivial ONNX graph on the same input (Flatten -> MatMul -> Softmax,
the floor of one onnxruntime call of that size), and, if --booster points to the run's booster.json,
xgboost's own `inplace_predict` on one row. Target: <= 500 us p99. The machine is shared: read the
load average it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "klines"  # see data/klines/PROVENANCE.md


def real_window(feature_set, bars_needed: int) -> np.ndarray:
    """(bars_needed, F) raw features of the most recent real Bybit BTCUSDT 5m bars."""
    from qa_engine.features.build import build_feature_table
    from qa_engine.features.io import interval_ns
    from qa_engine.features.io import load_kline_file

    bars = load_kline_file(DATA / "bybit_linear_BTCUSDT_5m.parquet", "5m").tail(feature_set.warmup_bars + 400)
    table = build_feature_table(bars, feature_set, interval_ns("5m")).table
    return table.select(list(feature_set.names)).to_numpy()[-bars_needed:]


def timings_us(call, iterations: int, warmup: int = 200) -> dict[str, float]:
    for _ in range(warmup):
        call()
    samples = np.empty(iterations)
    for index in range(iterations):
        started = time.perf_counter_ns()
        call()
        samples[index] = time.perf_counter_ns() - started
    samples /= 1e3
    return {
        "p50_us": float(np.percentile(samples, 50)),
        "p99_us": float(np.percentile(samples, 99)),
        "max_us": float(samples.max()),
        "mean_us": float(samples.mean()),
    }


def trivial_session(window_bars: int, n_features: int):
    """Flatten -> MatMul (zeros) -> Softmax on a (1, E, F) input: the cost of any onnxruntime call."""
    import onnx
    from onnx import TensorProto
    from onnx import helper
    from onnx import numpy_helper

    from qa_engine.models.export import onnx_session

    weights = numpy_helper.from_array(np.zeros((window_bars * n_features, 3), dtype=np.float32), "weights")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["features"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "trivial",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", window_bars, n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnxruntime 1.31 reads IR <= 13; onnx 1.23 writes 14 by default
    path = Path(os.environ.get("TMPDIR", "/tmp")) / "qa_bench_trivial.onnx"
    onnx.save(model, str(path))
    return onnx_session(path, threads=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "artifacts" / "baselines" / "models")
    parser.add_argument("--booster", type=Path, default=None, help="xgboost booster.json of the same run")
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from qa_engine.inference.baseline import BaselineClassifier
    from qa_engine.inference.baseline import load_baseline_artifact

    classifiers = {
        family: BaselineClassifier(load_baseline_artifact(args.models / family), threads=1)
        for family in ("lstm", "mlp", "xgboost")
    }
    feature_set = load_baseline_artifact(args.models / "lstm").feature_set()
    window_bars = max(c.window_bars for c in classifiers.values())
    window = real_window(feature_set, window_bars)  # (E, F) raw
    results: dict[str, dict[str, float]] = {"_meta": {"load_average_1m": os.getloadavg()[0]}}
    n_features = window.shape[1]
    for bars in sorted({c.window_bars for c in classifiers.values()}, reverse=True):
        session = trivial_session(bars, n_features)
        sample = np.zeros((1, bars, n_features), dtype=np.float32)
        results[f"trivial_onnx_{bars}x{n_features}"] = timings_us(
            lambda s=session, x=sample: s.run(None, {"features": x}), args.iterations
        )
    for family, classifier in classifiers.items():
        scaled = classifier.runner.scaler.transform(window[-classifier.window_bars :][None]).astype(
            np.float32
        )
        results[f"{family}_onnxruntime"] = timings_us(
            lambda c=classifier, x=scaled: c.runner.run_scaled(x), args.iterations
        )
        results[f"{family}_end_to_end"] = timings_us(
            lambda c=classifier: c.probabilities(window), args.iterations
        )
    if args.booster is not None and args.booster.is_file():
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(str(args.booster))
        booster.set_param({"nthread": 1})
        xgb_classifier = classifiers["xgboost"]
        row = xgb_classifier.runner.scaler.transform(window[-1:]).astype(np.float32)  # (1, F)
        results["xgboost_native_inplace_predict"] = timings_us(
            lambda: booster.inplace_predict(row), args.iterations
        )
    width = max(len(name) for name in results)
    print(
        f"load average (1 min): {results['_meta']['load_average_1m']:.2f}; "
        f"{args.iterations} calls each, 1 thread"
    )
    print(f"{'call':<{width}}  {'p50 us':>8}  {'p99 us':>8}  {'max us':>9}")
    for name, values in results.items():
        if name.startswith("_"):
            continue
        print(f"{name:<{width}}  {values['p50_us']:8.1f}  {values['p99_us']:8.1f}  {values['max_us']:9.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
