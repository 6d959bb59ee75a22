"""The Guardian's training: feature windows, the fitted `GuardianModel` (network + scaler + regimes,
saved and loaded as one checkpoint), `train_guardian`, ONNX export and manifest, and the run config
`GuardianTrainConfig` / `train_guardian_from_config` behind `qa train guardian` and the pipeline's
guardian stage. The network itself (config, augmentations, contrastive VAE, exported graph) is in
`qa_engine.models.guardian.network`; regimes in `qa_engine.models.guardian.regimes`; statistics and
the regime report in `qa_engine.models.guardian.report`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from pydantic import Field
from pydantic import model_validator

from qa_engine.contract.guardian import RegimeModel
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.features.sets import GUARDIAN_FEATURE_NAMES
from qa_engine.features.sets import guardian_feature_set
from qa_engine.features.spec import FeatureSet
from qa_engine.inference.scaling import FeatureScaler
from qa_engine.inference.scaling import fit_feature_scaler
from qa_engine.models.data import FoldConfig
from qa_engine.models.data import WalkForwardRunConfig
from qa_engine.models.data import iso
from qa_engine.models.data import window_end_mask
from qa_engine.models.guardian.baseline import rv_quartiles
from qa_engine.models.guardian.network import ContrastiveVAE
from qa_engine.models.guardian.network import GuardianConfig
from qa_engine.models.guardian.network import GuardianInference
from qa_engine.models.guardian.network import guardian_loss
from qa_engine.models.guardian.regimes import apply_persistence
from qa_engine.models.guardian.regimes import fit_regimes
from qa_engine.models.training import TrainerConfig

RETURN_FEATURE = "log_return_1"  # realised volatility and returns of windows and regimes come from it
INPUT_NAME = "window"
OUTPUT_NAMES = ("regime_probabilities", "latent_mean")  # the shared runner returns the first


# ---- windows ----------------------------------------------------------------------------------


def window_ends(
    ts: np.ndarray, window_bars: int, step_ns: int, start_ns: int, end_ns: int, embargo_bars: int = 0
) -> np.ndarray:
    """Rows t whose window (rows t-T+1 .. t) is gap-free and whose bar closes in
    [start_ns + embargo_bars * step, end_ns). Only rows <= t are ever part of the window of t."""
    complete = window_end_mask(ts, np.zeros(len(ts), dtype=np.int32), window_bars, step_ns)
    inside = (ts >= start_ns + embargo_bars * step_ns) & (ts < end_ns)
    return np.flatnonzero(complete & inside).astype(np.int64)


def gather_windows(values: np.ndarray, ends: np.ndarray, window_bars: int) -> np.ndarray:
    """(N, F) rows, (M,) end rows -> (M, T, F) windows; window i holds rows ends[i]-T+1 .. ends[i]."""
    rows = ends[:, None] + np.arange(-window_bars + 1, 1, dtype=np.int64)[None, :]  # (M, T)
    if len(ends) and rows.min() < 0:
        raise DataError(f"window end row {int(ends.min())} has fewer than {window_bars} rows before it")
    return values[rows]


def segment_starts(ends: np.ndarray) -> np.ndarray:
    """Positions i in `ends` that do not follow the previous end by one row (after a gap)."""
    if len(ends) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.flatnonzero(np.diff(ends) != 1) + 1]).astype(np.int64)


@dataclass
class GuardianWindows:
    """A split's windows for the shared trainer: `batch(indices)` -> {"x": (B, T, F) float32}."""

    features: np.ndarray  # (N, F) float32, scaled
    ends: np.ndarray  # (M,) rows where the windows end, increasing
    window_bars: int

    def __len__(self) -> int:
        return len(self.ends)

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {"x": gather_windows(self.features, self.ends[indices], self.window_bars)}


@torch.no_grad()
def encode_windows(
    network: ContrastiveVAE, scaled: np.ndarray, ends: np.ndarray, batch_size: int = 4096
) -> np.ndarray:
    """(M, D) float64 latent means of the windows ending at `ends` (rows of the scaled table)."""
    network.eval()
    bars = network.config.window_bars
    parts = [
        network.encoder(torch.from_numpy(gather_windows(scaled, ends[i : i + batch_size], bars)))[0].numpy()
        for i in range(0, len(ends), batch_size)
    ]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, network.config.latent_dim))


def window_volatility(returns: np.ndarray, ends: np.ndarray, window_bars: int) -> np.ndarray:
    """(M,) population std of the 1-bar log returns inside each window."""
    return gather_windows(returns[:, None], ends, window_bars)[:, :, 0].std(axis=1)


# ---- the trained Guardian ---------------------------------------------------------------------


@dataclass
class GuardianModel:
    """A trained Guardian: network, training-fold scaler, fitted regimes and where they came from."""

    config: GuardianConfig
    network: ContrastiveVAE
    scaler: FeatureScaler
    regimes: RegimeModel
    interval: str
    step_ns: int
    fold: FoldConfig | None = None
    feature_set: FeatureSet | None = None  # the resolved set that produced the table, if known
    declared_feature_set_hash: str | None = None
    training_data: dict[str, Any] = field(default_factory=dict)
    trainer_config: dict[str, Any] = field(default_factory=dict)
    validation_metrics: dict[str, float] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.scaler.names

    def inference_module(self) -> GuardianInference:
        return GuardianInference(self.network.encoder, self.regimes).eval()

    def scaled(self, feature_table: pl.DataFrame) -> np.ndarray:
        missing = [name for name in self.feature_names if name not in feature_table.columns]
        if missing:
            raise DataError(f"feature table lacks the Guardian's features {missing}")
        values = feature_table.select(self.feature_names).to_numpy().astype(np.float64)
        return self.scaler.transform(values).astype(np.float32)

    def encode(self, scaled: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """(M, D) latent means of the windows ending at `ends` (rows of `scaled`)."""
        return encode_windows(self.network, scaled, ends)

    def assign(
        self, feature_table: pl.DataFrame, start_ns: int | None = None, end_ns: int | None = None
    ) -> pl.DataFrame:
        """Regimes of every bar of `feature_table` (closing in [start_ns, end_ns)) that has a full
        window: ts, regime_raw (nearest centroid), regime (after persistence), risk_scale, p_0..p_{K-1}.
        Persistence runs in time order and restarts after each gap."""
        ts = _ts_ns(feature_table)
        ends = window_ends(
            ts,
            self.config.window_bars,
            self.step_ns,
            np.iinfo(np.int64).min // 2 if start_ns is None else start_ns,
            np.iinfo(np.int64).max if end_ns is None else end_ns,
        )
        latent = self.encode(self.scaled(feature_table), ends)
        probabilities = self.regimes.probabilities(latent)
        regime = apply_persistence(probabilities, self.regimes.config, segment_starts(ends))
        columns: dict[str, Any] = {
            "ts": ts[ends],
            "regime_raw": probabilities.argmax(axis=1).astype(np.int64),
            "regime": regime,
            "risk_scale": self.regimes.risk_scale[regime],
        }
        columns.update({f"p_{k}": probabilities[:, k] for k in range(self.regimes.n_regimes)})
        return pl.DataFrame(columns)

    def save(self, path: Path) -> Path:
        """A checkpoint that carries everything needed to rebuild the model (config included)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "kind": "guardian",
                "config": asdict(self.config),
                "model_state": self.network.state_dict(),
                "scaler": {
                    "names": list(self.scaler.names),
                    "mean": self.scaler.mean.tolist(),
                    "std": self.scaler.std.tolist(),
                    "clip": self.scaler.clip,
                },
                "regimes": self.regimes.to_dict(),
                "interval": self.interval,
                "step_ns": self.step_ns,
                "fold": None if self.fold is None else self.fold.model_dump(mode="json"),
                "feature_set": None if self.feature_set is None else self.feature_set.canonical_json(),
                "declared_feature_set_hash": self.declared_feature_set_hash,
                "training_data": self.training_data,
                "trainer_config": self.trainer_config,
                "validation_metrics": self.validation_metrics,
                "windows": self.windows,
            },
            path,
        )
        return path

    @classmethod
    def load(cls, path: Path) -> GuardianModel:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        if checkpoint.get("kind") != "guardian":
            raise ConfigError(f"{path} is not a Guardian checkpoint")
        config = GuardianConfig.from_dict(checkpoint["config"])
        network = ContrastiveVAE(config)
        network.load_state_dict(checkpoint["model_state"])
        network.eval()
        scaler_values = checkpoint["scaler"]
        feature_set = None
        if checkpoint["feature_set"] is not None:
            from qa_engine.inference.artifact import feature_set_from_canonical

            feature_set = feature_set_from_canonical(json.loads(checkpoint["feature_set"]))
        return cls(
            config=config,
            network=network,
            scaler=FeatureScaler(
                tuple(scaler_values["names"]),
                np.asarray(scaler_values["mean"]),
                np.asarray(scaler_values["std"]),
                float(scaler_values["clip"]),
            ),
            regimes=RegimeModel.from_dict(checkpoint["regimes"]),
            interval=checkpoint["interval"],
            step_ns=int(checkpoint["step_ns"]),
            fold=None if checkpoint["fold"] is None else FoldConfig.model_validate(checkpoint["fold"]),
            feature_set=feature_set,
            declared_feature_set_hash=checkpoint["declared_feature_set_hash"],
            training_data=checkpoint["training_data"],
            trainer_config=checkpoint["trainer_config"],
            validation_metrics=checkpoint["validation_metrics"],
            windows=checkpoint["windows"],
        )


def _ts_ns(feature_table: pl.DataFrame) -> np.ndarray:
    ts = feature_table.get_column("ts")
    if ts.dtype.is_temporal():
        ts = ts.cast(pl.Datetime("ns", getattr(ts.dtype, "time_zone", None))).dt.epoch("ns")
    values = ts.to_numpy().astype(np.int64)
    if len(values) > 1 and np.any(np.diff(values) <= 0):
        raise DataError("feature table ts must be strictly increasing")
    return values


def table_sha256(feature_table: pl.DataFrame, names: tuple[str, ...]) -> str:
    """sha256 of ts (int64) and the named feature columns (float64), little-endian, column by column."""
    digest = hashlib.sha256()
    digest.update(b"ts")
    digest.update(np.ascontiguousarray(_ts_ns(feature_table), dtype="<i8").tobytes())
    for name in names:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(feature_table.get_column(name).to_numpy(), dtype="<f8").tobytes())
    return digest.hexdigest()


@torch.no_grad()
def loss_components(network: ContrastiveVAE, windows: GuardianWindows, limit: int = 8192) -> dict[str, float]:
    """Mean reconstruction, KL and contrastive losses over an evenly spaced subset, in eval mode, with
    the same fixed generator as validation."""
    network.eval()
    indices = np.unique(np.linspace(0, len(windows) - 1, min(limit, len(windows))).round().astype(np.int64))
    sums = dict.fromkeys(("total", "reconstruction", "kl", "contrastive"), 0.0)
    for start in range(0, len(indices), 1024):
        chunk = indices[start : start + 1024]
        parts = network.loss(torch.from_numpy(windows.batch(chunk)["x"]), torch.Generator().manual_seed(0))
        for name, value in parts._asdict().items():
            sums[name] += float(value) * len(chunk)
    return {name: value / len(indices) for name, value in sums.items()}


@dataclass
class GuardianTraining:
    """What `train_guardian` returns: the trained model, the trainer's result, per-split windows."""

    model: GuardianModel
    result: Any  # qa_engine.models.training.TrainingResult
    splits: dict[str, GuardianWindows]
    returns: np.ndarray  # (N,) raw 1-bar log returns of the table rows
    ts: np.ndarray  # (N,) bar close times of the table rows


def train_guardian(
    feature_table: pl.DataFrame,
    fold: FoldConfig,
    run_dir: Path,
    config: GuardianConfig | None = None,
    trainer_config: Any = None,
    interval: str = "5m",
    feature_set: FeatureSet | None = None,
    declared_feature_set_hash: str | None = None,
    training_data: dict[str, Any] | None = None,
    resume: bool = False,
) -> GuardianTraining:
    """Train the Guardian on the fold's training range, stop early on its validation range, fit regimes.

    feature_table: `ts` (bar close, ns or datetime) and at least the Guardian's features (the names of
    `feature_set` if given, else `GUARDIAN_FEATURE_NAMES`) plus `log_return_1`; rows may have gaps
    (windows never cross one). The scaler is fitted on rows closing in the training range only,
    k-means on the latent means of the training windows only. Validation windows start `window_bars`
    bars after validation_start, so they hold no training bar. trainer_config: the shared
    `TrainerConfig` (checkpoint/resume, early stopping, curves and progress under run_dir).
    """
    from qa_engine.features.io import interval_ns
    from qa_engine.models.training import Trainer

    trainer_config = trainer_config or TrainerConfig()
    names = feature_set.names if feature_set is not None else GUARDIAN_FEATURE_NAMES
    missing = [name for name in (*names, RETURN_FEATURE) if name not in feature_table.columns]
    if missing:
        raise DataError(f"feature table lacks columns {missing}; build it with guardian_feature_set()")
    config = config or GuardianConfig()
    if config.n_features is None:
        config = replace(config, n_features=len(names))
    elif config.n_features != len(names):
        raise ConfigError(
            f"GuardianConfig.n_features is {config.n_features} but the table has {len(names)} features"
        )
    step = interval_ns(interval)
    ts = _ts_ns(feature_table)
    raw = feature_table.select(names).to_numpy().astype(np.float64)
    returns = feature_table.get_column(RETURN_FEATURE).to_numpy().astype(np.float64)
    if not (np.all(np.isfinite(raw)) and np.all(np.isfinite(returns))):
        raise DataError("feature table holds null/NaN/inf values; drop the warm-up rows first")

    train_start, train_end = fold.bounds_ns("train")
    train_rows = (ts >= train_start) & (ts < train_end)
    scaler = fit_feature_scaler(raw[train_rows], tuple(names), clip=config.feature_clip)
    scaled = scaler.transform(raw).astype(np.float32)
    bars = config.window_bars
    ends = {
        "train": window_ends(ts, bars, step, train_start, train_end),
        "validation": window_ends(ts, bars, step, *fold.bounds_ns("validation"), embargo_bars=bars),
        "test": window_ends(ts, bars, step, *fold.bounds_ns("test"), embargo_bars=0),
    }
    for split in ("train", "validation"):
        if len(ends[split]) < max(config.n_regimes, 2):
            start, end = fold.bounds_ns(split)
            raise DataError(
                f"fold '{fold.name}': only {len(ends[split])} {split} windows of {bars} bars in "
                f"[{iso(start)}, {iso(end)}); give the split more bars"
            )
    splits = {split: GuardianWindows(scaled, rows, bars) for split, rows in ends.items()}

    torch.manual_seed(trainer_config.seed)
    network = ContrastiveVAE(config)
    trainer = Trainer(
        network, guardian_loss, trainer_config, run_dir, asdict(config), description=f"guardian {fold.name}"
    )
    result = trainer.fit(splits["train"], splits["validation"], resume=resume)
    network = trainer.model.to("cpu").eval()

    train_ends = ends["train"]
    regimes = fit_regimes(
        encode_windows(network, scaled, train_ends),
        window_volatility(returns, train_ends, bars),
        returns[train_ends],
        config.regimes,
        segment_starts(train_ends),
    )
    used = feature_table.filter(pl.Series(ts < train_end))
    model = GuardianModel(
        config=config,
        network=network,
        scaler=scaler,
        regimes=regimes,
        interval=interval,
        step_ns=step,
        fold=fold,
        feature_set=feature_set,
        declared_feature_set_hash=declared_feature_set_hash,
        training_data=training_data
        or {
            "sources": ["feature table"],
            "first_bar_close": iso(int(ts[0])),
            "last_bar_close": iso(int(ts[train_rows][-1])),
            "rows": int(used.height),
            "sha256": table_sha256(used, tuple(names)),
        },
        trainer_config=asdict(trainer_config),
        windows={split: len(rows) for split, rows in ends.items()},
    )
    metrics = {f"validation_{k}": v for k, v in loss_components(network, splits["validation"]).items()}
    metrics.update(_silhouette(model, scaled, ends["validation"]))
    metrics["best_epoch"] = float(result.best_epoch)
    metrics["secs_per_epoch"] = float(result.secs_per_epoch)
    model.validation_metrics = metrics
    model.save(run_dir / "guardian.pt")
    return GuardianTraining(model, result, splits, returns, ts)


def _silhouette(
    model: GuardianModel, scaled: np.ndarray, ends: np.ndarray, sample: int = 4000
) -> dict[str, float]:
    """Silhouette of the nearest-centroid assignment of validation latents (an evenly spaced sample)."""
    from sklearn.metrics import silhouette_score

    chosen = ends[np.unique(np.linspace(0, len(ends) - 1, min(sample, len(ends))).round().astype(np.int64))]
    latent = model.encode(scaled, chosen)
    labels = model.regimes.assign(latent)
    if len(np.unique(labels)) < 2:
        return {"validation_silhouette": float("nan")}
    return {"validation_silhouette": float(silhouette_score(latent, labels))}


# ---- export -----------------------------------------------------------------------------------


def export_guardian(
    model: GuardianModel,
    folder: Path,
    parity_windows: np.ndarray | None = None,
    run_folds: list[GuardianModel] | None = None,
) -> dict[str, Any]:
    """model.onnx + manifest.json in `folder`; returns the manifest as a dict (and checks parity).

    parity_windows (B, T, F) scaled windows for the torch-vs-onnxruntime check; random ones if None.
    run_folds: every fold's model of the run (the manifest lists their folds and window counts, as the
    Oracle's does); None = this model's fold only. Raises RuntimeError if the largest difference
    exceeds 1e-5.
    """
    from qa_engine.models.export import export_onnx
    from qa_engine.models.export import parity_max_abs_diff

    config = model.config
    assert config.n_features is not None
    module = model.inference_module()
    example = torch.zeros(1, config.window_bars, config.n_features)
    exported = export_onnx(module, {INPUT_NAME: example}, list(OUTPUT_NAMES), folder / "model.onnx")
    if parity_windows is None:
        parity_windows = np.random.default_rng(0).standard_normal((16, config.window_bars, config.n_features))
    difference = parity_max_abs_diff(
        module, exported.path, {INPUT_NAME: np.asarray(parity_windows, np.float32)}
    )
    if difference > 1e-5:
        raise RuntimeError(f"torch vs onnxruntime differ by {difference:.3g} > 1e-5 on the Guardian graph")
    manifest = guardian_manifest(model, exported, difference, run_folds)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def guardian_manifest(
    model: GuardianModel,
    exported: Any,
    parity_difference: float,
    run_folds: list[GuardianModel] | None = None,
) -> dict[str, Any]:
    """The manifest in the shared schema (`qa_engine.contract.manifest`) with a `guardian` section,
    validated by `GuardianArtifactManifest` (the kind's entry in `MANIFEST_TYPES`)."""
    from qa_engine.contract.guardian import GuardianArtifactManifest
    from qa_engine.contract.guardian import GuardianSection
    from qa_engine.contract.manifest import DataRecord
    from qa_engine.contract.manifest import WindowRecord
    from qa_engine.contract.manifest import utc_now
    from qa_engine.models.export import code_record
    from qa_engine.models.export import feature_set_record
    from qa_engine.models.export import fold_record
    from qa_engine.models.export import scaler_record

    config = model.config
    feature_set = model.feature_set or guardian_feature_set()
    if feature_set.names != model.feature_names:
        raise ConfigError(
            f"feature set names {feature_set.names} differ from the scaler's {model.feature_names}"
        )
    fold = model.fold or FoldConfig(
        name="unknown",
        train_start="1970-01-01",
        validation_start="1970-01-02",
        test_start="1970-01-03",
        test_end="1970-01-04",
    )
    metrics = {k: float(v) for k, v in model.validation_metrics.items() if math.isfinite(v)}
    folds = [(fold, model.windows)]
    if run_folds:
        folds = [(other.fold, other.windows) for other in run_folds if other.fold is not None]
        if fold.name not in {entry.name for entry, _ in folds}:
            raise ValueError(f"run_folds do not include the exported model's fold '{fold.name}'")
    manifest = GuardianArtifactManifest(
        model_name="contrastive_vae",
        created_utc=utc_now(),
        model_sha256=exported.sha256,
        feature_set=feature_set_record(
            feature_set, model.declared_feature_set_hash or feature_set.hash, feature_set.names
        ),
        window=WindowRecord(interval=model.interval, encoder_bars=config.window_bars, horizon_bars=0),
        scaler=scaler_record(model.scaler, f"train split of fold {fold.name}"),
        inputs=exported.inputs,
        outputs=exported.outputs,
        training_data=DataRecord(**model.training_data),
        folds=[fold_record(entry, config.window_bars, dict(windows)) for entry, windows in folds],
        trained_on_fold=fold.name,
        code=code_record(exported),
        model_config_values=asdict(config),
        trainer_config=model.trainer_config,
        validation_metrics={**metrics, "onnx_parity_max_abs_diff": parity_difference},
        guardian=GuardianSection.from_regimes(model.regimes, config.latent_dim),
    )
    return manifest.model_dump(mode="json")


# ---- the run config (for `qa train guardian` / the pipeline's guardian stage) ----------------------

PROFILED_FEATURES = (  # mean raw value per regime in the reports: what tells the regimes apart
    "realised_volatility_20",
    "realised_volatility_60",
    "bb_width_20",
    "atr_ratio_14",
    "volume_ratio_20",
    "log_return_60",
    "rsi_14",
    "vp_poc_distance_96",
)


class GuardianTrainConfig(WalkForwardRunConfig):
    """A Guardian run config (TOML). Reads `data.sources` (one symbol), `data.interval`,
    `data.feature_set` (default "guardian"), `data.history_bars` (feature warm-up before the first
    fold) and every fold of `data.folds`: one model per fold, each trained on its training range,
    early-stopped on its validation range and described on its test range (out of sample). The
    artifact is the model of `export_fold` (default: the last fold). `data.encoder_bars`,
    `horizon_bars`, `embargo_bars` and `feature_clip` belong to forecasting models and are not read:
    the window is `model.window_bars`, validation windows start `window_bars` after the split starts,
    and the scaler clips at `model.feature_clip`."""

    id: str = Field("guardian", pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="names the run folder")
    model: GuardianConfig = GuardianConfig()
    trainer: TrainerConfig = TrainerConfig()

    @model_validator(mode="after")
    def _check(self) -> GuardianTrainConfig:
        if len(self.data.sources) != 1:
            raise ValueError(f"the Guardian trains on one symbol; got {len(self.data.sources)} sources")
        if self.model.n_features is not None:
            raise ValueError("model.n_features is derived from the feature set; leave it out")
        return self


@dataclass
class GuardianOutcome:
    """What `train_guardian_from_config` returns: every fold's model, the exported one, the report."""

    run_dir: Path
    models: dict[str, GuardianModel]
    exported: GuardianModel
    manifest: dict[str, Any]
    report: dict[str, Any]
    secs: float


def _training_record(bars: pl.DataFrame, source_label: str, end_ns: int) -> dict[str, Any]:
    """The manifest's training_data: the bars behind the training split (warm-up history included)."""
    from qa_engine.models.data import bars_sha256

    behind = bars.filter(pl.col("ts") < end_ns)
    if behind.height == 0:
        raise DataError(f"no bars close before {iso(end_ns)} in {source_label}")
    return {
        "sources": [source_label],
        "first_bar_close": iso(int(behind.get_column("ts")[0])),
        "last_bar_close": iso(int(behind.get_column("ts")[-1])),
        "rows": behind.height,
        "sha256": bars_sha256(behind),
    }


def describe_regimes(
    model: GuardianModel,
    feature_table: pl.DataFrame,
    start_ns: int,
    end_ns: int,
    sample: str,
) -> tuple[dict[str, Any], pl.DataFrame]:
    """Regime statistics of the bars closing in [start_ns, end_ns) (`report.regime_statistics`
    on the persistence-filtered regimes), raw switches, the mean of a few raw features per regime, and
    the frame of `GuardianModel.assign`."""
    from qa_engine.models.guardian.report import regime_statistics

    frame = model.assign(feature_table, start_ns, end_ns)
    if frame.height == 0:
        raise DataError(f"no {model.config.window_bars}-bar window ends in [{iso(start_ns)}, {iso(end_ns)})")
    ts_all = _ts_ns(feature_table)
    rows = np.searchsorted(ts_all, frame.get_column("ts").to_numpy())
    labels = frame.get_column("regime").to_numpy()
    starts = segment_starts(rows)
    returns = feature_table.get_column(RETURN_FEATURE).to_numpy()[rows]
    stats = regime_statistics(labels, returns, model.regimes.n_regimes, starts)
    stats["range"] = [iso(int(frame.get_column("ts")[0])), iso(int(frame.get_column("ts")[-1]))]
    stats["sample"] = sample
    stats["raw_switches"] = int(np.sum(np.diff(frame.get_column("regime_raw").to_numpy()) != 0))
    stats["risk_scale"] = model.regimes.risk_scale.tolist()
    stats["feature_means"] = feature_means(feature_table, rows, labels, model.regimes.n_regimes)
    return stats, frame


def feature_means(
    feature_table: pl.DataFrame, rows: np.ndarray, labels: np.ndarray, n_regimes: int
) -> dict[str, list[float]]:
    """Mean raw value of each of `PROFILED_FEATURES` the table has, per regime (NaN for a regime with
    no rows): what tells the regimes apart in the reports."""
    return {
        name: [
            float(feature_table.get_column(name).to_numpy()[rows][labels == k].mean())
            if np.any(labels == k)
            else float("nan")
            for k in range(n_regimes)
        ]
        for name in PROFILED_FEATURES
        if name in feature_table.columns
    }


def volatility_quartiles(feature_table: pl.DataFrame, train_bounds: tuple[int, int]) -> np.ndarray | None:
    """Naive regime baseline: quartile of realised_volatility_20 per row, thresholds from the training
    range's rows only; None if the table lacks the feature."""
    if "realised_volatility_20" not in feature_table.columns:
        return None
    ts = _ts_ns(feature_table)
    volatility = feature_table.get_column("realised_volatility_20").to_numpy()
    inside = (ts >= train_bounds[0]) & (ts < train_bounds[1])
    edges = np.quantile(volatility[inside], [0.25, 0.5, 0.75])
    return np.searchsorted(edges, volatility, side="right")


def train_guardian_from_config(
    config: GuardianTrainConfig, run_dir: Path, resume: bool = False
) -> GuardianOutcome:
    """Bars -> Guardian features -> one model per fold (`train_guardian`) -> out-of-sample regime
    statistics per fold, stability between folds on the exported fold's test range -> the exported
    fold's artifact.

    Run folder: `folds/<fold>/` (checkpoints, curves, guardian.pt), `artifact/` (model.onnx +
    manifest.json), `regimes.json`, `regimes.md`, `plots/regimes_<fold>_test.png`. With `resume`, a
    fold whose checkpoint exists continues from it (a finished fold is not retrained)."""
    import time

    from qa_engine.features.build import build_feature_table
    from qa_engine.features.sets import get_feature_set
    from qa_engine.models.data import load_source_bars
    from qa_engine.models.data import to_ns
    from qa_engine.models.guardian.baseline import skill_vs_strongest_baseline
    from qa_engine.models.guardian.report import fold_stability
    from qa_engine.models.guardian.report import plot_regimes
    from qa_engine.models.guardian.report import write_regime_report

    began = time.perf_counter()
    data = config.data
    source = data.sources[0]
    source_label = f"{source.symbol}={source.describe()}"
    step = data.step_ns
    first_start = min(to_ns(fold.train_start) for fold in data.folds) - data.history_bars * step
    bars = load_source_bars(
        source, data.interval, first_start, max(to_ns(fold.test_end) for fold in data.folds)
    )
    declared = get_feature_set(data.feature_set)
    fits_per_fold = any(spec.kind == "ffd" for spec in declared.specs)
    shared_table = None if fits_per_fold else build_feature_table(bars, declared, step)
    close_by_ts = dict(zip(bars.get_column("ts").to_list(), bars.get_column("close").to_list(), strict=True))

    models: dict[str, GuardianModel] = {}
    tables: dict[str, pl.DataFrame] = {}
    report: dict[str, Any] = {
        "id": config.id,
        "description": config.description,
        "source": source_label,
        "interval": data.interval,
        "feature_set": declared.name,
        "folds": {},
    }
    for fold in data.folds:
        validation_start = fold.bounds_ns("validation")[0]
        table = shared_table or build_feature_table(bars, declared, step, train_end_ns=validation_start)
        fold_dir = run_dir / "folds" / fold.name
        training = train_guardian(
            table.table,
            fold,
            fold_dir,
            config.model,
            config.trainer,
            data.interval,
            table.feature_set,
            declared.hash,
            _training_record(bars, source_label, validation_start),
            resume=resume and (fold_dir / "checkpoints" / "last.pt").is_file(),
        )
        model = training.model
        models[fold.name] = model
        tables[fold.name] = table.table
        stats, frame = describe_regimes(
            model, table.table, *fold.bounds_ns("test"), f"OUT-OF-SAMPLE (test range of fold {fold.name})"
        )
        ts = frame.get_column("ts").to_numpy()
        plot = run_dir / "plots" / f"regimes_{fold.name}_test.png"
        plot_regimes(
            ts,
            np.array([close_by_ts[int(t)] for t in ts]),
            frame.get_column("regime").to_numpy(),
            plot,
            f"Guardian fold {fold.name}, test {stats['range'][0]} .. {stats['range'][1]} (out of sample)",
            model.regimes.n_regimes,
            segment_starts(np.searchsorted(_ts_ns(table.table), ts)),
            model.regimes.risk_scale,
        )
        separation = regime_separation_report(model, table.table, frame, fold, step)
        report["folds"][fold.name] = {
            "train": [iso(b) for b in fold.bounds_ns("train")],
            "validation": [iso(b) for b in fold.bounds_ns("validation")],
            "test": [iso(b) for b in fold.bounds_ns("test")],
            "windows": model.windows,
            "epochs_run": len(training.result.history),
            "best_epoch": training.result.best_epoch,
            "secs_per_epoch": training.result.secs_per_epoch,
            "cpu_secs_per_epoch": training.result.cpu_secs_per_epoch,
            "parameters": model.network.parameter_count(),
            "validation_metrics": model.validation_metrics,
            "regime_model": {
                "risk_scale": model.regimes.risk_scale.tolist(),
                "training_volatility_per_bar": model.regimes.training_volatility.tolist(),
                "training_share": model.regimes.training_share.tolist(),
                "training_drawdown_pct": model.regimes.training_drawdown_pct.tolist(),
                "dangerous": model.regimes.dangerous,
            },
            "out_of_sample_test": stats,
            "separation": separation,
            "plot": str(plot.relative_to(run_dir)),
        }

    chosen = config.chosen_fold()
    exported = models[chosen.name]
    if len(models) > 1:
        report["stability"] = fold_stability_report(models, tables, chosen, fold_stability)
    report["skill_vs_strongest_baseline"] = skill_vs_strongest_baseline(report)
    test_split = GuardianWindows(
        exported.scaled(tables[chosen.name]),
        window_ends(
            _ts_ns(tables[chosen.name]), exported.config.window_bars, step, *chosen.bounds_ns("test")
        ),
        exported.config.window_bars,
    )
    picks = np.linspace(0, len(test_split) - 1, min(64, len(test_split))).round().astype(np.int64)
    manifest = export_guardian(
        exported, run_dir / "artifact", test_split.batch(picks)["x"], [models[f.name] for f in data.folds]
    )
    report["artifact_fold"] = chosen.name
    report["parity_max_abs_diff"] = manifest["validation_metrics"]["onnx_parity_max_abs_diff"]
    report["total_secs"] = time.perf_counter() - began
    write_regime_report(report, run_dir)
    return GuardianOutcome(run_dir, models, exported, manifest, report, report["total_secs"])


def fold_stability_report(
    models: dict[str, GuardianModel],
    tables: dict[str, pl.DataFrame],
    chosen: FoldConfig,
    fold_stability: Any,
) -> dict[str, Any]:
    """Every other fold's model against the chosen one on the chosen fold's test range: a range after
    every fold's validation range (the folds' test ranges follow each other), so out of sample for all."""
    start, end = chosen.bounds_ns("test")
    reference = models[chosen.name].assign(tables[chosen.name], start, end)
    result: dict[str, Any] = {"range": [iso(start), iso(end)], "reference_fold": chosen.name, "pairs": {}}
    for name, model in models.items():
        if name == chosen.name:
            continue
        if model.fold is not None and model.fold.bounds_ns("test")[0] > start:
            continue  # a later fold's model has trained on this range: not out of sample for it
        other = model.assign(tables[name], start, end)
        if not np.array_equal(other.get_column("ts").to_numpy(), reference.get_column("ts").to_numpy()):
            raise RuntimeError("two folds' models labelled different bars of the same range; this is a bug")
        k = model.regimes.n_regimes
        entry = {
            "guardian_reported": fold_stability(
                other["regime"].to_numpy(), reference["regime"].to_numpy(), k
            ),
            "guardian_raw": fold_stability(
                other["regime_raw"].to_numpy(), reference["regime_raw"].to_numpy(), k
            ),
        }
        ts = reference.get_column("ts").to_numpy()
        mine = volatility_quartiles(tables[name], model.fold.bounds_ns("train")) if model.fold else None
        theirs = volatility_quartiles(tables[chosen.name], chosen.bounds_ns("train"))
        if mine is not None and theirs is not None:
            entry["volatility_quartiles_baseline"] = fold_stability(
                mine[np.searchsorted(_ts_ns(tables[name]), ts)],
                theirs[np.searchsorted(_ts_ns(tables[chosen.name]), ts)],
                4,
            )
        if model.fold is not None:
            step = models[chosen.name].step_ns
            window = models[chosen.name].config.window_bars
            mine_rv, theirs_rv = (
                rv_quartiles(
                    tables[fold_name].get_column(RETURN_FEATURE).to_numpy(),
                    _ts_ns(tables[fold_name]),
                    window,
                    bounds,
                    step,
                )
                for fold_name, bounds in (
                    (name, model.fold.bounds_ns("train")),
                    (chosen.name, chosen.bounds_ns("train")),
                )
            )
            entry["rv_quartiles_baseline"] = fold_stability(
                mine_rv[np.searchsorted(_ts_ns(tables[name]), ts)],
                theirs_rv[np.searchsorted(_ts_ns(tables[chosen.name]), ts)],
                4,
            )
        result["pairs"][f"{name} vs {chosen.name}"] = entry
    return result


def regime_separation_report(
    model: GuardianModel, feature_table: pl.DataFrame, frame: pl.DataFrame, fold: FoldConfig, step_ns: int
) -> dict[str, Any]:
    """How well the Guardian's regimes on `frame`'s bars (its test range) and the naive baselines'
    (quartiles of the window_bars realised volatility, and of realised_volatility_20; edges from the
    fold's training range) separate the realised volatility of the next window_bars bars."""
    from qa_engine.models.guardian.baseline import RV_BASELINE
    from qa_engine.models.guardian.baseline import fold_separation

    ts = _ts_ns(feature_table)
    returns = feature_table.get_column(RETURN_FEATURE).to_numpy()
    rows = np.searchsorted(ts, frame.get_column("ts").to_numpy())
    window = model.config.window_bars
    labellings = {
        "guardian": frame.get_column("regime").to_numpy(),
        RV_BASELINE: rv_quartiles(returns, ts, window, fold.bounds_ns("train"), step_ns)[rows],
    }
    twenty = volatility_quartiles(feature_table, fold.bounds_ns("train"))
    if twenty is not None:
        labellings["realised_volatility_20_quartiles"] = twenty[rows]
    counts = {name: 4 for name in labellings}
    counts["guardian"] = model.regimes.n_regimes
    return fold_separation(returns, ts, rows, labellings, counts, window, step_ns)
