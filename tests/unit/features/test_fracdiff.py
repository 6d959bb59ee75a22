"""FFD order chosen on the training range only, stored in the spec and the hash."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from qa_engine.errors import DataError
from qa_engine.features.build import build_feature_table
from qa_engine.features.families.fracdiff import ADF_CRITICAL_5PCT
from qa_engine.features.families.fracdiff import choose_ffd_order
from qa_engine.features.families.fracdiff import fit_feature_set
from qa_engine.features.sets import default_feature_set
from tests.unit.features.conftest import real_bars

FIVE_MINUTES_NS = 300_000_000_000


def test_choose_ffd_order_picks_the_smallest_stationary_order_on_real_closes() -> None:
    closes = real_bars("BTCUSDT", "5m", 30_000).get_column("close").to_numpy()

    choice = choose_ffd_order(closes)

    assert choice.passed
    assert 0.0 < choice.order < 1.0
    assert choice.adf_statistic < ADF_CRITICAL_5PCT
    tried_orders = [order for order, _, _ in choice.tried]
    assert tried_orders[-1] == choice.order
    # every smaller order tried failed the test: the choice is the smallest that passes
    assert all(p_value >= 0.05 for _, _, p_value in choice.tried[:-1])
    assert choice.tried[0][0] == 0.0 and choice.tried[0][2] > 0.05  # log price itself is not stationary


def test_fitted_set_records_the_order_and_changes_the_hash() -> None:
    bars = real_bars("ETHUSDT", "5m", 20_000)

    fitted = fit_feature_set(default_feature_set(), bars)

    spec = fitted.spec("ffd_log_close")
    assert spec.param("order") == choose_ffd_order(bars.get_column("close").to_numpy()).order
    assert "20000 bars" in str(spec.param("fitted_on"))
    assert fitted.hash != default_feature_set().hash
    assert fitted.spec("sma_20") == default_feature_set().spec("sma_20")


def test_fit_uses_the_training_range_only() -> None:
    bars = real_bars("BTCUSDT", "5m", 24_000)
    train_end = int(bars.get_column("ts")[20_000])
    altered_future = pl.concat(
        [
            bars.head(20_000),
            bars.slice(20_000).with_columns(
                (pl.col("close") * 1.5).alias("close"),
                (pl.col("high") * 1.5).alias("high"),
                (pl.col("low") * 1.5).alias("low"),
                (pl.col("open") * 1.5).alias("open"),
            ),
        ]
    )

    original = build_feature_table(bars, default_feature_set(), FIVE_MINUTES_NS, train_end_ns=train_end)
    with_other_future = build_feature_table(
        altered_future, default_feature_set(), FIVE_MINUTES_NS, train_end_ns=train_end
    )

    assert original.feature_set.hash == with_other_future.feature_set.hash
    before = original.table.filter(pl.col("ts") < train_end)
    np.testing.assert_array_equal(
        before.get_column("ffd_log_close").to_numpy(),
        with_other_future.table.filter(pl.col("ts") < train_end).get_column("ffd_log_close").to_numpy(),
    )


def test_too_short_training_range_is_refused() -> None:
    with pytest.raises(DataError, match="training range has"):
        choose_ffd_order(real_bars("BTCUSDT", "5m", 200).get_column("close").to_numpy())
