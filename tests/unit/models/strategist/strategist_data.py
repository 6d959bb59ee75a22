"""Real-bar fixtures for the Strategist tests: Bybit BTCUSDT 5m bars (data/klines, see tests/factories.py),
their default features, and behaviour trajectories built from them (short episodes so a few thousand bars
suffice)."""

from __future__ import annotations

from functools import cache

import numpy as np
import polars as pl

from qa_engine.contract.policy_context import state_transform_for
from qa_engine.features.build import FeatureTable
from qa_engine.features.build import build_feature_table
from qa_engine.features.io import interval_ns
from qa_engine.features.sets import default_feature_set
from qa_engine.models.strategist.trajectories import TrajectoryConfig
from qa_engine.models.strategist.trajectories import TrajectorySet
from qa_engine.models.strategist.trajectories import build_trajectories
from tests import factories
from tests.factories import research_klines

BYBIT_BTC_5M = research_klines("bybit_linear_BTCUSDT_5m")
STEP_NS = interval_ns("5m")


@cache
def real_bars(
    series: str = "bybit_linear_BTCUSDT_5m", rows: int = 3_000, start: str | None = None
) -> pl.DataFrame:
    """`rows` real 5m bars of `series` from its first bar (or the first opening at or after `start`)."""
    return factories.real_bars(series, rows, start=start)


@cache
def real_features(rows: int = 3_000) -> tuple[FeatureTable, np.ndarray]:
    """The default feature table of the first `rows` BTCUSDT 5m bars (warm-up rows dropped) and the
    closes of the same rows."""
    bars = real_bars(rows=rows)
    table = build_feature_table(bars, default_feature_set(), STEP_NS)
    closes = bars.join(table.table.select("ts"), on="ts", how="semi").get_column("close").to_numpy()
    return table, closes


@cache
def real_trajectories(episode_bars: int = 64) -> TrajectorySet:
    table, closes = real_features()
    transform = state_transform_for(table.feature_set)
    return build_trajectories(
        table.table, closes, STEP_NS, TrajectoryConfig(episode_bars=episode_bars), transform
    )


def scaled_states(trajectories: TrajectorySet) -> np.ndarray:
    """States standardised over the rows the steps use (what train_strategist does with the train split)."""
    used = trajectories.states[np.unique(trajectories.row)]
    return (
        (trajectories.states - used.mean(axis=0)) / np.where(used.std(axis=0) > 0, used.std(axis=0), 1.0)
    ).clip(-8, 8)
