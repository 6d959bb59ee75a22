"""The joint out-of-sample evaluation of the trained stack (the pipeline's `evaluation` stage).

Nothing is trained here and nothing imports torch: the three artifacts (Oracle, Guardian, Strategist;
model.onnx + manifest.json each) run with onnxruntime on one test range that is out of sample for all
of them, on real bars, and one report (Markdown + JSON + plots) says what each did there:

- the test range: by default the latest `test_start` and the earliest `test_end` of the artifacts'
  `trained_on_fold`; an explicit range must start at or after every artifact's test start (after its
  training and early-stopping ranges), or the evaluation refuses to run;
- features: each artifact's own fitted feature set (`Artifact.feature_set()`, checked against the
  manifest's hash), computed from the first bar the models' training data starts at, so every value
  is the one the models were trained and tested on;
- Oracle: quantile forecasts of every test window (the Oracle's own window rule: the first
  `embargo_bars` of the range are skipped, labels must close inside it), pinball loss per quantile,
  interval coverage, calibration and directional accuracy next to the naive baselines fitted on the
  training labels of the artifact's fold (`qa_engine.models.evaluation`), and the Oracle stage's own
  report for the same fold next to it (a consistency check);
- Guardian: regimes of every test bar with a full window (persistence-filtered, as traded), regime
  statistics (volatility and returns per regime, run lengths, transitions), and the stability between
  folds its run measured (read from its `regimes.json`);
- Strategist: bar-by-bar rollouts of the exported policy at each target return of its manifest, with
  the after-fee accounting of training, next to buy-and-hold (always long), flat and always short
  (and the behaviour policies) on the same bars, with equity curves;
- how the three line up: the Strategist's after-fee return and the Oracle's coverage per Guardian regime;
- the baselines' after-fee results exactly as their own report states them (other venue and ranges).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import field_validator
from pydantic import model_validator

from qa_engine.contract.policy_context import StrategistContext
from qa_engine.contract.policy_context import action_positions
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.inference.artifact import Artifact
from qa_engine.inference.artifact import cpu_session
from qa_engine.logging import get_logger
from qa_engine.models.data import BarSourceConfig
from qa_engine.models.data import iso
from qa_engine.models.data import to_ns
from qa_engine.models.guardian.report import jsonable
from qa_engine.models.strategist.trajectories import Behaviour
from qa_engine.models.strategist.trajectories import behaviour_uniforms
from qa_engine.models.strategist.trajectories import gap_free_segments
from qa_engine.models.strategist.trajectories import rollout

log = get_logger("qa_engine.models.trinity_evaluation")
STAGE_FOLDERS = ("guardian", "oracle", "strategist")


class EvaluationConfig(BaseModel):
    """configs/train/evaluation.toml. Artifact paths name a folder holding `manifest.json` +
    `model.onnx`, or a stage run folder holding them under `artifact/`; a model left out (or None) is
    not evaluated. Inside `qa train all`, the run's own stage folders replace these paths."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(
        "trinity-evaluation", pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="names the run folder"
    )
    description: str = ""
    source: BarSourceConfig = Field(description="the bars to evaluate on (the models' training source)")
    interval: str = Field("5m", description="bar interval; every artifact must have been trained on it")
    test_start: datetime | None = Field(None, description="bar close time; None = from the artifacts")
    test_end: datetime | None = Field(
        None, description="bar close time (exclusive); None = from the artifacts"
    )
    oracle: Path | None = Field(None, description="Oracle artifact (or stage folder)")
    guardian: Path | None = Field(None, description="Guardian artifact (or stage folder)")
    strategist: Path | None = Field(None, description="Strategist artifact (or stage folder)")
    baselines_report: Path | None = Field(
        None, description="report.json of `qa train baselines`, quoted as is"
    )
    batch_size: int = Field(1024, ge=1, description="windows per onnxruntime call in batch evaluation")
    threads: int = Field(1, ge=1, description="onnxruntime intra-op threads")

    @field_validator("oracle", "guardian", "strategist", "baselines_report", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        """An empty path (`--set strategist=""`) leaves that model out."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _check(self) -> EvaluationConfig:
        if self.oracle is None and self.guardian is None and self.strategist is None:
            raise ValueError("name at least one artifact (oracle, guardian or strategist)")
        if (
            self.test_start is not None
            and self.test_end is not None
            and to_ns(self.test_end) <= to_ns(self.test_start)
        ):
            raise ValueError("test_end must come after test_start")
        return self


# ---- artifacts and data --------------------------------------------------------------------------


def artifact_folder(path: Path) -> Path:
    """The folder holding manifest.json: `path` itself or `path/artifact` (a stage run folder)."""
    for candidate in (path, path / "artifact"):
        if (candidate / "manifest.json").is_file():
            return candidate
    raise ConfigError(
        f"{path}: no model artifact there (looked for manifest.json and artifact/manifest.json); "
        "train that stage first or point the evaluation config at an artifact folder"
    )


def stage_folder(path: Path) -> Path:
    """The stage's run (or publish) folder, where its reports live, for an artifact path."""
    return path.parent if path.name == "artifact" else path


def load_artifacts(config: EvaluationConfig) -> dict[str, Artifact]:
    """Every named artifact, checked (model file hash, graph vs manifest) and of the expected kind."""
    from qa_engine.inference.artifact import load_artifact

    artifacts: dict[str, Artifact] = {}
    for name in STAGE_FOLDERS:
        path = getattr(config, name)
        if path is None:
            continue
        artifact = load_artifact(artifact_folder(Path(path)), interval=config.interval)
        if artifact.manifest.model_kind != name:
            raise ConfigError(
                f"{artifact.folder}: expected a '{name}' artifact, found model_kind "
                f"'{artifact.manifest.model_kind}'"
            )
        artifacts[name] = artifact
    return artifacts


def trained_fold(artifact: Artifact) -> Any:
    manifest = artifact.manifest
    return next(fold for fold in manifest.folds if fold.name == manifest.trained_on_fold)


def ns_of(text: str) -> int:
    return to_ns(datetime.fromisoformat(text.replace("Z", "+00:00")))


def test_range(config: EvaluationConfig, artifacts: dict[str, Artifact]) -> tuple[int, int]:
    """The evaluation range; refuses one that is not out of sample for every artifact."""
    starts = {name: ns_of(trained_fold(a).test_start) for name, a in artifacts.items()}
    ends = {name: ns_of(trained_fold(a).test_end) for name, a in artifacts.items()}
    start = to_ns(config.test_start) if config.test_start else max(starts.values())
    end = to_ns(config.test_end) if config.test_end else min(ends.values())
    early = [
        f"{name} (trained and early-stopped on bars before {iso(first)})"
        for name, first in starts.items()
        if start < first
    ]
    if early:
        raise ConfigError(
            f"the evaluation range starts {iso(start)}, which is not out of sample for: {', '.join(early)}; "
            "start the test range at or after every artifact's test start"
        )
    if end <= start:
        raise ConfigError(
            f"the artifacts' test ranges do not overlap (latest start {iso(start)}, earliest end {iso(end)})"
        )
    return start, end


@dataclass
class Features:
    """One artifact's fitted feature set computed over the loaded bars."""

    ts: np.ndarray  # (N,) bar close times
    raw: np.ndarray  # (N, F) float64, manifest order
    close: np.ndarray  # (N,) closes of the same bars
    table: pl.DataFrame


def compute_features(
    artifact: Artifact, bars: pl.DataFrame, step_ns: int, cache: dict[str, Features]
) -> Features:
    """The artifact's fitted set on `bars` (shared between artifacts with the same hash)."""
    from qa_engine.features.build import build_feature_table

    record = artifact.manifest.feature_set
    if record.hash in cache:
        return cache[record.hash]
    table = build_feature_table(bars, artifact.feature_set(), step_ns)
    if table.feature_set.hash != record.hash:
        raise ConfigError(
            f"artifact {artifact.folder}: the feature code computes a set with hash "
            f"{table.feature_set.hash[:12]}..., not the manifest's {record.hash[:12]}...; retrain the model"
        )
    ts = table.table.get_column("ts").cast(pl.Int64).to_numpy()
    close = bars.join(table.table.select("ts"), on="ts", how="semi").get_column("close").to_numpy()
    features = Features(
        ts=ts,
        raw=table.table.select(list(record.names)).to_numpy().astype(np.float64),
        close=close.astype(np.float64),
        table=table.table,
    )
    cache[record.hash] = features
    return features


def ort_session(path: Path, threads: int):
    """An onnxruntime CPU session (sequential, `threads` intra-op threads); no torch involved."""
    return cpu_session(path, threads)


def window_ends_in(
    ts: np.ndarray, valid: np.ndarray, bars: int, step_ns: int, start: int, end: int
) -> np.ndarray:
    """Rows t whose `bars`-bar window (rows t-bars+1 .. t) is gap-free and valid, closing in [start, end)."""
    from qa_engine.models.data import window_end_mask

    complete = window_end_mask(ts, np.zeros(len(ts), dtype=np.int32), bars, step_ns) & valid
    return np.flatnonzero(complete & (ts >= start) & (ts < end)).astype(np.int64)


def predict_windows(runner: Any, raw: np.ndarray, ends: np.ndarray, bars: int, batch_size: int) -> np.ndarray:
    """The runner's natural-unit outputs for the raw windows ending at `ends`, batch by batch."""
    offsets = np.arange(-bars + 1, 1, dtype=np.int64)
    parts = [
        runner.predict_batch(raw[ends[i : i + batch_size, None] + offsets])  # (B, E, F) raw features
        for i in range(0, len(ends), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0,))


# ---- Oracle ------------------------------------------------------------------------------------


def evaluate_oracle(
    artifact: Artifact,
    features: Features,
    bars: pl.DataFrame,
    start: int,
    end: int,
    step_ns: int,
    batch_size: int,
    threads: int,
) -> tuple[dict[str, Any], Any]:
    """Forecasts of every test window next to the naive baselines (fitted on the training labels of
    the artifact's fold); returns the `evaluate_folds` report and the FoldEvaluation (for the plots)."""
    from qa_engine.inference.runner import OnnxRunner
    from qa_engine.models.data import WindowedDataset
    from qa_engine.models.data import WindowMeta
    from qa_engine.models.data import _split_ends
    from qa_engine.models.data import forward_log_returns
    from qa_engine.models.data import past_log_returns
    from qa_engine.models.data import window_end_mask
    from qa_engine.models.evaluation import FoldEvaluation
    from qa_engine.models.evaluation import baseline_forecasts
    from qa_engine.models.evaluation import evaluate_folds

    manifest = artifact.manifest
    assert manifest.oracle is not None
    encoder, horizon = manifest.window.encoder_bars, manifest.window.horizon_bars
    quantiles = tuple(manifest.oracle.quantiles)
    fold = trained_fold(artifact)
    ts = features.ts
    # labels and past returns from the bars themselves, then the feature rows (as in training)
    bar_ts = bars.get_column("ts").to_numpy()
    bar_close = bars.get_column("close").to_numpy().astype(np.float64)
    rows = np.searchsorted(bar_ts, ts)
    labels = forward_log_returns(bar_ts, bar_close, horizon, step_ns)[rows]  # (N, H)
    past = past_log_returns(bar_ts, bar_close, horizon, step_ns)[rows]  # (N, H)
    valid = np.all(np.isfinite(labels), axis=1)
    valid &= window_end_mask(ts, np.zeros(len(ts), dtype=np.int32), encoder, step_ns)
    train_ends = _split_ends(
        ts, valid, (ns_of(fold.train_start), ns_of(fold.validation_start)), horizon, 0, step_ns
    )
    test_ends = _split_ends(ts, valid, (start, end), horizon, fold.embargo_bars, step_ns)
    if len(test_ends) == 0 or len(train_ends) == 0:
        raise DataError(
            f"no Oracle window fits in the test range {iso(start)} .. {iso(end)} or its training range"
        )
    meta = WindowMeta(tuple(manifest.feature_set.names), encoder, horizon, manifest.window.interval)

    def dataset(name: str, ends: np.ndarray) -> WindowedDataset:
        empty = np.zeros((len(ts), 0), dtype=np.float32)
        series = np.zeros(len(ts), dtype=np.int32)
        return WindowedDataset(name, meta, empty, labels.astype(np.float32), labels, past, ts, series, ends)  # type: ignore[arg-type]

    runner = OnnxRunner(artifact, threads=threads)
    forecast = predict_windows(runner, features.raw, test_ends, encoder, batch_size).astype(np.float64)
    test = dataset("test", test_ends)
    forecasts = {"tft": forecast, **baseline_forecasts(dataset("train", train_ends), test, quantiles)}
    evaluation = FoldEvaluation(
        fold=fold.name,
        test_range=(iso(int(ts[test_ends[0]])), iso(int(ts[test_ends[-1]]))),
        forecasts=forecasts,
        realised=labels[test_ends],
        ts=ts[test_ends],
        variable_importance={},
        training={},
    )
    return evaluate_folds([evaluation], quantiles, horizon), evaluation


def oracle_stage_check(folder: Path, fold: str) -> dict[str, Any] | None:
    """The Oracle stage's own test metrics for `fold` (its report.json), if the folder has one."""
    path = folder / "report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    for entry in report.get("folds", []):
        if entry.get("fold") == fold:
            tft = entry["metrics"]["tft"]
            return {
                "test_range": entry["test_range"],
                "windows": tft["windows"],
                "pinball_mean": tft["pinball_mean"],
                "coverage": tft["coverage"],
            }
    return None


# ---- Guardian ----------------------------------------------------------------------------------


def evaluate_guardian(
    artifact: Artifact, features: Features, start: int, end: int, step_ns: int, batch_size: int, threads: int
) -> tuple[dict[str, Any], pl.DataFrame]:
    """Regimes (after persistence, as traded) of every test bar with a full window, and their statistics."""
    from qa_engine.inference.runner import OnnxRunner
    from qa_engine.models.guardian.regimes import apply_persistence
    from qa_engine.models.guardian.report import regime_statistics

    manifest = artifact.manifest
    section = manifest.guardian  # type: ignore[attr-defined]
    regimes = section.regime_model()
    bars = manifest.window.encoder_bars
    ts = features.ts
    ends = window_ends_in(ts, np.ones(len(ts), dtype=bool), bars, step_ns, start, end)
    if len(ends) == 0:
        raise DataError(f"no {bars}-bar Guardian window ends in {iso(start)} .. {iso(end)}")
    probabilities = predict_windows(
        OnnxRunner(artifact, threads=threads), features.raw, ends, bars, batch_size
    )
    starts = np.concatenate([[0], np.flatnonzero(np.diff(ends) != 1) + 1]).astype(np.int64)
    labels = apply_persistence(probabilities.astype(np.float64), regimes.config, starts)
    returns = np.log(features.close[ends] / features.close[ends - 1])  # bar t's 1-bar log return
    stats = regime_statistics(labels, returns, regimes.n_regimes, starts)
    stats["range"] = [iso(int(ts[ends[0]])), iso(int(ts[ends[-1]]))]
    stats["raw_switches"] = int(np.sum(np.diff(probabilities.argmax(axis=1)) != 0))
    stats["risk_scale"] = regimes.risk_scale.tolist()
    frame = pl.DataFrame(
        {
            "ts": ts[ends],
            "regime": labels,
            "regime_raw": probabilities.argmax(axis=1).astype(np.int64),
            "close": features.close[ends],
            "segment_start": np.isin(np.arange(len(ends)), starts),
        }
    )
    return stats, frame


def guardian_stage_facts(folder: Path, fold: str) -> dict[str, Any]:
    """Stability between folds and the fold's own test statistics, from the Guardian run's regimes.json."""
    path = folder / "regimes.json"
    if not path.is_file():
        return {}
    report = json.loads(path.read_text(encoding="utf-8"))
    own = report.get("folds", {}).get(fold, {})
    return {
        "stability": report.get("stability"),
        "stage_test_statistics": own.get("out_of_sample_test"),
        "stage_report": str(path),
    }


# ---- Strategist --------------------------------------------------------------------------------


def behaviours_by_name(names: list[str]) -> list[tuple[int, Behaviour]]:
    """The training behaviours (index, behaviour) among the registered defaults, by name."""
    from qa_engine.models.strategist.trajectories import DEFAULT_BEHAVIOURS

    known = {behaviour.name: (index, behaviour) for index, behaviour in enumerate(DEFAULT_BEHAVIOURS)}
    return [known[name] for name in names if name in known]


def strategist_rollouts(
    policy: Any,
    states: np.ndarray,
    closes: np.ndarray,
    ts: np.ndarray,
    interval_ns: int,
    *,
    context_length: int,
    state_dim: int,
    n_actions: int,
    episode_bars: int,
    rtg_scale: float,
    taker_fee_rate: float,
    target_returns: dict[str, float],
    behaviours: list[tuple[int, Behaviour]],
    behaviour_seed: int,
    valid: np.ndarray | None = None,
    keep_rewards: bool = False,
) -> dict[str, Any]:
    """Bar-by-bar rollouts over the given (test) rows: the policy (inputs -> logits) at each target
    return, and flat, always-long, always-short and each behaviour on the same bars, with the same
    reward accounting (position * log return - fee * turnover). Episodes restart every `episode_bars`
    bars; each gap-free segment longer than the context starts flat with an empty context. With
    `keep_rewards`, each policy also gets its per-bar rewards and the bars they settle at."""
    valid = np.ones(len(ts), dtype=bool) if valid is None else valid
    segments = [(s, e) for s, e in gap_free_segments(ts, valid, interval_ns) if e - s > context_length]

    def context(target: float) -> StrategistContext:
        return StrategistContext(
            context_length, state_dim, n_actions, episode_bars, target, rtg_scale, taker_fee_rate
        )

    def run(make_actions: Any, target: float, use_policy: bool) -> dict[str, Any]:
        totals: dict[str, Any] = {}
        rewards, settled = [], []
        for start, end in segments:
            fixed = None if use_policy else make_actions(start, end)
            state = context(target)
            outcome = rollout(
                policy if use_policy else None,
                states[start:end],
                closes[start:end],
                ts[start:end],
                interval_ns,
                state,
                fixed,
            )
            for key in ("log_return", "bars", "turnover", "fees"):
                totals[key] = totals.get(key, 0.0) + outcome[key]
            for key in ("mean_abs_position", "long_share", "short_share"):
                totals[key] = totals.get(key, 0.0) + outcome[key] * outcome["bars"]
            if keep_rewards:
                rewards.append(np.asarray(state.realised, dtype=np.float64))
                settled.append(ts[start + 1 : end])
        for key in ("mean_abs_position", "long_share", "short_share"):
            totals[key] = totals.get(key, 0.0) / max(totals.get("bars", 0.0), 1.0)
        if keep_rewards:
            totals["rewards"] = np.concatenate(rewards) if rewards else np.zeros(0)
            totals["settled_ts"] = np.concatenate(settled) if settled else np.zeros(0, dtype=np.int64)
        return totals

    levels = action_positions(n_actions)
    long_action, short_action = int(np.argmax(levels)), int(np.argmin(levels))
    flat_index = int(np.abs(levels).argmin())
    results: dict[str, Any] = {
        "range": {"first_bar_close": iso(int(ts[0])), "last_bar_close": iso(int(ts[-1])), "rows": len(ts)},
        "segments": len(segments),
        "policies": {},
    }
    for label, target in target_returns.items():
        results["policies"][f"decision_transformer_target_{label}={target:.4f}"] = run(None, target, True)
    results["policies"]["flat"] = run(lambda s, e: np.full(e - s, flat_index), 0.0, False)
    results["policies"]["always_long"] = run(lambda s, e: np.full(e - s, long_action), 0.0, False)
    results["policies"]["always_short"] = run(lambda s, e: np.full(e - s, short_action), 0.0, False)
    for index, behaviour in behaviours:

        def actions(s: int, e: int, b: Behaviour = behaviour, i: int = index) -> np.ndarray:
            uniforms = behaviour_uniforms(behaviour_seed, i, int(ts[s]), e - s)
            return b.actions(closes[s:e], uniforms, n_actions)

        results["policies"][f"behaviour_{behaviour.name}"] = run(actions, 0.0, False)
    return results


def evaluate_strategist(
    artifact: Artifact, features: Features, start: int, end: int, step_ns: int, threads: int
) -> dict[str, Any]:
    """The exported policy rolled out bar by bar over the test range (onnxruntime), with baselines."""
    from qa_engine.contract.policy_context import StateTransform
    from qa_engine.inference.scaling import FeatureScaler

    manifest = artifact.manifest
    section = manifest.strategist  # type: ignore[attr-defined]
    names = tuple(manifest.feature_set.names)
    rows = np.flatnonzero((features.ts >= start) & (features.ts < end))
    if len(rows) <= section.context_length:
        raise DataError(f"the test range {iso(start)} .. {iso(end)} holds too few bars for the Strategist")
    transform = StateTransform(names, tuple(section.state_transform))
    scaler = FeatureScaler(
        names,
        np.asarray(manifest.scaler.mean, dtype=np.float64),
        np.asarray(manifest.scaler.std, dtype=np.float64),
        manifest.scaler.clip,
    )
    raw = features.raw[rows]
    closes = features.close[rows]
    states = scaler.transform(np.nan_to_num(transform.apply(raw, closes))).astype(np.float32)
    session = ort_session(artifact.model_path, threads)
    state_dim = int(manifest.inputs[1].shape[2])

    def policy(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(None, inputs)[0]

    results = strategist_rollouts(
        policy,
        states,
        closes,
        features.ts[rows],
        step_ns,
        context_length=section.context_length,
        state_dim=state_dim,
        n_actions=len(section.action_positions),
        episode_bars=section.episode_bars,
        rtg_scale=section.rtg_scale,
        taker_fee_rate=section.taker_fee_rate,
        target_returns=section.target_return_choices,
        behaviours=behaviours_by_name(section.behaviours),
        behaviour_seed=section.behaviour_seed,
        valid=np.all(np.isfinite(raw), axis=1),
        keep_rewards=True,
    )
    results["default_target"] = next(
        (name for name in results["policies"] if name.endswith(f"={section.target_return:.4f}")), None
    )
    results["taker_fee_rate"] = section.taker_fee_rate
    return results


# ---- baselines (as reported) -------------------------------------------------------------------


def baselines_as_reported(path: Path) -> dict[str, Any]:
    """The after-fee backtest results of `qa train baselines`, pooled and for its last fold, unchanged."""
    if not path.is_file():
        raise ConfigError(f"baselines_report {path} does not exist")
    report = json.loads(path.read_text(encoding="utf-8"))
    policy = report["position_policy"]
    last = report["folds"][-1]
    keys = ("total_return_pct", "gross_return_pct", "max_drawdown_pct", "sharpe", "turnover", "exposure")
    return {
        "report": str(path),
        "fee_rate": report.get("fee_rate"),
        "position_policy": policy,
        "pooled_test_range": report.get("pooled_test_range"),
        "pooled": {
            name: {key: values.get(key) for key in keys}
            for name, values in report["pooled"]["backtest"][policy].items()
        },
        "last_fold": {
            "fold": last["fold"],
            "test_range": [
                last["ranges"]["test"]["first_window_end"],
                last["ranges"]["test"]["last_window_end"],
            ],
            "results": {
                name: {key: values.get(key) for key in keys}
                for name, values in last["backtest"][policy].items()
            },
        },
    }


# ---- how the three line up -----------------------------------------------------------------------


def by_regime(
    regimes: pl.DataFrame, strategist: dict[str, Any] | None, oracle: Any | None, n_regimes: int
) -> list[dict[str, Any]]:
    """Per Guardian regime (the regime at the decision bar): the Strategist's mean after-fee reward of
    the next bar (default target) and buy-and-hold's, and the Oracle's band coverage and median error."""
    regime_at = dict(
        zip(regimes.get_column("ts").to_list(), regimes.get_column("regime").to_list(), strict=True)
    )
    rows: list[dict[str, Any]] = [{"regime": k} for k in range(n_regimes)]
    if strategist is not None and strategist.get("default_target"):
        step = None
        for name, key in ((strategist["default_target"], "strategist"), ("always_long", "buy_and_hold")):
            values = strategist["policies"][name]
            settled = values["settled_ts"]
            if step is None and len(settled) > 1:
                step = int(np.min(np.diff(settled)))
            decided = settled - (step or 0)  # the bar whose close decided the position that earned it
            labels = np.array([regime_at.get(int(t), -1) for t in decided])
            for k in range(n_regimes):
                mine = values["rewards"][labels == k]
                rows[k][f"{key}_bars"] = len(mine)
                rows[k][f"{key}_mean_reward_bps"] = float(mine.mean() * 1e4) if len(mine) else float("nan")
                rows[k][f"{key}_total_log_return"] = float(mine.sum())
    if oracle is not None:
        labels = np.array([regime_at.get(int(t), -1) for t in oracle.ts])
        forecast = oracle.forecasts["tft"]  # (N, H, Q)
        realised = oracle.realised  # (N, H)
        inside = (realised >= forecast[..., 0]) & (realised <= forecast[..., -1])  # (N, H)
        median = forecast[..., forecast.shape[-1] // 2]
        for k in range(n_regimes):
            mine = labels == k
            rows[k]["oracle_windows"] = int(mine.sum())
            rows[k]["oracle_coverage"] = float(inside[mine].mean()) if mine.any() else float("nan")
            rows[k]["oracle_median_abs_error_bps_h1"] = (
                float(np.abs(realised[mine, 0] - median[mine, 0]).mean() * 1e4)
                if mine.any()
                else float("nan")
            )
    return rows


# ---- the report ----------------------------------------------------------------------------------


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def plot_equity(strategist: dict[str, Any], path: Path, title: str) -> Path:
    """Cumulative after-fee log return of the default-target policy and the fixed baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 4.5))
    names = [strategist.get("default_target"), "always_long", "flat", "always_short"]
    labels = {"always_long": "buy-and-hold (always long)", "flat": "flat", "always_short": "always short"}
    for name in [n for n in names if n]:
        values = strategist["policies"][name]
        times = np.asarray(values["settled_ts"], dtype="datetime64[ns]")
        axis.plot(
            times, np.cumsum(values["rewards"]), label=labels.get(name, f"Strategist ({name})"), linewidth=1
        )
    axis.axhline(0.0, color="black", linewidth=0.5)
    axis.set_ylabel("cumulative log return after fees")
    axis.set_title(title)
    axis.legend(loc="best", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def render_markdown(report: dict[str, Any]) -> str:
    from qa_engine.models.evaluation import strongest_baseline_line
    from qa_engine.models.guardian.report import regime_table
    from qa_engine.models.guardian.report import stability_lines

    start, end = report["test_range"]
    lines = [
        f"# Trinity evaluation: {report['id']}",
        "",
        report.get("description") or "",
        "",
        f"Out-of-sample test range: bars closing {start} .. {end} (exclusive end), {report['source']}. "
        "No model was trained or refitted for this report: the ONNX artifacts ran with onnxruntime on real "
        "bars; every model's training and early-stopping ranges end before this range starts.",
        "",
        "| model | artifact | trained on fold | train | validation (early stopping) | model sha256 |",
        "|---|---|---|---|---|---|",
    ]
    for name, facts in report["artifacts"].items():
        lines.append(
            f"| {name} | `{facts['folder']}` | {facts['fold']} | "
            f"{facts['train'][0]} .. {facts['train'][1]} | "
            f"{facts['validation'][0]} .. {facts['validation'][1]} | {facts['model_sha256'][:12]}... |"
        )
    lines.append("")
    if report["shared_feature_sets"]:
        lines += [
            f"Shared fitted feature sets (one FeatureActor serves them): {report['shared_feature_sets']}.",
            "",
        ]

    oracle = report.get("oracle")
    if oracle:
        pooled = oracle["metrics"]["pooled"]
        quantiles = oracle["metrics"]["quantiles"]
        horizon = oracle["metrics"]["horizon_bars"]
        lines += [
            "## Oracle (TFT quantile forecaster)",
            "",
            f"{pooled['tft']['windows']:,} test windows "
            f"({oracle['window_range'][0]} .. {oracle['window_range'][1]}), forecasts of the next {horizon} "
            f"cumulative log returns at quantiles {', '.join(f'{q:g}' for q in quantiles)}. Pinball loss in "
            "basis points (lower is better); baselines fitted on the training labels of the artifact's "
            "fold only.",
            "",
            "| forecaster | "
            + " | ".join(f"pinball q{q:g} (bp)" for q in quantiles)
            + f" | pinball mean (bp) | coverage q{quantiles[0]:g}-q{quantiles[-1]:g} | direction h=1 | "
            f"direction h={horizon} (non-overlapping) |",
            "|---|" + "---|" * (len(quantiles) + 4),
        ]
        for name in oracle["metrics"]["forecasters"]:
            metrics = pooled[name]
            d1, _, dh = metrics["directional"]
            lines.append(
                f"| {'TFT (Oracle)' if name == 'tft' else name} | "
                + " | ".join(_fmt(metrics["pinball_by_quantile"][f"{q:g}"] * 1e4, ".3f") for q in quantiles)
                + f" | {_fmt(metrics['pinball_mean'] * 1e4, '.3f')} | {_fmt(metrics['coverage'], '.3f')} | "
                + (f"{_fmt(d1['accuracy'], '.3f')} (n={d1['count']:,})" if d1["count"] else "n/a (median 0)")
                + " | "
                + (f"{_fmt(dh['accuracy'], '.3f')} (n={dh['count']:,})" if dh["count"] else "n/a (median 0)")
                + " |"
            )
        skill = oracle["metrics"]["tft_skill_vs_baselines"]
        d1 = pooled["tft"]["directional"][0]
        lines += [
            "",
            "TFT pinball skill (1 - TFT / baseline, > 0 = TFT better): "
            + ", ".join(f"{name} {value:+.2%}" for name, value in skill.items())
            + ". TFT calibration: "
            + ", ".join(f"q{k}: {v:.3f}" for k, v in pooled["tft"]["calibration"].items())
            + f". Direction at h=1: {_fmt(d1['accuracy'], '.3f')} "
            f"(95% CI {_fmt(d1['ci95'][0], '.3f')}-{_fmt(d1['ci95'][1], '.3f')}).",
        ]
        if "strongest_baseline" in oracle["metrics"]:
            lines += ["", strongest_baseline_line(oracle["metrics"]) + "."]
        check = oracle.get("stage_report")
        if check:
            lines.append(
                f"Consistency: the Oracle stage's own report gives, for fold {oracle['fold']} "
                f"({check['test_range'][0]} .. {check['test_range'][1]}, {check['windows']:,} windows), "
                "TFT pinball "
                f"{check['pinball_mean'] * 1e4:.3f} bp and coverage {check['coverage']:.3f}; recomputed here "
                f"from the ONNX artifact: {pooled['tft']['pinball_mean'] * 1e4:.3f} bp, "
                f"{pooled['tft']['coverage']:.3f} on {pooled['tft']['windows']:,} windows."
            )
        lines += [
            "",
            "![pinball](plots/oracle/pinball_by_step.png) ![coverage](plots/oracle/coverage_by_step.png)",
            "",
        ]

    guardian = report.get("guardian")
    if guardian:
        stats = guardian["statistics"]
        diagonal = [row[i] for i, row in enumerate(stats["transition_matrix"])]
        lines += [
            "## Guardian (contrastive-VAE regimes)",
            "",
            f"Regime of every test bar with a full {guardian['window_bars']}-bar window, after the "
            f"persistence rule (as traded), {stats['range'][0]} .. {stats['range'][1]}, {stats['bars']:,} "
            "bars. Regime 0 is the calmest (ordered by training-window volatility); 'mean return' is bar t's "
            "own 1-bar log return, 'mean fwd return' bar t+1's.",
            "",
            *regime_table(stats),
            "",
            f"Switches {stats['switches']:,} after persistence ({stats['raw_switches']:,} raw); staying "
            "probability per regime: " + ", ".join(f"{value:.3f}" for value in diagonal) + ".",
            "",
        ]
        if guardian.get("stability"):
            lines += [
                "Stability between folds (measured by the Guardian run, out of sample for both models):",
                "",
            ]
            lines += [*stability_lines(guardian["stability"]), ""]
        else:
            lines += ["Stability between folds: the Guardian run had one fold; not measured.", ""]
        lines += ["![regimes](plots/guardian_regimes_test.png)", ""]

    strategist = report.get("strategist")
    if strategist:
        lines += [
            "## Strategist (Decision Transformer)",
            "",
            f"Bar-by-bar rollouts of the exported policy over {strategist['range']['first_bar_close']} .. "
            f"{strategist['range']['last_bar_close']} ({strategist['range']['rows']:,} bars, "
            f"{strategist['segments']} gap-free segment(s)); reward per bar = position x log return - "
            f"{strategist['taker_fee_rate']:.4%} x turnover; every policy is flat until the context holds "
            "its first bars. Default target: "
            f"`{strategist.get('default_target')}`.",
            "",
            "| policy | log return after fees | simple return | fees (log units) | turnover "
            "| mean abs position | long share | short share |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, values in strategist["policies"].items():
            label = "buy-and-hold (always long)" if name == "always_long" else name
            lines.append(
                f"| {label} | {values['log_return']:+.4f} | {math.expm1(values['log_return']):+.2%} | "
                f"{values['fees']:.4f} | {values['turnover']:.0f} | {values['mean_abs_position']:.3f} | "
                f"{values['long_share']:.3f} | {values['short_share']:.3f} |"
            )
        lines += ["", "![equity](plots/strategist_equity_test.png)", ""]

    regimes = report.get("by_regime")
    if regimes:
        lines += [
            "## How they line up, per Guardian regime (test range)",
            "",
            "| regime | Strategist mean reward (bp/bar) | buy-and-hold mean (bp/bar) | Oracle coverage | "
            "Oracle h=1 median abs error (bp) |",
            "|---|---|---|---|---|",
        ]
        for row in regimes:
            lines.append(
                f"| {row['regime']} | {_fmt(row.get('strategist_mean_reward_bps'), '+.2f')} | "
                f"{_fmt(row.get('buy_and_hold_mean_reward_bps'), '+.2f')} | "
                f"{_fmt(row.get('oracle_coverage'), '.3f')} | "
                f"{_fmt(row.get('oracle_median_abs_error_bps_h1'), '.2f')} |"
            )
        lines.append("")

    baselines = report.get("baselines")
    if baselines:
        pooled_range = baselines.get("pooled_test_range") or ["?", "?"]
        last = baselines["last_fold"]
        lines += [
            "## Baselines (XGBoost / LSTM / MLP classifiers), as their report states them",
            "",
            f"Quoted unchanged from `{baselines['report']}` (vectorised after-fee backtest, fee "
            f"{_fmt(baselines.get('fee_rate'), '.4%')} per unit of turnover, position policy "
            f"'{baselines['position_policy']}'). **Their own bars and ranges** (see that report; pooled test "
            f"{pooled_range[0]} .. {pooled_range[1]}; last fold "
            f"{last['test_range'][0]} .. {last['test_range'][1]}): context, not a like-for-like comparison.",
            "",
            "| strategy | pooled net return % | pooled gross % | pooled max drawdown % | last fold net % | "
            "last fold gross % |",
            "|---|---|---|---|---|---|",
        ]
        for name, values in baselines["pooled"].items():
            fold_values = last["results"].get(name, {})
            lines.append(
                f"| {name} | {_fmt(values.get('total_return_pct'), '+.2f')} | "
                f"{_fmt(values.get('gross_return_pct'), '+.2f')} | "
                f"{_fmt(values.get('max_drawdown_pct'), '.2f')} | "
                f"{_fmt(fold_values.get('total_return_pct'), '+.2f')} | "
                f"{_fmt(fold_values.get('gross_return_pct'), '+.2f')} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def evaluate_trinity(config: EvaluationConfig, run_dir: Path) -> dict[str, Any]:
    """Load the artifacts, check the range is out of sample for all, evaluate each and write
    report.md, report.json and plots/ into `run_dir`; returns the report (with a short `summary`)."""
    import time

    from qa_engine.features.io import interval_ns
    from qa_engine.models.data import load_source_bars
    from qa_engine.models.evaluation import write_plots
    from qa_engine.models.guardian.report import plot_regimes

    began = time.perf_counter()
    artifacts = load_artifacts(config)
    start, end = test_range(config, artifacts)
    step = interval_ns(config.interval)
    first = min(ns_of(a.manifest.training_data.first_bar_close) for a in artifacts.values())
    bars = load_source_bars(config.source, config.interval, first, end)
    cache: dict[str, Features] = {}
    report: dict[str, Any] = {
        "id": config.id,
        "description": config.description,
        "source": f"{config.source.symbol}={config.source.describe()}",
        "test_range": [iso(start), iso(end)],
        "artifacts": {},
        "summary": {"test range": f"{iso(start)} .. {iso(end)}"},
    }
    for name, artifact in artifacts.items():
        fold = trained_fold(artifact)
        report["artifacts"][name] = {
            "folder": str(artifact.folder),
            "fold": fold.name,
            "train": [iso(ns_of(fold.train_start)), iso(ns_of(fold.validation_start))],
            "validation": [iso(ns_of(fold.validation_start)), iso(ns_of(fold.test_start))],
            "model_sha256": artifact.manifest.model_sha256,
            "feature_set_hash": artifact.manifest.feature_set.hash,
        }
    hashes: dict[str, list[str]] = {}
    for name, facts in report["artifacts"].items():
        hashes.setdefault(facts["feature_set_hash"], []).append(name)
    report["shared_feature_sets"] = ", ".join(
        f"{' + '.join(names)} ({digest[:12]}...)" for digest, names in hashes.items() if len(names) > 1
    )
    plots = run_dir / "plots"

    from qa_engine.cli.console import progress

    with progress(transient=True) as bar:
        task = bar.add_task("evaluation: features and ONNX runs", total=len(artifacts))
        oracle_eval = None
        if "oracle" in artifacts:
            artifact = artifacts["oracle"]
            features = compute_features(artifact, bars, step, cache)
            metrics, oracle_eval = evaluate_oracle(
                artifact, features, bars, start, end, step, config.batch_size, config.threads
            )
            write_plots(metrics, [oracle_eval], plots / "oracle")
            fold = trained_fold(artifact)
            check = oracle_stage_check(stage_folder(artifact.folder), fold.name)
            report["oracle"] = {
                "fold": fold.name,
                "window_range": list(oracle_eval.test_range),
                "metrics": metrics,
                "stage_report": check
                if check and check["test_range"] == list(oracle_eval.test_range)
                else None,
            }
            pooled = metrics["pooled"]
            best = min((n for n in pooled if n != "tft"), key=lambda n: pooled[n]["pinball_mean"])
            report["summary"]["Oracle pinball (bp)"] = (
                f"{pooled['tft']['pinball_mean'] * 1e4:.3f} vs {best} "
                f"{pooled[best]['pinball_mean'] * 1e4:.3f}"
            )
            report["summary"]["Oracle coverage"] = f"{pooled['tft']['coverage']:.3f}"

            bar.update(task, advance=1, description="evaluation: oracle done")
        regimes_frame = None
        n_regimes = 0
        if "guardian" in artifacts:
            artifact = artifacts["guardian"]
            features = compute_features(artifact, bars, step, cache)
            stats, regimes_frame = evaluate_guardian(
                artifact, features, start, end, step, config.batch_size, config.threads
            )
            n_regimes = len(stats["regimes"])
            plot_regimes(
                regimes_frame.get_column("ts").to_numpy(),
                regimes_frame.get_column("close").to_numpy(),
                regimes_frame.get_column("regime").to_numpy(),
                plots / "guardian_regimes_test.png",
                f"Guardian regimes (out of sample) {stats['range'][0]} .. {stats['range'][1]}",
                n_regimes,
                np.flatnonzero(regimes_frame.get_column("segment_start").to_numpy()),
                np.asarray(stats["risk_scale"]),
            )
            facts = guardian_stage_facts(stage_folder(artifact.folder), trained_fold(artifact).name)
            report["guardian"] = {
                "window_bars": artifact.manifest.window.encoder_bars,
                "statistics": stats,
                **facts,
            }
            report["summary"]["Guardian regime shares"] = " / ".join(
                f"{row['share']:.2f}" for row in stats["regimes"]
            )

            bar.update(task, advance=1, description="evaluation: guardian done")
        strategist = None
        if "strategist" in artifacts:
            artifact = artifacts["strategist"]
            features = compute_features(artifact, bars, step, cache)
            strategist = evaluate_strategist(artifact, features, start, end, step, config.threads)
            plot_equity(
                strategist,
                plots / "strategist_equity_test.png",
                f"Strategist vs fixed policies, after fees (out of sample) {iso(start)} .. {iso(end)}",
            )
            report["strategist"] = strategist
            default = strategist.get("default_target")
            if default:
                report["summary"]["Strategist log return"] = (
                    f"{strategist['policies'][default]['log_return']:+.4f} vs buy-and-hold "
                    f"{strategist['policies']['always_long']['log_return']:+.4f}"
                )
            bar.update(task, advance=1, description="evaluation: strategist done")

    if regimes_frame is not None and (strategist is not None or oracle_eval is not None):
        report["by_regime"] = by_regime(regimes_frame, strategist, oracle_eval, n_regimes)
    if config.baselines_report is not None:
        report["baselines"] = baselines_as_reported(config.baselines_report)
    report["total_secs"] = time.perf_counter() - began

    run_dir.mkdir(parents=True, exist_ok=True)
    clean = jsonable(_drop_series(report))
    (run_dir / "report.json").write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")
    (run_dir / "report.md").write_text(render_markdown(clean), encoding="utf-8")
    log.info(
        "trinity_evaluated", run_dir=str(run_dir), secs=round(report["total_secs"], 1), **report["summary"]
    )
    return clean


def _drop_series(report: dict[str, Any]) -> dict[str, Any]:
    """The report without per-bar series (they are in the plots)."""
    strategist = report.get("strategist")
    if not strategist:
        return report
    policies = {
        name: {k: v for k, v in values.items() if k not in ("rewards", "settled_ts")}
        for name, values in strategist["policies"].items()
    }
    return {**report, "strategist": {**strategist, "policies": policies}}
