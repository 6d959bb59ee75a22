"""Helpers for the feature tests: real bars shipped in the repository (tests.factories), and both twins
run on them."""

from __future__ import annotations

from functools import cache

import numpy as np
import polars as pl

from qa_engine.features.batch import compute_features_batch
from qa_engine.features.io import interval_ns
from qa_engine.features.spec import FeatureSet
from qa_engine.features.streaming import StreamingFeatureEngine
from qa_engine.features.streaming import stream_features
from tests import factories
from tests.factories import tick_file

KLINE_FILES = {
    ("BTCUSDT", "1m"): "binance_futures_BTCUSDT_1m",
    ("ETHUSDT", "1m"): "binance_futures_ETHUSDT_1m",
    ("BTCUSDT", "5m"): "binance_futures_BTCUSDT_5m",
    ("ETHUSDT", "5m"): "binance_futures_ETHUSDT_5m",
    ("ETHUSDT-SPOT", "5m"): "binance_spot_ETHUSDT_5m",
}


def real_bars(symbol: str, interval: str, n: int | None = None, offset: int = 0) -> pl.DataFrame:
    """`n` real bars of a kline series from upstream row `offset` (negative: from the end) as a bar
    table (ts = bar close time, int ns), exactly as load_kline_file gives those rows of the whole file."""
    return factories.real_bars(KLINE_FILES[(symbol, interval)], n, offset)


def arrays(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    return {column: frame.get_column(column).to_numpy() for column in frame.columns}


def run_batch(frame: pl.DataFrame, feature_set: FeatureSet, interval: str) -> np.ndarray:
    """(n, features) float64 from the batch twin, NaN where the batch value is null."""
    table = compute_features_batch(frame, feature_set, interval_ns(interval))
    return (
        np.column_stack(
            [
                table.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy()
                for name in feature_set.names
            ]
        )
        if table.height
        else np.empty((0, len(feature_set.names)))
    )


def run_streaming(frame: pl.DataFrame, feature_set: FeatureSet, interval: str) -> np.ndarray:
    """(n, features) float64 from the streaming twin, NaN during warm-up."""
    available = ("ohlcv", "taker_buy_volume") if "taker_buy_volume" in frame.columns else ("ohlcv",)
    engine = StreamingFeatureEngine(feature_set, interval_ns(interval), available=available)
    data = arrays(frame)
    return stream_features(
        engine,
        data["ts"],
        data["open"],
        data["high"],
        data["low"],
        data["close"],
        data["volume"],
        data.get("taker_buy_volume"),
    )


def max_abs_diff_by_feature(
    first: np.ndarray, second: np.ndarray, names: tuple[str, ...]
) -> dict[str, float]:
    """Largest |first - second| per feature; raises if the NaN (warm-up) masks differ."""
    result = {}
    for column, name in enumerate(names):
        mask_first, mask_second = np.isnan(first[:, column]), np.isnan(second[:, column])
        if not np.array_equal(mask_first, mask_second):
            row = int(np.flatnonzero(mask_first != mask_second)[0])
            raise AssertionError(f"{name}: warm-up / NaN masks differ, first at row {row}")
        valid = ~mask_first
        result[name] = (
            float(np.max(np.abs(first[valid, column] - second[valid, column]))) if valid.any() else 0.0
        )
    return result


@cache
def second_bars_with_taker_volume(symbol: str) -> pl.DataFrame:
    """Real 1-second bars aggregated from real trades, with taker buy volume (buyer is not the maker).

    Seconds without a trade are absent (not filled), so the table has gaps; the features restart
    their warm-up after each, like on any gappy data.
    """
    trades = pl.read_parquet(tick_file(f"binance_futures_{symbol}_trades_20240808.parquet"))
    second = 1_000_000_000
    return (
        trades.with_columns((pl.col("ts_event").dt.epoch("ns") // second * second + second).alias("ts"))
        .group_by("ts", maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("qty").sum().alias("volume"),
            pl.col("qty").filter(~pl.col("buyer_is_maker")).sum().alias("taker_buy_volume"),
        )
        .sort("ts")
    )
