"""The input validators name the column and row of bad data and never fix it silently."""

from __future__ import annotations

import polars as pl
import pytest

from qa_engine.errors import DataError
from qa_engine.reporting.schema import EQUITY_CURVE_SCHEMA
from qa_engine.reporting.schema import ROUND_TRIP_SCHEMA
from qa_engine.reporting.schema import empty_round_trips
from qa_engine.reporting.schema import validate_equity_curve
from qa_engine.reporting.schema import validate_round_trips
from tests.unit.reporting.factories import equity_curve
from tests.unit.reporting.factories import round_trips


def test_valid_inputs_pass_and_keep_only_schema_columns():
    curve = equity_curve([100, 101]).with_columns(extra=pl.lit(1))

    checked = validate_equity_curve(curve)

    assert checked.columns == list(EQUITY_CURVE_SCHEMA)
    assert validate_round_trips(round_trips([1, -1])).columns == list(ROUND_TRIP_SCHEMA)
    assert validate_round_trips(empty_round_trips()).height == 0


def test_empty_equity_curve_is_a_data_error():
    with pytest.raises(DataError, match="no rows"):
        validate_equity_curve(pl.DataFrame(schema=EQUITY_CURVE_SCHEMA))


def test_missing_column_is_named():
    with pytest.raises(DataError, match="position_notional"):
        validate_equity_curve(equity_curve([100, 101]).drop("position_notional"))


def test_naive_or_microsecond_timestamps_are_a_dtype_error():
    naive = equity_curve([100, 101]).with_columns(pl.col("ts").dt.replace_time_zone(None))
    micro = equity_curve([100, 101]).with_columns(pl.col("ts").dt.cast_time_unit("us"))

    with pytest.raises(DataError, match=r"wrong dtype.*ts"):
        validate_equity_curve(naive)
    with pytest.raises(DataError, match=r"wrong dtype.*ts"):
        validate_equity_curve(micro)


def test_nan_equity_names_the_row():
    curve = equity_curve([100, 101, 102]).with_columns(equity=pl.Series([100.0, 101.0, float("nan")]))

    with pytest.raises(DataError, match=r"equity is NaN or infinite at row 2"):
        validate_equity_curve(curve)


def test_null_equity_names_the_row():
    curve = equity_curve([100, 101, 102]).with_columns(
        equity=pl.Series([100.0, None, 102.0], dtype=pl.Float64)
    )

    with pytest.raises(DataError, match=r"equity is null at row 1"):
        validate_equity_curve(curve)


def test_repeated_timestamp_is_a_data_error():
    curve = pl.concat([equity_curve([100, 101]), equity_curve([102])])  # rows at T0, T0+1d, T0

    with pytest.raises(DataError, match=r"not strictly increasing .* at row 2 "):
        validate_equity_curve(curve)


def test_negative_notional_is_a_data_error():
    with pytest.raises(DataError, match=r"position_notional is negative .* at row 1 "):
        validate_equity_curve(equity_curve([100, 101], notional=[0, -5]))


def test_unknown_side_is_a_data_error():
    trades = round_trips([1, 2]).with_columns(side=pl.Series(["LONG", "BUY"]))

    with pytest.raises(DataError, match="side is not one of"):
        validate_round_trips(trades)


def test_exit_before_entry_is_a_data_error():
    trades = round_trips([1]).with_columns(exit_ts=pl.col("entry_ts") - pl.duration(hours=1, time_unit="ns"))

    with pytest.raises(DataError, match="exit_ts is before entry_ts at row 0"):
        validate_round_trips(trades)


def test_zero_quantity_is_a_data_error():
    trades = round_trips([1]).with_columns(quantity=pl.lit(0.0))

    with pytest.raises(DataError, match="quantity is not positive"):
        validate_round_trips(trades)
