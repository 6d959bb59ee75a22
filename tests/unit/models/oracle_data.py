"""Real-bar fixtures for the Oracle / shared-infrastructure tests: Binance USDT-M BTCUSDT 5m bars (the
research series data/klines/binance_futures_BTCUSDT_5m.parquet plus test slices, see tests/factories.py and
the PROVENANCE.md files), a small real feature set, tiny folds and tiny models."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC
from datetime import datetime
from functools import cache

import numpy as np
import polars as pl

from qa_engine.features.io import interval_ns
from qa_engine.features.io import load_kline_file
from qa_engine.features.sets import default_feature_set
from qa_engine.features.spec import FeatureSet
from qa_engine.models.data import DatasetConfig
from qa_engine.models.data import FoldData
from qa_engine.models.data import build_fold
from tests.factories import real_bars
from tests.factories import research_klines

BTC_SERIES = "binance_futures_BTCUSDT_5m"
BTC_5M = research_klines(BTC_SERIES)  # 2024-12-31 00:00 .. 2026-02-19 16:55 (after the 230-day hole)
STEP_NS = interval_ns("5m")
SMALL_FEATURES = (
    "log_return_1",
    "log_return_5",
    "williams_r_14",
    "realised_volatility_20",
    "time_of_day_sin",
)


@cache
def all_bars() -> pl.DataFrame:
    """Every bar of data/klines/binance_futures_BTCUSDT_5m.parquet, as a bar table."""
    return load_kline_file(BTC_5M, "5m")


def bars_from(start: str, count: int, series: str = BTC_SERIES) -> pl.DataFrame:
    """`count` consecutive real 5m bars of `series` whose close time is at or after `start` (ISO, UTC)."""
    start_ns = int(datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp()) * 1_000_000_000
    return real_bars(series, count, start=start_ns - STEP_NS)  # close >= start <=> open >= start - 5m


@cache
def small_feature_set() -> FeatureSet:
    """Five real features of the default set with short warm-ups (fast, no FFD fit)."""
    full = default_feature_set()
    return FeatureSet("small-test", 1, tuple(full.spec(name) for name in SMALL_FEATURES))


def iso_at(bars: pl.DataFrame, row: int) -> str:
    ts = int(bars.get_column("ts")[row])
    return datetime.fromtimestamp(ts / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tiny_config(bars: pl.DataFrame, encoder_bars: int = 16, horizon_bars: int = 4, **extra) -> DatasetConfig:
    """One fold over `bars`: train the first 60% of rows, validation the next 20%, test the rest."""
    count = bars.height
    fold = {
        "name": "tiny",
        "train_start": iso_at(bars, 0),
        "validation_start": iso_at(bars, int(count * 0.6)),
        "test_start": iso_at(bars, int(count * 0.8)),
        "test_end": iso_at(bars, count - 1),
    }
    return DatasetConfig.model_validate(
        {
            "sources": [{"symbol": "BTCUSDT", "klines": str(BTC_5M)}],
            "encoder_bars": encoder_bars,
            "horizon_bars": horizon_bars,
            "folds": [fold],
            **extra,
        }
    )


@cache
def tiny_fold(start: str = "2025-03-01T00:00:00", count: int = 1_500) -> FoldData:
    bars = bars_from(start, count)
    config = tiny_config(bars)
    return build_fold(config, config.folds[0], {"BTCUSDT": bars}, feature_set=small_feature_set())


def tiny_model(data: FoldData, seed: int = 0, **config):
    """A small TFT sized from the fold's metadata (imports torch lazily)."""
    import torch

    from qa_engine.models.oracle.network import ForecastShape
    from qa_engine.models.oracle.network import TemporalFusionTransformer
    from qa_engine.models.oracle.network import TFTConfig

    torch.set_num_threads(1)  # tiny tensors: a second thread only adds contention on the 2-core box
    torch.manual_seed(seed)
    settings = {"hidden_size": 8, "variable_size": 2, "attention_heads": 2, "dropout": 0.1, **config}
    meta = data.meta
    model = TemporalFusionTransformer(
        TFTConfig(**settings), ForecastShape(meta.n_features, meta.encoder_bars, meta.horizon_bars)
    )
    return model, asdict(model.config)


def real_windows(data: FoldData, split: str = "test", count: int = 8) -> np.ndarray:
    """`count` evenly spaced scaled windows (B, E, F) of a split."""
    dataset = data.splits[split]
    return dataset.batch(np.linspace(0, len(dataset) - 1, count).round().astype(np.int64))["x"]
