"""Single-window inference latency of a model artifact with onnxruntime on one thread (warm), against
a trivial ONNX graph with the same input and output shapes measured in the same run.

    .venv/bin/python bench/bench_inference.py [--artifact artifacts/oracle] [--calls 3000] [--rounds 5]
    .venv/bin/python bench/bench_inference.py --artifact artifacts/guardian
    .venv/bin/python bench/bench_inference.py --artifact artifacts/strategist
    .venv/bin/python bench/bench_inference.py --artifact artifacts/baselines/models/xgboost  # lstm, mlp

Every artifact kind: Oracle, Guardian, baseline (XGBoost / LSTM / MLP) and Strategist. Three timings
per call: the bare `session.run` of the artifact, what a trading component calls (Oracle, Guardian,
baseline: `OnnxRunner.predict`, i.e. shape and NaN checks + scaling + output scaling; Strategist:
`StrategistPolicy.act()` on a full context, i.e. `session.run` of its four inputs + the softmax), and
`session.run` of the trivial graph (onnxruntime's fixed cost per call on this machine). The last line
prints the overhead of the caller's path as a ratio over the bare `session.run`, both measured in the
same run. Rounds alternate between them so that a busy
machine slows all three alike. Wall-clock percentiles (microseconds) plus the CPU time of the calling
thread (robust to other processes), and the load average, are printed; --json writes them too.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from qa_engine.inference.artifact import load_artifact
from qa_engine.inference.runner import OnnxRunner

ROOT = Path(__file__).resolve().parents[1]


def trivial_graph(
    path: Path,
    input_shape: list[int],
    output_shape: list[int],
    input_name: str = "features",
    output_name: str = "quantiles",
) -> None:
    """features (1, E, F) -> mean over bars -> first prod(output_shape[1:]) values -> (1, *output_shape[1:]):
    a few cheap nodes, with the artifact's input and (first) output names."""
    import onnx
    from onnx import TensorProto
    from onnx import helper

    count = int(np.prod(output_shape[1:]))
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], axes=[1], keepdims=0),
        helper.make_node("Slice", ["mean", "starts", "ends", "slice_axes"], ["head"]),
        helper.make_node("Reshape", ["head", "shape"], [output_name]),
    ]
    initialisers = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [count]),
        helper.make_tensor("slice_axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("shape", TensorProto.INT64, [len(output_shape)], [-1, *output_shape[1:]]),
    ]
    graph = helper.make_graph(
        nodes,
        "trivial",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", *input_shape[1:]])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", *output_shape[1:]])],
        initialisers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # the IR of opset 17; onnx >= 1.23 writes a newer one than onnxruntime reads
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def time_calls(call, calls: int) -> tuple[np.ndarray, np.ndarray]:
    wall = np.empty(calls)
    cpu = np.empty(calls)
    for index in range(calls):
        started_cpu = time.thread_time_ns()
        started = time.perf_counter_ns()
        call()
        wall[index] = time.perf_counter_ns() - started
        cpu[index] = time.thread_time_ns() - started_cpu
    return wall / 1_000.0, cpu / 1_000.0


def summary(wall: np.ndarray, cpu: np.ndarray) -> dict[str, float]:
    return {
        "p50_us": float(np.percentile(wall, 50)),
        "p90_us": float(np.percentile(wall, 90)),
        "p99_us": float(np.percentile(wall, 99)),
        "max_us": float(wall.max()),
        "cpu_p50_us": float(np.percentile(cpu, 50)),
        "cpu_p99_us": float(np.percentile(cpu, 99)),
        "calls": len(wall),
    }


def load_any(folder: Path):
    """The checked artifact of any kind (a baseline has its own manifest schema and loader)."""
    kind = json.loads((folder / "manifest.json").read_text())["model_kind"]
    if kind == "baseline":
        from qa_engine.inference.baseline import load_baseline_artifact

        return load_baseline_artifact(folder)
    return load_artifact(folder)


def trivial_session(folder: Path, input_record, output_record, input_shape: list[int]):
    from qa_engine.models.export import onnx_session

    path = folder / "trivial.onnx"
    trivial_graph(path, input_shape, [1, *output_record.shape[1:]], input_record.name, output_record.name)
    return onnx_session(path, threads=1)


def artifact_cases(folder: Path):
    """(manifest, cases_of(work folder) -> {name: call}): the trivial graph, the bare session.run and
    the caller's path of the artifact, one window each."""
    artifact = load_any(folder)
    manifest = artifact.manifest
    rng = np.random.default_rng(0)
    if manifest.model_kind == "strategist":
        return manifest, lambda work: strategist_cases(folder, work, rng)
    runner = OnnxRunner(artifact, threads=1)
    encoder_bars, n_features = runner.window_shape
    # A realistic raw window: the training means plus one std of noise (values only feed the timing).
    raw = np.asarray(manifest.scaler.mean) + np.asarray(manifest.scaler.std) * rng.standard_normal(
        (encoder_bars, n_features)
    )
    scaled = runner.scaler.transform(raw[None]).astype(np.float32)

    def cases_of(work: Path) -> dict:
        trivial = trivial_session(
            work, manifest.inputs[0], manifest.outputs[0], [1, encoder_bars, n_features]
        )
        name = runner.input_name
        return {
            "trivial graph, session.run (baseline)": lambda: trivial.run(None, {name: scaled}),
            f"{manifest.model_name}, session.run": lambda: runner.run_scaled(scaled),
            f"{manifest.model_name}, OnnxRunner.predict": lambda: runner.predict(raw),
        }

    return manifest, cases_of


def strategist_cases(folder: Path, work: Path, rng: np.random.Generator) -> dict:
    """The Strategist: its context filled with K random bars, then the four-input session.run and
    `StrategistPolicy.act()` (what TrinityStrategy calls per bar) on that context."""
    from qa_engine.inference.strategist import OUTPUT_NAME
    from qa_engine.inference.strategist import StrategistPolicy

    policy = StrategistPolicy(folder, threads=1)
    manifest = policy.manifest
    n_features = len(policy.feature_names)
    close, ts = 40_000.0, 0
    ready = False
    while not ready:
        row = close * (1.0 + 0.001 * rng.standard_normal(n_features))  # price-like values, finite
        ready = policy.observe(row, close, ts)
        policy.commit(policy.flat_action)
        ts += policy.interval_ns
    ready = policy.observe(row, close, ts)  # the bar whose proposal is timed (left uncommitted)
    policy.act()  # observe() defers the context's buffers to the next act(): this one writes them
    inputs = dict(policy._inputs)
    states = next(record for record in manifest.inputs if record.name == "states")
    trivial = trivial_session(work, states, manifest.outputs[0], [1, *states.shape[1:]])
    session = policy.session
    return {
        "trivial graph, session.run (baseline)": lambda: trivial.run(None, {"states": inputs["states"]}),
        f"{manifest.model_name}, session.run": lambda: session.run([OUTPUT_NAME], inputs),
        f"{manifest.model_name}, StrategistPolicy.act": policy.act,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact", type=Path, default=ROOT / "artifacts" / "oracle")
    parser.add_argument("--calls", type=int, default=3_000, help="timed calls per round and case")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    manifest, cases_of = artifact_cases(args.artifact)
    with tempfile.TemporaryDirectory() as folder:
        cases = cases_of(Path(folder))
        for call in cases.values():
            time_calls(call, args.warmup)
        load_before = os.getloadavg()
        timings: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, call in cases.items():
                timings[name].append(time_calls(call, args.calls))
        load_after = os.getloadavg()
    results = {
        name: summary(np.concatenate([w for w, _ in runs]), np.concatenate([c for _, c in runs]))
        for name, runs in timings.items()
    }
    print(
        f"artifact: {args.artifact} ({manifest.model_kind}, input {manifest.inputs[0].shape}, "
        f"output {manifest.outputs[0].shape}); onnxruntime, 1 intra-op thread, batch 1, warm"
    )
    print(
        f"load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f} "
        f"on {os.cpu_count()} CPUs"
    )
    columns = ("p50 us", "p90 us", "p99 us", "max us", "CPU p50", "CPU p99")
    header = f"{'case':48s} " + " ".join(f"{c:>8s}" for c in columns)
    print(header)
    for name, values in results.items():
        print(
            f"{name:48s} {values['p50_us']:8.1f} {values['p90_us']:8.1f} {values['p99_us']:8.1f} "
            f"{values['max_us']:9.1f} {values['cpu_p50_us']:8.1f} {values['cpu_p99_us']:8.1f}"
        )
    names = list(results)
    bare, caller, trivial_name = results[names[1]], results[names[2]], names[0]
    ratio = caller["p50_us"] / bare["p50_us"]
    cpu_ratio = caller["cpu_p50_us"] / bare["cpu_p50_us"]
    print(
        f"caller's path / bare session.run (p50 wall): {ratio:.3f}x, CPU {cpu_ratio:.3f}x "
        f"(+{caller['p50_us'] - bare['p50_us']:.1f} us per call); bare session.run / trivial graph: "
        f"{bare['p50_us'] / results[trivial_name]['p50_us']:.2f}x"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"results": results, "load_average": [load_before, load_after], "caller_over_bare": ratio},
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
