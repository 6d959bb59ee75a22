"""Plan a sweep into backtest tasks, run them on Ray (or a process pool), stream results to Parquet.

    plan = SweepPlan.build(sweep, base_config)      # windows, symbols, search points; nothing runs
    results = run_sweep(plan, sweep_dir, address=None, workers=None, progress=callback)

Execution: every backtest is one Ray task (`num_cpus=1`: one process per backtest) that reads the catalog
by the path in its config; the driver ships only the config dict and gets back one result row. Ray starts
in-process on this machine by default (`ray.init` with `workers` CPUs); `address` ("auto", "host:port",
"ray://host:port") joins an existing cluster, whose workers must have this package installed and see the
catalog path. Without Ray installed, a process pool runs the same tasks (said in the log).

Results: each finished task becomes one Parquet file `results/<key>.parquet` (written to a temporary name,
then renamed: a killed sweep leaves no half-written file), so the folder is a Parquet table that grows as
tasks finish. Rerunning the same sweep reads it and runs only the tasks whose key (a hash of the task's
full backtest config, phase and fold) has no row yet; failed tasks count as finished (`--retry-failed`
runs them again).

Search: grid (every point), random (seeded), or Optuna's TPE (asked in batches of `workers`, told as
results come; on resume the study is rebuilt from the finished rows). Walk-forward: every fold searches on
its train window; the best trial's parameters (by the sweep metric) are then run on the fold's test window;
the test windows' equity, stitched, is the walk-forward equity.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from itertools import product
from pathlib import Path
from typing import Any

import polars as pl

from qa_engine.config.loader import apply_override
from qa_engine.config.models import BacktestConfig
from qa_engine.errors import ConfigError
from qa_engine.logging import get_logger
from qa_engine.sweep.config import SweepConfig
from qa_engine.sweep.task import ROW_METRICS
from qa_engine.sweep.task import Task
from qa_engine.sweep.task import run_task

log = get_logger(__name__)
RESULTS_DIR = "results"


# --- planning ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    phase: str  # "search" | "test"
    fold: int
    start: datetime
    end: datetime


@dataclass
class SweepPlan:
    sweep: SweepConfig
    base: dict[str, Any]  # the base backtest config (validated, dumped to plain JSON types)
    symbols: list[str]  # [""]: the base's own instrument
    windows: list[Window]  # search windows (one per fold, or the whole range)
    test_windows: dict[int, Window] = field(default_factory=dict)  # walk-forward fold -> test window

    @classmethod
    def build(cls, sweep: SweepConfig, base: BacktestConfig) -> SweepPlan:
        data = base.data
        if sweep.walk_forward is None:
            windows = [Window("search", 0, data.start, data.end)]
            tests: dict[int, Window] = {}
        else:
            folds = sweep.walk_forward.folds(data.start, data.end)
            if not folds:
                raise ConfigError(
                    f"walk_forward: {sweep.walk_forward.train_days} + {sweep.walk_forward.test_days} days do "
                    f"not fit in the base config's {data.start:%Y-%m-%d} .. {data.end:%Y-%m-%d}"
                )
            windows = [Window("search", i, a, b) for i, (a, b, _c) in enumerate(folds)]
            tests = {i: Window("test", i, b, c) for i, (_a, b, c) in enumerate(folds)}
        raw = base.model_dump(mode="json")
        for index, space in enumerate(sweep.search.params):
            _check_path(raw, space.path, f"search.params.{index}")
        symbols = list(sweep.symbols) if sweep.symbols else [""]
        if sweep.symbols:
            instruments = {bars.instrument_id for bars in data.bars}
            if len(instruments) != 1:
                raise ConfigError(
                    f"symbols: the base config must trade one instrument, it has {sorted(instruments)}"
                )
        return cls(sweep, base.model_dump(mode="json"), symbols, windows, tests)

    @property
    def base_instrument(self) -> str:
        return self.base["data"]["bars"][0]["instrument_id"]

    def points(self) -> list[dict[str, Any]]:
        """Grid or random points (the same for every window and symbol); TPE asks as it goes."""
        search = self.sweep.search
        if search.method == "grid":
            grids = [p.grid() for p in search.params]
            return [
                {p.label: v for p, v in zip(search.params, combo, strict=True)} for combo in product(*grids)
            ]
        if search.method == "random":
            rng = random.Random(search.seed)
            return [{p.label: _sample(p, rng) for p in search.params} for _ in range(search.trials or 0)]
        return []

    def config_for(self, window: Window, symbol: str, params: dict[str, Any]) -> dict[str, Any]:
        """The trial's full backtest config: the base, its symbol, its window, its parameters."""
        raw = json.loads(json.dumps(self.base))
        if symbol:
            raw = json.loads(json.dumps(raw).replace(self.base_instrument, symbol))
            raw["id"] = f"{raw['id']}-{symbol.split('.')[0].lower()}"[:120]
        catalog = str(raw["data"]["catalog"])
        if "://" not in catalog:  # workers may start in another folder: give them an absolute path
            raw["data"]["catalog"] = str(Path(catalog).resolve())
        raw["data"]["start"] = window.start.isoformat()
        raw["data"]["end"] = window.end.isoformat()
        for space in self.sweep.search.params:
            apply_override(raw, f"{space.path}={json.dumps(params[space.label])}")
        return raw

    def task(self, window: Window, symbol: str, trial: int, params: dict[str, Any]) -> Task:
        config = self.config_for(window, symbol, params)
        bounds = (window.start.isoformat(), window.end.isoformat())
        return Task(window.phase, window.fold, symbol, trial, params, bounds, config)

    def search_tasks(self) -> list[Task]:
        points = self.points()
        return [
            self.task(window, symbol, trial, params)
            for window in self.windows
            for symbol in self.symbols
            for trial, params in enumerate(points)
        ]


def _check_path(raw: dict[str, Any], path: str, where: str) -> None:
    """The path's parent must exist in the base config (a typo would fail every trial alike)."""
    node: Any = raw
    keys = path.split(".")
    for depth, key in enumerate(keys[:-1]):
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            known = list(node) if isinstance(node, dict) else f"indexes 0..{len(node) - 1}"
            raise ConfigError(
                f"{where}.path '{path}': '{'.'.join(keys[: depth + 1])}' is not in the base config "
                f"(there: {known})"
            )


def _sample(space, rng: random.Random) -> Any:
    if space.values is not None:
        return rng.choice(space.values)
    if space.log:
        value = math.exp(rng.uniform(math.log(space.low), math.log(space.high)))
    else:
        value = rng.uniform(space.low, space.high)
    if space.step is not None:
        value = space.low + round((value - space.low) / space.step) * space.step
    return round(value) if space.is_integer else value


# --- results store -------------------------------------------------------------------------------------


class ResultStore:
    """`results/<key>.parquet`, one row each; the folder is the sweep's results table. The sweep folder is
    local, or an `s3://bucket/prefix` URI (workers elsewhere, results beside an S3 catalog): there each file
    is one PUT, which an object store applies whole or not at all, so no partial file is ever listed."""

    def __init__(self, sweep_dir: Path | str) -> None:
        from qa_engine.data.location import filesystem
        from qa_engine.data.location import is_remote

        self.remote = is_remote(str(sweep_dir))
        if self.remote:
            self.fs, root = filesystem(str(sweep_dir))
            self.folder: Path | str = f"{root.rstrip('/')}/{RESULTS_DIR}"
        else:
            self.folder = Path(sweep_dir) / RESULTS_DIR
            self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, row: dict[str, Any]) -> None:
        """One row, every file the same columns (so `pl.read_parquet("results/*.parquet")` reads them)."""
        row = {name: row.get(name) for name in _ROW_SCHEMA}
        frame = pl.DataFrame([row], schema=_ROW_SCHEMA, strict=False)
        if self.remote:
            buffer = io.BytesIO()
            frame.write_parquet(buffer)
            with self.fs.open(f"{self.folder}/{row['key']}.parquet", "wb") as handle:
                handle.write(buffer.getvalue())
            return
        partial = self.folder / f".{row['key']}.parquet.partial"
        frame.write_parquet(partial)
        os.replace(partial, self.folder / f"{row['key']}.parquet")

    def read(self) -> pl.DataFrame:
        if self.remote:
            files = sorted(self.fs.glob(f"{self.folder}/*.parquet"))
            frames = []
            for file in files:
                with self.fs.open(file, "rb") as handle:
                    frames.append(pl.read_parquet(io.BytesIO(handle.read())))
        else:
            frames = [pl.read_parquet(f) for f in sorted(self.folder.glob("*.parquet"))]
        if not frames:
            return pl.DataFrame(schema=_ROW_SCHEMA)
        return pl.concat(frames, how="vertical_relaxed")

    def finished(self, retry_failed: bool = False) -> set[str]:
        frame = self.read()
        if frame.is_empty():
            return set()
        if retry_failed:
            frame = frame.filter(pl.col("status") == "ok")
        return set(frame["key"].to_list())


_ROW_SCHEMA = {
    "key": pl.Utf8,
    "phase": pl.Utf8,
    "fold": pl.Int64,
    "symbol": pl.Utf8,
    "trial": pl.Int64,
    "params": pl.Utf8,
    "window_start": pl.Utf8,
    "window_end": pl.Utf8,
    "status": pl.Utf8,
    "error": pl.Utf8,
    "traceback": pl.Utf8,
    "host": pl.Utf8,
    "pid": pl.Int64,
    "bars": pl.Int64,
    "wall_secs": pl.Float64,
    **{metric: pl.Float64 for metric in ROW_METRICS},
    "days": pl.List(pl.Utf8),
    "equity": pl.List(pl.Float64),
}


# --- executors -----------------------------------------------------------------------------------------


class Executor:
    """Submit tasks, get finished rows back as they come."""

    name = "executor"
    slots = 1

    def submit(self, task: Task) -> None:
        raise NotImplementedError

    def finished(self, timeout: float) -> list[dict[str, Any]]:
        raise NotImplementedError

    @property
    def pending(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        return None


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None, workers: int | None) -> None:
        import ray

        self._ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                options["address"] = address
            else:  # "local": a new in-process cluster, never one that happens to run on this machine
                options.update(address="local", num_cpus=workers or os.cpu_count() or 1)
            ray.init(**options)
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        if workers:
            self.slots = min(self.slots, workers)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
        self._refs: list[Any] = []

    def submit(self, task: Task) -> None:
        self._refs.append(self._remote.remote(task))

    def finished(self, timeout: float) -> list[dict[str, Any]]:
        if not self._refs:
            return []
        done, self._refs = self._ray.wait(self._refs, num_returns=1, timeout=timeout)
        more, self._refs = self._ray.wait(self._refs, num_returns=len(self._refs), timeout=0)
        rows = []
        for ref in [*done, *more]:
            try:
                rows.append(self._ray.get(ref))
            except Exception as error:  # the worker process itself died (OOM, kill)
                rows.append({"status": "failed", "error": f"worker lost: {type(error).__name__}: {error}"})
        return rows

    @property
    def pending(self) -> int:
        return len(self._refs)

    def close(self) -> None:
        if self._started_here:
            self._ray.shutdown()


class PoolExecutor(Executor):
    """The fallback when Ray is not installed: a process pool on this machine."""

    name = "process-pool"

    def __init__(self, workers: int | None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.slots = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"))
        self._futures: list[Any] = []

    def submit(self, task: Task) -> None:
        self._futures.append(self._pool.submit(run_task, task))

    def finished(self, timeout: float) -> list[dict[str, Any]]:
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait

        if not self._futures:
            return []
        done, waiting = wait(self._futures, timeout=timeout, return_when=FIRST_COMPLETED)
        self._futures = list(waiting)
        rows = []
        for future in done:
            try:
                rows.append(future.result())
            except Exception as error:
                rows.append({"status": "failed", "error": f"worker lost: {type(error).__name__}: {error}"})
        return rows

    @property
    def pending(self) -> int:
        return len(self._futures)

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def make_executor(address: str | None, workers: int | None) -> Executor:
    try:
        import ray  # noqa: F401
    except ImportError:
        if address:
            raise ConfigError(
                f"--address {address}: Ray is not installed (pip install 'ray[default]')"
            ) from None
        log.warning("ray_unavailable", fallback="process pool")
        return PoolExecutor(workers)
    return RayExecutor(address, workers)


# --- running -------------------------------------------------------------------------------------------


@dataclass
class Progress:
    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0  # finished by an earlier run of the same sweep


def run_sweep(
    plan: SweepPlan,
    sweep_dir: Path | str,
    *,
    address: str | None = None,
    workers: int | None = None,
    retry_failed: bool = False,
    progress: Callable[[Progress], None] | None = None,
    executor: Executor | None = None,
) -> pl.DataFrame:
    """Run what is not finished yet; return the whole results table."""
    store = ResultStore(sweep_dir)
    finished = store.finished(retry_failed)
    own = executor is None
    executor = executor or make_executor(address, workers)
    try:
        for stage in _stages(plan, store):
            _run_stage(stage, plan, store, executor, finished, progress)
    finally:
        if own:
            executor.close()
    return store.read()


@dataclass
class _Stage:
    name: str
    tasks: list[Task] = field(default_factory=list)
    tpe_groups: list[tuple[Window, str]] = field(default_factory=list)


def _stages(plan: SweepPlan, store: ResultStore) -> Iterator[_Stage]:
    """Search first (every window); then, with walk-forward, each fold's best on its test window."""
    if plan.sweep.search.method == "tpe":
        yield _Stage("search", tpe_groups=[(w, s) for w in plan.windows for s in plan.symbols])
    else:
        yield _Stage("search", tasks=plan.search_tasks())
    if plan.test_windows:
        results = store.read()
        tests = []
        for fold, window in plan.test_windows.items():
            for symbol in plan.symbols:
                best = best_trial(results, plan.sweep, fold, symbol)
                if best is not None:
                    tests.append(plan.task(window, symbol, int(best["trial"]), json.loads(best["params"])))
        yield _Stage("test", tasks=tests)


def best_trial(results: pl.DataFrame, sweep: SweepConfig, fold: int, symbol: str) -> dict[str, Any] | None:
    """The search trial of `fold` and `symbol` with the best metric (ties: the lowest trial number)."""
    if results.is_empty() or sweep.metric not in results.columns:
        return None
    group = results.filter(
        (pl.col("phase") == "search")
        & (pl.col("fold") == fold)
        & (pl.col("symbol") == symbol)
        & (pl.col("status") == "ok")
        & pl.col(sweep.metric).is_not_null()
    )
    if group.is_empty():
        return None
    ordered = group.sort([sweep.metric, "trial"], descending=[sweep.maximize, False])
    return ordered.row(0, named=True)


def _run_stage(stage, plan, store, executor, finished, progress) -> None:
    if stage.tpe_groups:
        _run_tpe(stage, plan, store, executor, finished, progress)
        return
    state = Progress(total=len(stage.tasks))
    queue = []
    for task in stage.tasks:
        if task.key in finished:
            state.skipped += 1
        else:
            queue.append(task)
    _drain(queue, executor, store, state, progress)


def _drain(queue: list[Task], executor: Executor, store: ResultStore, state: Progress, progress) -> None:
    by_key = {task.key: task for task in queue}
    queue = list(queue)
    if progress is not None:
        progress(state)
    while queue or executor.pending:
        while queue and executor.pending < executor.slots * 2:  # keep every worker busy, little queued
            executor.submit(queue.pop(0))
        for row in executor.finished(timeout=1.0):
            row = _complete(row, by_key)
            store.write(row)
            state.done += 1
            state.failed += row["status"] != "ok"
            if row["status"] != "ok":
                log.warning(
                    "sweep_task_failed", key=row.get("key"), params=row.get("params"), error=row["error"]
                )
        if progress is not None:
            progress(state)


def _complete(row: dict[str, Any], by_key: dict[str, Task]) -> dict[str, Any]:
    """A row from a lost worker has no task fields: take them from the one task it can be."""
    if "key" not in row and len(by_key) == 1:
        row = {**next(iter(by_key.values())).describe(), **row}
    return row


def _run_tpe(stage, plan, store, executor, finished, progress) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = plan.sweep.search
    trials = search.trials or 0
    state = Progress(total=trials * len(stage.tpe_groups))
    results = store.read()
    for window, symbol in stage.tpe_groups:
        done = _group_rows(results, window, symbol)
        # seeded per fold and per resume point: a resumed study must not replay the first run's draws
        sampler = optuna.samplers.TPESampler(seed=search.seed + 1_000 * window.fold + len(done))
        study = optuna.create_study(
            direction="maximize" if plan.sweep.maximize else "minimize", sampler=sampler
        )
        distributions = {p.label: _distribution(p) for p in search.params}
        for row in done:  # a resumed study learns from the trials already run
            value = row.get(plan.sweep.metric)
            study.add_trial(
                optuna.trial.create_trial(
                    params=json.loads(row["params"]),
                    distributions=distributions,
                    value=value if row["status"] == "ok" and value is not None else None,
                    state=optuna.trial.TrialState.COMPLETE
                    if row["status"] == "ok" and value is not None
                    else optuna.trial.TrialState.FAIL,
                )
            )
        state.skipped += len(done)
        known = {row["key"]: row for row in done}
        next_trial = max((int(r["trial"]) for r in done), default=-1) + 1
        asked: dict[str, Any] = {}
        while next_trial < trials or asked:
            while next_trial < trials and len(asked) < executor.slots:
                trial = study.ask(distributions)
                task = plan.task(window, symbol, next_trial, dict(trial.params))
                next_trial += 1
                if task.key in known or task.key in asked:  # drawn before: its result is known or coming
                    value = known.get(task.key, {}).get(plan.sweep.metric)
                    if value is not None:
                        study.tell(trial, value)
                    else:
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    state.done += 1
                    continue
                asked[task.key] = trial
                executor.submit(task)
            for row in executor.finished(timeout=1.0):
                store.write(row)
                known[row["key"]] = row
                trial = asked.pop(row["key"])
                value = row.get(plan.sweep.metric)
                if row["status"] == "ok" and value is not None:
                    study.tell(trial, value)
                else:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                state.done += 1
                state.failed += row["status"] != "ok"
            if progress is not None:
                progress(state)


def _group_rows(results: pl.DataFrame, window: Window, symbol: str) -> list[dict[str, Any]]:
    if results.is_empty():
        return []
    return results.filter(
        (pl.col("phase") == window.phase) & (pl.col("fold") == window.fold) & (pl.col("symbol") == symbol)
    ).to_dicts()


def _distribution(space):
    from optuna.distributions import CategoricalDistribution
    from optuna.distributions import FloatDistribution
    from optuna.distributions import IntDistribution

    if space.values is not None:
        return CategoricalDistribution(list(space.values))
    if space.is_integer:
        step = int(space.step) if space.step and not space.log else 1
        return IntDistribution(int(space.low), int(space.high), step=step, log=space.log)
    return FloatDistribution(space.low, space.high, step=None if space.log else space.step, log=space.log)
