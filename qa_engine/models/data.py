"""From real bars to windowed, labelled, scaled datasets with fixed walk-forward folds (torch-free).

The path, for every model that reads bar windows:

    bars (kline file or catalog, one table per symbol)
      -> feature table (the feature library; the FFD order fitted on the training range only)
      -> forward-return labels from the bar closes (look forward only, never across a gap)
      -> window ends: encoder window and label horizon inside one gap-free run of one symbol
      -> fold splits by time with an embargo; scaler fitted on the training split only
      -> `WindowedDataset`: `batch(indices)` gathers (B, E, F) windows and (B, H) labels

Conventions. A bar is stamped at its close (`ts`, ns). The window that ends at bar t holds the
feature rows of bars t-E+1 .. t; its label row holds y[t, k-1] = ln(close[t+k] / close[t]),
k = 1..H, so a label only ever reads bars t+1 .. t+H (and close[t], the price the forecast is made
at). A window end belongs to a split when its bar and its last label bar both close inside the
split's time range, and it lies at least `embargo_bars` after the split starts: labels of
consecutive splits never overlap, and the embargo keeps a gap of >= H bars between them.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator

from qa_engine.errors import DataError
from qa_engine.features.build import build_feature_table
from qa_engine.features.families.fracdiff import fit_feature_set
from qa_engine.features.io import interval_ns
from qa_engine.features.io import load_catalog_bars
from qa_engine.features.io import load_kline_file
from qa_engine.features.sets import get_feature_set
from qa_engine.features.spec import FeatureSet
from qa_engine.inference.scaling import FeatureScaler
from qa_engine.inference.scaling import fit_feature_scaler

SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "validation", "test")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def to_ns(moment: datetime) -> int:
    """A datetime (naive = UTC) -> ns since epoch."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def iso(ts_ns: int) -> str:
    """ns since epoch -> '2025-01-01T00:05:00Z'."""
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BarSourceConfig(_Section):
    """One symbol's bars: a kline Parquet file (ts_open + OHLCV, the data/klines schema) or a catalog."""

    symbol: str = Field(description="label of the series, e.g. BTCUSDT (one series per symbol)")
    klines: Path | None = Field(
        None, description="kline Parquet file (ts_open, open, high, low, close, volume)"
    )
    catalog: Path | None = Field(None, description="ParquetDataCatalog folder (instead of klines)")
    instrument_id: str | None = Field(None, description="catalog instrument id, e.g. BTCUSDT-PERP.BINANCE")

    @model_validator(mode="after")
    def _one_source(self) -> BarSourceConfig:
        if (self.klines is None) == (self.catalog is None):
            raise ValueError(f"source '{self.symbol}': give exactly one of klines or catalog")
        if self.catalog is not None and not self.instrument_id:
            raise ValueError(f"source '{self.symbol}': a catalog source needs instrument_id")
        return self

    def describe(self) -> str:
        return str(self.klines) if self.klines is not None else f"{self.catalog}:{self.instrument_id}"


class FoldConfig(_Section):
    """One walk-forward fold: train [train_start, validation_start), validation [validation_start,
    test_start), test [test_start, test_end). Times are bar close times (UTC)."""

    name: str = Field(description="fold label, e.g. 2025-09")
    train_start: datetime
    validation_start: datetime
    test_start: datetime
    test_end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> FoldConfig:
        times = [self.train_start, self.validation_start, self.test_start, self.test_end]
        if any(to_ns(a) >= to_ns(b) for a, b in itertools.pairwise(times)):
            raise ValueError(
                f"fold '{self.name}': need train_start < validation_start < test_start < test_end, got "
                + " / ".join(str(t) for t in times)
            )
        return self

    def bounds_ns(self, split: SplitName) -> tuple[int, int]:
        edges = {
            "train": (self.train_start, self.validation_start),
            "validation": (self.validation_start, self.test_start),
            "test": (self.test_start, self.test_end),
        }[split]
        return to_ns(edges[0]), to_ns(edges[1])


class DatasetConfig(_Section):
    """Which bars, which features, which windows, which folds."""

    sources: list[BarSourceConfig] = Field(min_length=1, description="one entry per symbol")
    interval: str = Field("5m", description="bar interval, e.g. 5m")
    feature_set: str = Field("default", description="registered feature set (qa_engine.features.sets)")
    encoder_bars: int = Field(60, ge=1, description="bars of features per window (E)")
    horizon_bars: int = Field(12, ge=1, description="forward returns per label (H), k = 1..H bars ahead")
    embargo_bars: int | None = Field(
        None, description="bars skipped at the start of validation and test; None = horizon_bars; >= horizon"
    )
    history_bars: int = Field(
        2_016, ge=0, description="bars loaded before the first fold's train_start for the feature warm-up"
    )
    feature_clip: float = Field(8.0, gt=0, description="scaled features are clipped to +-feature_clip")
    folds: list[FoldConfig] = Field(min_length=1, description="walk-forward folds, in time order")

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        interval_ns(self.interval)
        if self.embargo_bars is not None and self.embargo_bars < self.horizon_bars:
            raise ValueError(
                f"embargo_bars ({self.embargo_bars}) must be >= horizon_bars ({self.horizon_bars}) so that "
                "labels of consecutive splits cannot overlap"
            )
        symbols = [source.symbol for source in self.sources]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"duplicate source symbols {symbols}")
        names = [fold.name for fold in self.folds]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate fold names {names}")
        for earlier, later in itertools.pairwise(self.folds):
            if to_ns(later.test_start) < to_ns(earlier.test_end):
                raise ValueError(
                    f"test ranges of folds '{earlier.name}' and '{later.name}' overlap: out-of-sample "
                    "results are pooled over folds, so every test range must come after the previous one"
                )
        return self

    @property
    def embargo(self) -> int:
        return self.horizon_bars if self.embargo_bars is None else self.embargo_bars

    @property
    def step_ns(self) -> int:
        return interval_ns(self.interval)


# ---- bars -------------------------------------------------------------------------------------


class WalkForwardRunConfig(BaseModel):
    """What every walk-forward training run config shares (Oracle, Guardian, baselines): a run id,
    the dataset with its folds, and which fold's model becomes the artifact. Subclasses add their
    model and trainer sections and override `id`'s default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field("run", pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="names the run folder")
    description: str = ""
    data: DatasetConfig
    export_fold: str | None = Field(
        None, description="fold whose model becomes the artifact; None = the last"
    )

    @model_validator(mode="after")
    def _export_fold_is_a_fold(self) -> WalkForwardRunConfig:
        names = [fold.name for fold in self.data.folds]
        if self.export_fold is not None and self.export_fold not in names:
            raise ValueError(f"export_fold '{self.export_fold}' is not one of the folds {names}")
        return self

    def chosen_fold(self) -> FoldConfig:
        """The fold whose model becomes the artifact: `export_fold`, or the last."""
        folds = self.data.folds
        return next(f for f in folds if f.name == self.export_fold) if self.export_fold else folds[-1]


def load_source_bars(source: BarSourceConfig, interval: str, start_ns: int, end_ns: int) -> pl.DataFrame:
    """Bars of one source with close time in [start_ns, end_ns): ts (int ns) + OHLCV."""
    if source.klines is not None:
        bars = load_kline_file(source.klines, interval)
        bars = bars.filter((pl.col("ts") >= start_ns) & (pl.col("ts") < end_ns))
    else:
        assert source.catalog is not None and source.instrument_id is not None
        bars, _ = load_catalog_bars(source.catalog, source.instrument_id, interval, start_ns, end_ns - 1)
    bars = bars.select("ts", "open", "high", "low", "close", "volume").sort("ts")
    if bars.height == 0:
        raise DataError(
            f"{source.describe()} has no {interval} bars closing in [{iso(start_ns)}, {iso(end_ns)})"
        )
    return bars


def bars_sha256(bars: pl.DataFrame) -> str:
    """sha256 of the bars' ts (int64) and OHLCV (float64) columns, little-endian, column by column."""
    digest = hashlib.sha256()
    for column, dtype in (("ts", "<i8"), *((c, "<f8") for c in ("open", "high", "low", "close", "volume"))):
        digest.update(column.encode())
        digest.update(np.ascontiguousarray(bars.get_column(column).to_numpy(), dtype=dtype).tobytes())
    return digest.hexdigest()


# ---- labels and windows -----------------------------------------------------------------------


def forward_log_returns(ts: np.ndarray, close: np.ndarray, horizon_bars: int, step_ns: int) -> np.ndarray:
    """(N, H): y[t, k-1] = ln(close[t+k] / close[t]) where bar t+k closes exactly k steps after bar t,
    NaN where it does not (a gap, or the end of the data). Reads only bars t .. t+H."""
    count = len(ts)
    labels = np.full((count, horizon_bars), np.nan)
    for k in range(1, horizon_bars + 1):
        if count <= k:
            break
        contiguous = (ts[k:] - ts[:-k]) == k * step_ns  # (N-k,)
        labels[:-k, k - 1] = np.where(contiguous, np.log(close[k:] / close[:-k]), np.nan)
    return labels


def past_log_returns(ts: np.ndarray, close: np.ndarray, horizon_bars: int, step_ns: int) -> np.ndarray:
    """(N, H): p[t, k-1] = ln(close[t] / close[t-k]) (the last k-bar return; the persistence forecast),
    NaN where bar t-k is not exactly k steps back."""
    count = len(ts)
    past = np.full((count, horizon_bars), np.nan)
    for k in range(1, horizon_bars + 1):
        if count <= k:
            break
        contiguous = (ts[k:] - ts[:-k]) == k * step_ns
        past[k:, k - 1] = np.where(contiguous, np.log(close[k:] / close[:-k]), np.nan)
    return past


def window_end_mask(ts: np.ndarray, series_id: np.ndarray, encoder_bars: int, step_ns: int) -> np.ndarray:
    """(N,) True where rows t-E+1 .. t are consecutive bars of one series (no gap, no symbol boundary)."""
    count = len(ts)
    mask = np.zeros(count, dtype=bool)
    span = encoder_bars - 1
    if count > span:
        first = np.arange(count - span)  # row t-E+1 for t = span .. N-1
        mask[span:] = (ts[span:] - ts[first] == span * step_ns) & (series_id[span:] == series_id[first])
    return mask


# ---- folds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowMeta:
    """What a model needs to know about its inputs, read from the dataset, never typed by hand."""

    feature_names: tuple[str, ...]
    encoder_bars: int
    horizon_bars: int
    interval: str
    target: str = "log_return_close"  # y[t, k-1] = ln(close[t+k] / close[t])

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


@dataclass
class WindowedDataset:
    """Windows of one split: `batch(indices)` -> {"x": (B, E, F) float32, "y": (B, H) float32}.

    features and labels are shared by the splits of a fold (rows = bars of every series, stacked);
    `ends` are the rows where this split's windows end. Labels are scaled by `target_scale` (per
    horizon step, fitted on the training split); `labels_raw` keeps log returns for evaluation.
    """

    name: SplitName
    meta: WindowMeta
    features: np.ndarray  # (N, F) float32, scaled and clipped
    labels: np.ndarray  # (N, H) float32, scaled; NaN where undefined
    labels_raw: np.ndarray  # (N, H) float64 log returns
    past_returns: np.ndarray  # (N, H) float64, ln(close[t] / close[t-k])
    ts: np.ndarray  # (N,) int64 bar close times
    series_id: np.ndarray  # (N,) int32, index into the fold's symbols
    ends: np.ndarray  # (M,) int64 rows where the split's windows end
    offsets: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.offsets = np.arange(-self.meta.encoder_bars + 1, 1, dtype=np.int64)  # (E,)

    def __len__(self) -> int:
        return len(self.ends)

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """(B, E) feature rows of the windows `indices` (positions in `ends`)."""
        return self.ends[indices][:, None] + self.offsets  # (B, E)

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        ends = self.ends[indices]  # (B,)
        return {"x": self.features[self.rows(indices)], "y": self.labels[ends]}  # (B, E, F), (B, H)


@dataclass(frozen=True)
class FoldData:
    """Everything one fold trains and evaluates on, plus what its manifest records."""

    fold: FoldConfig
    meta: WindowMeta
    feature_set: FeatureSet  # resolved and fitted (FFD order chosen on the training range)
    declared_feature_set_hash: str
    scaler: FeatureScaler
    target_scale: np.ndarray  # (H,) std of the training labels per horizon step
    splits: dict[str, WindowedDataset]
    symbols: tuple[str, ...]
    training_bars: dict[str, object]  # first/last bar close, rows and sha256 of the bars behind training

    def window_counts(self) -> dict[str, int]:
        """Windows per split, as the manifest's fold record and the fold reports give them."""
        return {split: len(dataset) for split, dataset in self.splits.items()}


def series_arrays(
    bars: pl.DataFrame, feature_set: FeatureSet, horizon_bars: int, step_ns: int
) -> tuple[dict[str, np.ndarray], FeatureSet]:
    """One symbol's rows past the feature warm-up: raw features (N, F), labels and past returns (N, H),
    bar close times (N,); and the resolved set that computed them. Features come from the feature
    library (causal: the row of bar t reads bars <= t); labels and past returns from the bar closes."""
    table = build_feature_table(bars, feature_set, step_ns)
    bar_ts = bars.get_column("ts").to_numpy()
    bar_close = bars.get_column("close").to_numpy()
    feature_ts = table.table.get_column("ts").to_numpy().astype(np.int64)
    rows = np.searchsorted(bar_ts, feature_ts)  # feature rows are a subset of the bars
    arrays = {
        "features": table.table.select(table.feature_set.names).to_numpy().astype(np.float64),
        "labels": forward_log_returns(bar_ts, bar_close, horizon_bars, step_ns)[rows],
        "past": past_log_returns(bar_ts, bar_close, horizon_bars, step_ns)[rows],
        "ts": feature_ts,
    }
    return arrays, table.feature_set


def _split_ends(
    ts: np.ndarray,
    valid: np.ndarray,
    bounds: tuple[int, int],
    horizon_bars: int,
    embargo_bars: int,
    step_ns: int,
) -> np.ndarray:
    start_ns, end_ns = bounds
    last_label_ns = ts + horizon_bars * step_ns
    inside = valid & (ts >= start_ns + embargo_bars * step_ns) & (last_label_ns < end_ns)
    return np.flatnonzero(inside).astype(np.int64)


def build_fold(
    config: DatasetConfig,
    fold: FoldConfig,
    bars_by_symbol: dict[str, pl.DataFrame],
    feature_set: FeatureSet | None = None,
) -> FoldData:
    """Features, labels, windows, scaler and splits of one fold, from bars that cover it.

    The FFD order is chosen on the first symbol's bars closing before `validation_start` and the same
    fitted set is applied to every symbol (one hash per model); the scaler and the label scale come
    from training-split rows only. `feature_set` overrides the registered set (tests use a small one).
    """
    step = config.step_ns
    declared = feature_set or get_feature_set(config.feature_set)
    train_start_ns, train_end_ns = fold.bounds_ns("train")
    symbols = tuple(source.symbol for source in config.sources)
    first = bars_by_symbol[symbols[0]]
    fitting_bars = first.filter(pl.col("ts") < train_end_ns)
    if fitting_bars.height == 0:
        raise DataError(f"fold '{fold.name}': no {symbols[0]} bars close before {iso(train_end_ns)}")
    fitted = (
        fit_feature_set(declared, fitting_bars) if any(s.kind == "ffd" for s in declared.specs) else declared
    )

    parts: list[dict[str, np.ndarray]] = []
    resolved: FeatureSet | None = None
    for series, symbol in enumerate(symbols):
        part, part_set = series_arrays(bars_by_symbol[symbol], fitted, config.horizon_bars, step)
        if resolved is None:
            resolved = part_set
        elif part_set.hash != resolved.hash:
            raise DataError(f"symbol {symbol} resolves the feature set differently from {symbols[0]}")
        part["series"] = np.full(len(part["ts"]), series, dtype=np.int32)
        parts.append(part)
    assert resolved is not None
    features = np.concatenate([p["features"] for p in parts])
    labels_raw = np.concatenate([p["labels"] for p in parts])
    past = np.concatenate([p["past"] for p in parts])
    ts = np.concatenate([p["ts"] for p in parts])
    series_id = np.concatenate([p["series"] for p in parts])

    valid = window_end_mask(ts, series_id, config.encoder_bars, step) & np.all(
        np.isfinite(labels_raw), axis=1
    )
    ends = {
        split: _split_ends(
            ts,
            valid,
            fold.bounds_ns(split),
            config.horizon_bars,
            0 if split == "train" else config.embargo,
            step,
        )
        for split in SPLITS
    }
    for split, rows in ends.items():
        if len(rows) == 0:
            start, end = fold.bounds_ns(split)
            raise DataError(
                f"fold '{fold.name}': no {split} window fits in [{iso(start)}, {iso(end)}) "
                f"(encoder {config.encoder_bars} + horizon {config.horizon_bars} bars; gaps and warm-up "
                "excluded)"
            )
    train_rows = (ts >= train_start_ns) & (ts < train_end_ns)
    scaler = fit_feature_scaler(features[train_rows], resolved.names, clip=config.feature_clip)
    target_scale = labels_raw[ends["train"]].std(axis=0)  # (H,)
    if not np.all(target_scale > 0):
        raise DataError(f"fold '{fold.name}': the training labels are constant; cannot scale targets")
    scaled = scaler.transform(features).astype(np.float32)
    labels = (labels_raw / target_scale).astype(np.float32)
    meta = WindowMeta(resolved.names, config.encoder_bars, config.horizon_bars, config.interval)
    splits: dict[str, WindowedDataset] = {
        split: WindowedDataset(split, meta, scaled, labels, labels_raw, past, ts, series_id, rows)
        for split, rows in ends.items()
    }
    behind_training = {
        symbol: bars.filter(pl.col("ts") < train_end_ns) for symbol, bars in bars_by_symbol.items()
    }
    digest = hashlib.sha256()
    for symbol in symbols:
        digest.update(symbol.encode())
        digest.update(bars_sha256(behind_training[symbol]).encode())
    first_ts = min(int(b.get_column("ts").min()) for b in behind_training.values())  # type: ignore[arg-type]
    last_ts = max(int(b.get_column("ts").max()) for b in behind_training.values())  # type: ignore[arg-type]
    training_bars = {
        "first_bar_close": iso(first_ts),
        "last_bar_close": iso(last_ts),
        "rows": int(sum(b.height for b in behind_training.values())),
        "sha256": digest.hexdigest(),
    }
    return FoldData(
        fold=fold,
        meta=meta,
        feature_set=resolved,
        declared_feature_set_hash=declared.hash,
        scaler=scaler,
        target_scale=target_scale,
        splits=splits,
        symbols=symbols,
        training_bars=training_bars,
    )


def load_bars(config: DatasetConfig) -> dict[str, pl.DataFrame]:
    """Every source's bars from `history_bars` before the first fold to the last fold's test end."""
    start = min(to_ns(fold.train_start) for fold in config.folds) - config.history_bars * config.step_ns
    end = max(to_ns(fold.test_end) for fold in config.folds)
    return {source.symbol: load_source_bars(source, config.interval, start, end) for source in config.sources}


def fold_summary(data: FoldData) -> dict[str, object]:
    """Windows per split and the split ranges, for logs and reports."""
    summary: dict[str, object] = {"fold": data.fold.name}
    for split, dataset in data.splits.items():
        ts = dataset.ts[dataset.ends]
        summary[split] = {"windows": len(dataset), "first_end": iso(int(ts[0])), "last_end": iso(int(ts[-1]))}
    return summary


def check_no_overlap(data: FoldData) -> None:
    """Re-check before training: every label bar of an earlier split closes before the first window end
    of the next split (a guard against edits to the split rules; a failure is a bug)."""
    step = interval_ns(data.meta.interval)
    for earlier, later in (("train", "validation"), ("validation", "test")):
        a, b = data.splits[earlier], data.splits[later]
        last_label_ns = int(a.ts[a.ends].max()) + data.meta.horizon_bars * step
        if last_label_ns >= int(b.ts[b.ends].min()):
            raise RuntimeError(f"fold '{data.fold.name}': {earlier} labels reach into {later}; this is a bug")
