"""From bars to a checked feature table: fit (FFD order), resolve inputs, compute, drop warm-up, verify."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from qa_engine.errors import DataError
from qa_engine.features.batch import compute_features_batch
from qa_engine.features.batch import prepare_bars
from qa_engine.features.families.fracdiff import fit_feature_set
from qa_engine.features.spec import FeatureSet
from qa_engine.features.spec import available_inputs


@dataclass(frozen=True)
class FeatureTable:
    """A computed feature table and the exact (resolved, fitted) set that produced it."""

    table: pl.DataFrame
    feature_set: FeatureSet
    declared_hash: str
    warmup_rows_dropped: int
    segments: int


def build_feature_table(
    bars: pl.DataFrame | pl.LazyFrame,
    feature_set: FeatureSet,
    interval_ns: int,
    train_end_ns: int | None = None,
    start_ns: int | None = None,
) -> FeatureTable:
    """Features of `bars`, one row per bar past the warm-up, no null, NaN or inf anywhere.

    train_end_ns: choose the FFD order on the bars before it (the training range) and record it in
    the set. start_ns: rows before it are history for the warm-up only and are not returned.
    """
    frame = prepare_bars(bars, interval_ns)
    fitted = feature_set
    if train_end_ns is not None:
        training = frame.filter(pl.col("ts") < train_end_ns)
        fitted = fit_feature_set(feature_set, training)
    resolved = fitted.resolve(available_inputs(frame.columns))
    computed = compute_features_batch(frame, resolved, interval_ns)
    ts = computed.get_column("ts").to_numpy()
    segments = 1 + int(np.count_nonzero(np.diff(ts) != interval_ns)) if len(ts) else 0
    if start_ns is not None:
        computed = computed.filter(pl.col("ts") >= start_ns)
    complete = computed.drop_nulls()
    dropped = computed.height - complete.height
    if complete.height == 0:
        raise DataError(
            f"no bar is past the warm-up of feature set '{resolved.name}' ({resolved.warmup_bars} bars "
            f"per gap-free segment); the data holds {frame.height} bars in {segments} segment(s)"
        )
    bad = [
        name
        for name, count in zip(
            resolved.names,
            complete.select([(~pl.col(n).is_finite()).sum() for n in resolved.names]).row(0),
            strict=True,
        )
        if count
    ]
    if bad:
        first = complete.filter(~pl.all_horizontal([pl.col(n).is_finite() for n in bad])).get_column("ts")[0]
        raise DataError(
            f"features {bad} are NaN/inf after their warm-up (first at ts={first}); this is a bug"
        )
    return FeatureTable(complete, resolved, feature_set.hash, dropped, segments)
