"""Klines of a coarser interval from finer ones (5m -> 1h): only complete buckets, nothing filled.

A bucket (e.g. the hour 13:00-14:00) becomes a bar when every finer bar of it is there (12 bars of 5m);
a bucket with a missing bar is dropped, never built from what is left, and counted, so a resampled file
has exactly the bars the finer file can vouch for. open = first open, high = max, low = min, close = last
close, volume = sum. Buckets are aligned on the epoch (UTC), as the venues align their own klines.
The grouping is polars' `group_by_dynamic`; only the completeness rule is ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from qa_engine.data.intervals import KlineInterval
from qa_engine.data.intervals import parse_interval
from qa_engine.data.klines import bar_spacing_ns
from qa_engine.data.klines import interval_text
from qa_engine.data.klines import read_klines
from qa_engine.errors import DataError

OHLCV = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class ResampleResult:
    frame: pl.DataFrame  # ts_open + OHLCV of the coarser interval
    source_bars: int
    complete_buckets: int
    incomplete_buckets: int  # dropped: at least one finer bar missing


def resample_klines(frame: pl.DataFrame, source_interval: str, target_interval: str) -> ResampleResult:
    """`frame` (ts_open + OHLCV at `source_interval`) as complete bars of `target_interval`."""
    source, target = parse_interval(source_interval), parse_interval(target_interval)
    _check_intervals(source, target)
    spacing = bar_spacing_ns(frame)
    if spacing is not None and spacing != source.duration_ns:
        raise DataError(f"the klines are not {source.value} bars: they are {interval_text(spacing)} apart")
    per_bucket = target.duration_ns // source.duration_ns
    every = f"{target.duration_ns // 60_000_000_000}m"
    grouped = (
        frame.sort("ts_open")
        .group_by_dynamic("ts_open", every=every, closed="left", label="left")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.len().alias("bars"),
        )
    )
    complete = grouped.filter(pl.col("bars") == per_bucket).drop("bars")
    return ResampleResult(
        frame=complete.select("ts_open", *OHLCV),
        source_bars=frame.height,
        complete_buckets=complete.height,
        incomplete_buckets=grouped.height - complete.height,
    )


def resample_file(source: Path, target: Path, source_interval: str, target_interval: str) -> ResampleResult:
    """Read a kline file, resample it and write Parquet (zstd) atomically: a crash leaves no half file."""
    result = resample_klines(read_klines(source), source_interval, target_interval)
    if result.complete_buckets == 0:
        raise DataError(f"{source}: no complete {target_interval} bucket in {result.source_bars} bars")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    result.frame.write_parquet(partial, compression="zstd", compression_level=19)
    partial.replace(target)
    return result


def _check_intervals(source: KlineInterval, target: KlineInterval) -> None:
    if target.duration_ns <= source.duration_ns or target.duration_ns % source.duration_ns:
        raise DataError(
            f"cannot resample {source.value} bars to {target.value}: the target interval must be a whole "
            f"multiple (> 1) of the source interval"
        )
