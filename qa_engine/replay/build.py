"""Batch signal generation: the records the streaming actors would publish, computed over the catalog.

`build_signals(request)` loads the bars of one instrument and interval, computes in batch the fitted
feature set of every given artifact (qa_engine.features: equal to the streaming engine within 1e-9),
runs the SAME ONNX artifacts and writes Forecast, Regime and FeatureVector records into the catalog
(`qa_engine.replay.store`). A backtest then replays them instead of running the model actors
(`[[data.signals]]` in a run config), which is what makes long backtests fast.

The streaming rules it reproduces (actors/feature_actor.py, actors/oracle_actor.py,
actors/guardian_actor.py), for a stream that starts at the first bar loaded here:
- bars are split at gaps (close times further apart than the interval); the feature engine restarts
  at each, and a FeatureVector is `warm` from the set's warm-up'th bar of its gap-free segment on;
  before that its values are NaN where a feature is still warming up (FeatureActor publishes those too);
- a model consumes only the vectors of its own fitted set, in a window of its `encoder_bars` that a
  gap, a cold vector or one holding NaN/inf empties (actors/model_actor.py `FeatureWindow`): a
  Forecast / Regime exists at bar t only if the window ending at t is full, i.e. (without NaN) t is
  at least warm-up + window - 2 bars into its segment (`window_runs`);
- the Guardian's persistence filter runs sequentially over every full window from the first bar
  loaded (its state at --start depends on the bars before), restarting cold with the first full
  window after each break, as GuardianActor does;
- every record is stamped ts_event = the bar's close, ts_init = the bar's ts_init.

Warm-up history: with --start, bars from `history_bars` before it are loaded (default: twice the
largest feature warm-up plus the largest window), so records exist from --start on. The records then
equal those of a streamed run whose bars begin at that first loaded bar. A stream that starts at
another bar agrees only as far as EMA-type features have forgotten their seed (exponentially); the
parity tests (tests/integration/test_replay_parity.py) compare runs that start at the same bar.

Inference. The Oracle runs in batches of windows when that gives the very same numbers as one call
per window (onnxruntime's CPU kernels do not depend on the batch size for this graph; checked on the
first batch of every build, with a fallback to one call per window otherwise). The Guardian's
probabilities are batched the same way; its persistence filter (`GuardianOnline.tracker`) then runs
bar by bar, exactly as in the actor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa

from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.features.spec import FeatureSet
from qa_engine.inference.artifact import Artifact
from qa_engine.inference.runner import OnnxRunner
from qa_engine.replay import store

ProgressCallback = Callable[[str, int, int], None]  # (stage, done, total)
FeatureVectorChoice = Literal["needed", "all", "none"]
STREAMING_INPUTS = frozenset({"ohlcv"})  # what FeatureActor's engine is built with (bars: OHLCV only)


def _no_progress(stage: str, done: int, total: int) -> None:
    """The default progress callback: report nothing."""


def model_id_of(artifact: Artifact) -> str:
    """The id the model actors stamp on their records by default: the manifest's model name and the
    first 12 hex digits of the model file's sha256."""
    manifest = artifact.manifest
    return f"{manifest.model_name}-{manifest.model_sha256[:12]}"


@dataclass(frozen=True)
class SignalsRequest:
    """What `qa signals build` asks for (paths, times in ns since the epoch, UTC)."""

    catalog: Path
    instrument_id: str
    interval: str
    oracle: Path | None = None
    guardian: Path | None = None
    strategist: Path | None = None
    start_ns: int | None = None  # first bar close to write records for; None: the catalog's first bar
    end_ns: int | None = None  # last bar close (inclusive); None: the catalog's last bar
    history_bars: int | None = None  # bars loaded before start_ns for the warm-up; None: derived
    feature_vectors: FeatureVectorChoice = "needed"  # needed: the strategist's set; all: every model's
    replace: bool = False
    batch_windows: int = 64
    threads: int = 1


@dataclass(frozen=True)
class ModelPlan:
    """One artifact to run (or, for the strategist, whose feature set to write)."""

    role: Literal["oracle", "guardian", "strategist"]
    artifact: Artifact
    feature_set: FeatureSet  # the fitted set (its hash is what FeatureVectors carry)
    warmup_bars: int  # of the set as the streaming engine resolves it
    window_bars: int
    model_id: str


@dataclass
class SignalsResult:
    bars_loaded: int
    first_bar_ns: int
    last_bar_ns: int
    segments: int
    records: dict[str, int] = field(default_factory=dict)  # "Forecast <model_id>" -> count
    replaced: dict[str, int] = field(default_factory=dict)
    secs: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    batched: dict[str, bool] = field(default_factory=dict)  # model_id -> batched inference used


# ---- the streaming rules as array functions ---------------------------------------------------


def segment_positions(ts: np.ndarray, interval_ns: int) -> np.ndarray:
    """Each bar's index inside its gap-free segment (0 at the first bar and after every gap)."""
    count = len(ts)
    index = np.arange(count)
    starts = np.ones(count, dtype=bool)
    starts[1:] = np.diff(ts) != interval_ns
    return index - np.maximum.accumulate(np.where(starts, index, 0))


def window_runs(ts: np.ndarray, interval_ns: int, usable: np.ndarray) -> np.ndarray:
    """How many consecutive usable vectors end at each bar (0 where the vector is not usable).

    The actors' window (actors/model_actor.py `FeatureWindow`): a vector that is not warm or holds
    NaN/inf empties it, a gap restarts it with the vector after the gap. A model runs at bar t when
    the run at t reaches its window length; the first full window of a run is where the Guardian's
    persistence filter starts cold.
    """
    count = len(ts)
    index = np.arange(count)
    starts = usable.copy()
    if count > 1:
        starts[1:] &= (np.diff(ts) != interval_ns) | ~usable[:-1]
    last_start = np.maximum.accumulate(np.where(starts, index, -1))
    return np.where(usable, index - last_start + 1, 0)


def predict_windows(
    runner: OnnxRunner,
    features: np.ndarray,
    ends: np.ndarray,
    window_bars: int,
    batch_windows: int,
    progress: ProgressCallback,
    stage: str,
) -> tuple[np.ndarray, bool]:
    """Outputs for the windows of `features` (N, F) ending at rows `ends`, oldest bar first.

    Batches of `batch_windows` are used if the first batch equals one call per window bit for bit;
    otherwise every window gets its own call. Returns (outputs, batched).
    """
    if len(ends) == 0:
        return np.empty((0, *runner.manifest.outputs[0].shape[1:])), True
    view = np.lib.stride_tricks.sliding_window_view(features, (window_bars, features.shape[1]))[:, 0]
    first = ends[: max(1, batch_windows)]
    first_windows = view[first - window_bars + 1]  # (B, E, F)
    batched_first = runner.predict_batch(first_windows)
    single_first = np.stack([runner.predict(window) for window in first_windows])
    batched = bool(np.array_equal(batched_first, single_first))
    outputs = np.empty((len(ends), *single_first.shape[1:]), dtype=single_first.dtype)
    outputs[: len(first)] = single_first
    progress(stage, len(first), len(ends))
    step = batch_windows if batched else 1
    for offset in range(len(first), len(ends), step):
        rows = ends[offset : offset + step]
        windows = view[rows - window_bars + 1]
        outputs[offset : offset + len(rows)] = (
            runner.predict_batch(windows) if batched else runner.predict(windows[0])[None]
        )
        if (offset // step) % 16 == 0 or offset + step >= len(ends):
            progress(stage, min(offset + step, len(ends)), len(ends))
    return outputs, batched


# ---- loading ------------------------------------------------------------------------------------


def plan_models(request: SignalsRequest) -> list[ModelPlan]:
    """Load and check every given artifact (the checks the actors make in on_start)."""
    from qa_engine.features.sets import get_feature_set
    from qa_engine.inference.artifact import load_artifact
    from qa_engine.inference.guardian import load_guardian_artifact

    plans = []
    for role, folder in (
        ("oracle", request.oracle),
        ("guardian", request.guardian),
        ("strategist", request.strategist),
    ):
        if folder is None:
            continue
        if not Path(folder).is_dir():
            raise ConfigError(f"--{role} {folder}: no such artifact folder")
        loader = load_guardian_artifact if role == "guardian" else load_artifact
        artifact = loader(Path(folder), interval=request.interval)
        if artifact.manifest.model_kind != role:
            raise ConfigError(
                f"--{role} {folder} holds a '{artifact.manifest.model_kind}' model, not a {role}"
            )
        artifact.check_registered(get_feature_set(artifact.manifest.feature_set.name))
        feature_set = artifact.feature_set()
        resolved = feature_set.resolve(STREAMING_INPUTS)
        plans.append(
            ModelPlan(
                role=role,  # type: ignore[arg-type]
                artifact=artifact,
                feature_set=feature_set,
                warmup_bars=resolved.warmup_bars,
                window_bars=artifact.manifest.window.encoder_bars,
                model_id=model_id_of(artifact),
            )
        )
    if not plans:
        raise ConfigError("give at least one artifact: --oracle, --guardian or --strategist")
    return plans


def default_history_bars(plans: list[ModelPlan]) -> int:
    """Bars before --start that feed the warm-up: twice the largest feature warm-up plus the largest
    window, so records exist from --start on and EMA-type features have forgotten their seed."""
    return 2 * max(plan.warmup_bars for plan in plans) + max(plan.window_bars for plan in plans)


def load_bars(
    catalog: Path, instrument_id: str, interval: str, start_ns: int | None, end_ns: int | None
) -> pl.DataFrame:
    """Bars as a table: ts (= ts_event, the close), ts_init, OHLCV; from the catalog's bar files."""
    import pyarrow.dataset as ds

    from qa_engine.data.catalog import bar_directory_of
    from qa_engine.features.io import load_catalog_bars

    bars, bar_type = load_catalog_bars(catalog, instrument_id, interval, start_ns, end_ns)
    stamps = ds.dataset(str(bar_directory_of(catalog, bar_type)), format="parquet").to_table(
        columns=["ts_event", "ts_init"]
    )
    stamps_frame = pl.from_arrow(stamps).rename({"ts_event": "ts"}).cast(pl.Int64).unique("ts", keep="first")
    joined = bars.join(stamps_frame, on="ts", how="left")
    if joined.get_column("ts_init").null_count():
        raise DataError(f"{catalog}: bar files of {bar_type} disagree with its query results (ts_init)")
    return joined


# ---- the build ----------------------------------------------------------------------------------


def _output_rows(ts: np.ndarray, start_ns: int | None, end_ns: int | None) -> np.ndarray:
    mask = np.ones(len(ts), dtype=bool)
    if start_ns is not None:
        mask &= ts >= start_ns
    if end_ns is not None:
        mask &= ts <= end_ns
    return mask


def _check_conflicts(
    request: SignalsRequest, keys: list[tuple[str, str]], start_ns: int, end_ns: int
) -> None:
    """Refuse before any work if the catalog already holds records of these keys in the range."""
    if request.replace:
        return
    found = []
    for type_name, key in keys:
        count = store.count_records(request.catalog, type_name, request.instrument_id, key, start_ns, end_ns)
        if count:
            found.append(f"{count:,} {type_name} records of '{key}'")
    if found:
        raise DataError(
            f"the catalog {request.catalog} already holds {'; '.join(found)} for {request.instrument_id} "
            "in the requested range; pass --replace to rewrite them (nothing was computed or written)"
        )


def build_signals(request: SignalsRequest, progress: ProgressCallback | None = None) -> SignalsResult:
    """Compute and write the signal records; see the module docstring for the rules."""
    from qa_engine.features.batch import compute_features_batch
    from qa_engine.features.io import interval_ns as parse_interval_ns

    report = progress or _no_progress
    secs: dict[str, float] = {}
    began = time.perf_counter()
    step_ns = parse_interval_ns(request.interval)
    if request.start_ns is not None and request.end_ns is not None and request.end_ns < request.start_ns:
        raise ConfigError("--end is before --start")
    plans = plan_models(request)
    history = request.history_bars if request.history_bars is not None else default_history_bars(plans)
    if history < 0:
        raise ConfigError(f"--history-bars must be >= 0, got {history}")
    load_start = None if request.start_ns is None else request.start_ns - history * step_ns
    secs["load_models"] = time.perf_counter() - began

    # Which record sets will be written: checked against the catalog before any work.
    by_role = {plan.role: plan for plan in plans}
    vector_sets: dict[str, FeatureSet] = {}
    if request.feature_vectors == "all":
        vector_sets = {plan.feature_set.hash: plan.feature_set for plan in plans}
    elif request.feature_vectors == "needed" and "strategist" in by_role:
        vector_sets = {by_role["strategist"].feature_set.hash: by_role["strategist"].feature_set}
    keys = [("FeatureVector", fs_hash) for fs_hash in vector_sets]
    keys += [("Forecast", by_role["oracle"].model_id)] if "oracle" in by_role else []
    keys += [("Regime", by_role["guardian"].model_id)] if "guardian" in by_role else []

    started = time.perf_counter()
    report("load bars", 0, 1)
    bars = load_bars(request.catalog, request.instrument_id, request.interval, load_start, request.end_ns)
    report("load bars", 1, 1)
    ts = bars.get_column("ts").to_numpy()
    ts_init = bars.get_column("ts_init").to_numpy()
    positions = segment_positions(ts, step_ns)
    output = _output_rows(ts, request.start_ns, request.end_ns)
    if not output.any():
        raise DataError(f"the catalog has no {request.interval} bars of {request.instrument_id} in the range")
    out_first, out_last = int(ts[output][0]), int(ts[output][-1])
    range_start = out_first if request.start_ns is None else request.start_ns
    range_end = out_last if request.end_ns is None else request.end_ns
    _check_conflicts(request, keys, range_start, range_end)
    secs["load_bars"] = time.perf_counter() - started

    result = SignalsResult(
        bars_loaded=len(ts),
        first_bar_ns=int(ts[0]),
        last_bar_ns=int(ts[-1]),
        segments=int(np.count_nonzero(positions == 0)),
    )
    started = time.perf_counter()
    models = [plan for plan in plans if plan.role != "strategist"]  # the strategist runs in the strategy
    feature_sets = {plan.feature_set.hash: plan.feature_set for plan in models} | vector_sets
    features: dict[str, np.ndarray] = {}
    for done, (fs_hash, feature_set) in enumerate(feature_sets.items()):
        report("features", done, len(feature_sets))
        table = compute_features_batch(
            bars.select("ts", "open", "high", "low", "close", "volume"), feature_set, step_ns
        )
        features[fs_hash] = table.select(feature_set.names).to_numpy().astype(np.float64)  # null -> NaN
    report("features", len(feature_sets), len(feature_sets))
    secs["features"] = time.perf_counter() - started

    tables: list[tuple[str, str, pa.Table]] = []
    rows = np.flatnonzero(output)
    for fs_hash, feature_set in vector_sets.items():
        warmup = feature_set.resolve(STREAMING_INPUTS).warmup_bars
        columns = {
            "instrument_id": request.instrument_id,
            "feature_set_hash": fs_hash,
            "values_f8": features[fs_hash][rows],
            "warm": positions[rows] >= warmup - 1,
        }
        table = store.records_table("FeatureVector", columns, ts[rows], ts_init[rows])
        tables.append(("FeatureVector", fs_hash, table))
    stamps = (ts, ts_init, positions, output, step_ns)
    for role, make_records in (("oracle", _forecast_records), ("guardian", _regime_records)):
        if role in by_role:
            started = time.perf_counter()
            plan = by_role[role]
            type_name, table, batched = make_records(
                request, plan, features[plan.feature_set.hash], stamps, report
            )
            tables.append((type_name, plan.model_id, table))
            result.batched[plan.model_id] = batched
            secs[role] = time.perf_counter() - started

    started = time.perf_counter()
    for done, (type_name, key, table) in enumerate(tables):
        report("write", done, len(tables))
        result.replaced[f"{type_name} {key}"] = store.write_records(
            request.catalog,
            type_name,
            request.instrument_id,
            key,
            table,
            range_start,
            range_end,
            request.replace,
        )
        result.records[f"{type_name} {key}"] = table.num_rows
    report("write", len(tables), len(tables))
    secs["write"] = time.perf_counter() - started
    secs["total"] = time.perf_counter() - began
    result.secs = secs
    return result


Stamps = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]  # ts, ts_init, positions, output, step


def _model_runs(plan: ModelPlan, features: np.ndarray, stamps: Stamps) -> np.ndarray:
    """`window_runs` of the vectors this model consumes: warm (the set's warm-up reached in the
    segment, as FeatureVector.warm says) and finite."""
    ts, _, positions, _, step_ns = stamps
    usable = (positions >= plan.warmup_bars - 1) & np.isfinite(features).all(axis=1)
    return window_runs(ts, step_ns, usable)


def _forecast_records(
    request: SignalsRequest, plan: ModelPlan, features: np.ndarray, stamps: Stamps, report: ProgressCallback
) -> tuple[str, pa.Table, bool]:
    """Forecast records at every output bar whose Oracle window is full (the Oracle keeps no state)."""
    ts, ts_init, _, output, _ = stamps
    runner = OnnxRunner(plan.artifact, threads=request.threads)
    ends = np.flatnonzero(output & (_model_runs(plan, features, stamps) >= plan.window_bars))
    values, batched = predict_windows(
        runner, features, ends, plan.window_bars, request.batch_windows, report, "oracle"
    )
    manifest = plan.artifact.manifest
    columns = {
        "instrument_id": request.instrument_id,
        "model_id": plan.model_id,
        "horizon_bars": manifest.window.horizon_bars,
        "quantiles_f8": np.asarray(manifest.oracle.quantiles, dtype=np.float64),
        "values_f8": values.astype(np.float64),  # (N, H, Q) log returns
    }
    return "Forecast", store.records_table("Forecast", columns, ts[ends], ts_init[ends]), batched


def _regime_records(
    request: SignalsRequest, plan: ModelPlan, features: np.ndarray, stamps: Stamps, report: ProgressCallback
) -> tuple[str, pa.Table, bool]:
    """Regime records: probabilities for every full window from the first loaded bar (the persistence
    state at --start depends on them), the actor's own tracker bar by bar, cold after each gap."""
    from qa_engine.inference.guardian import GuardianOnline

    ts, ts_init, _, output, _ = stamps
    online = GuardianOnline(plan.artifact, threads=request.threads)
    runs = _model_runs(plan, features, stamps)
    ends = np.flatnonzero(runs >= plan.window_bars)
    probabilities, batched = predict_windows(
        online.runner, features, ends, plan.window_bars, request.batch_windows, report, "guardian"
    )
    probabilities = probabilities.astype(np.float64)  # (N, K), as GuardianOnline.update casts them
    regimes = np.empty(len(ends), dtype=np.int64)
    for row, (end, vector) in enumerate(zip(ends, probabilities, strict=True)):
        if runs[end] == plan.window_bars:  # first full window after a break: the actor starts cold
            online.reset()
        regimes[row] = online.tracker.update(vector)
    keep = output[ends]
    kept = ends[keep]
    columns = {
        "instrument_id": request.instrument_id,
        "model_id": plan.model_id,
        "regime_id": regimes[keep],
        "probabilities_f8": probabilities[keep],
        "risk_scale": online.regimes.risk_scale[regimes[keep]].astype(np.float64),
    }
    return "Regime", store.records_table("Regime", columns, ts[kept], ts_init[kept]), batched
