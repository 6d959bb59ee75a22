"""Input contracts of the reporting layer: the equity curve and the round-trip table.

Both are plain polars DataFrames so that the backtest runner (or a notebook) can build them without
Nautilus objects. The validators below are strict: a wrong dtype, a null, a NaN or an unsorted
timestamp is a ``DataError`` naming the column and row, never silently cast, dropped or filled.

Equity curve (one row per bar close, ``EQUITY_CURVE_SCHEMA``):

    ts                 Datetime[ns, UTC]  bar close time, strictly increasing
    equity             Float64            account equity in quote currency (balance + unrealised pnl),
                                          marked at that bar close; finite (may be <= 0 after ruin)
    position_notional  Float64            absolute open notional in quote currency, >= 0, 0 when flat

The runner should emit a first row at the start of the run (equity == starting balance, notional 0):
the run's duration is measured from the first to the last ``ts``.

Round trips (one row per closed round trip, a flip is two rows, ``ROUND_TRIP_SCHEMA``):

    instrument_id  Utf8               e.g. "BTCUSDT-PERP.BINANCE"
    side           Utf8               "LONG" or "SHORT"
    entry_ts       Datetime[ns, UTC]  time of the opening fill
    exit_ts        Datetime[ns, UTC]  time of the closing fill, >= entry_ts
    quantity       Float64            > 0, in base units
    entry_price    Float64            average entry price, > 0
    exit_price     Float64            average exit price, > 0
    gross_pnl      Float64            pnl before fees, quote currency
    fees           Float64            fees of this round trip, quote currency (negative = rebate)
    funding        Float64            funding received (> 0) or paid (< 0) while it was open
    net_pnl        Float64            gross_pnl - fees + funding
"""

from __future__ import annotations

from typing import Final
from typing import Literal

import polars as pl

from qa_engine.errors import DataError

UTC_NS: Final = pl.Datetime(time_unit="ns", time_zone="UTC")

TradeSide = Literal["LONG", "SHORT"]
TRADE_SIDES: Final[tuple[str, ...]] = ("LONG", "SHORT")

EQUITY_CURVE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "ts": UTC_NS,
    "equity": pl.Float64(),
    "position_notional": pl.Float64(),
}

ROUND_TRIP_SCHEMA: Final[dict[str, pl.DataType]] = {
    "instrument_id": pl.Utf8(),
    "side": pl.Utf8(),
    "entry_ts": UTC_NS,
    "exit_ts": UTC_NS,
    "quantity": pl.Float64(),
    "entry_price": pl.Float64(),
    "exit_price": pl.Float64(),
    "gross_pnl": pl.Float64(),
    "fees": pl.Float64(),
    "funding": pl.Float64(),
    "net_pnl": pl.Float64(),
}


def empty_round_trips() -> pl.DataFrame:
    """A round-trip table with no rows and the right schema (a run without closed trades)."""
    return pl.DataFrame(schema=ROUND_TRIP_SCHEMA)


def validate_equity_curve(equity: pl.DataFrame, name: str = "equity curve") -> pl.DataFrame:
    """Check ``equity`` against ``EQUITY_CURVE_SCHEMA``; return it with only the schema's columns.

    Raises ``DataError`` when it is empty, a column is missing or has another dtype, a value is
    null/NaN/infinite, ``position_notional`` is negative or ``ts`` is not strictly increasing.
    """
    _check_columns(equity, EQUITY_CURVE_SCHEMA, name)
    if equity.height == 0:
        raise DataError(f"{name} has no rows: the backtest produced no bar closes to report on")
    _check_no_nulls(equity, EQUITY_CURVE_SCHEMA, name)
    _check_finite(equity, ("equity", "position_notional"), name)
    _check_first_violation(
        equity, pl.col("position_notional") < 0, name, "position_notional is negative (must be absolute)"
    )
    _check_first_violation(
        equity,
        pl.col("ts").diff() <= pl.duration(nanoseconds=0),
        name,
        "ts is not strictly increasing (duplicate or out-of-order bar close)",
    )
    return equity.select(list(EQUITY_CURVE_SCHEMA))


def validate_round_trips(trades: pl.DataFrame, name: str = "round trips") -> pl.DataFrame:
    """Check ``trades`` against ``ROUND_TRIP_SCHEMA``; return it with only the schema's columns.

    An empty table (no closed trades) is valid. Raises ``DataError`` on a missing column or dtype
    mismatch, a null/NaN/infinite value, an unknown side, ``exit_ts < entry_ts`` or a non-positive
    quantity or price.
    """
    _check_columns(trades, ROUND_TRIP_SCHEMA, name)
    if trades.height == 0:
        return trades.select(list(ROUND_TRIP_SCHEMA))
    _check_no_nulls(trades, ROUND_TRIP_SCHEMA, name)
    float_columns = tuple(c for c, dtype in ROUND_TRIP_SCHEMA.items() if dtype == pl.Float64())
    _check_finite(trades, float_columns, name)
    _check_first_violation(
        trades, ~pl.col("side").is_in(list(TRADE_SIDES)), name, f"side is not one of {list(TRADE_SIDES)}"
    )
    _check_first_violation(trades, pl.col("exit_ts") < pl.col("entry_ts"), name, "exit_ts is before entry_ts")
    for column in ("quantity", "entry_price", "exit_price"):
        _check_first_violation(trades, pl.col(column) <= 0, name, f"{column} is not positive")
    return trades.select(list(ROUND_TRIP_SCHEMA))


def _check_columns(frame: pl.DataFrame, schema: dict[str, pl.DataType], name: str) -> None:
    missing = [column for column in schema if column not in frame.columns]
    if missing:
        raise DataError(f"{name} is missing column(s) {missing}; expected {_describe(schema)}")
    wrong = [
        f"{column}: got {frame.schema[column]}, expected {dtype}"
        for column, dtype in schema.items()
        if frame.schema[column] != dtype
    ]
    if wrong:
        raise DataError(
            f"{name} has wrong dtype(s): {'; '.join(wrong)}. Cast before reporting, e.g. "
            "pl.col('ts').dt.cast_time_unit('ns').dt.convert_time_zone('UTC') or pl.col(x).cast(pl.Float64)"
        )


def _check_no_nulls(frame: pl.DataFrame, schema: dict[str, pl.DataType], name: str) -> None:
    for column in schema:
        _check_first_violation(frame, pl.col(column).is_null(), name, f"{column} is null")


def _check_finite(frame: pl.DataFrame, columns: tuple[str, ...], name: str) -> None:
    for column in columns:
        _check_first_violation(frame, ~pl.col(column).is_finite(), name, f"{column} is NaN or infinite")


def _check_first_violation(frame: pl.DataFrame, bad: pl.Expr, name: str, what: str) -> None:
    """Raise a ``DataError`` naming the first row (index and timestamp) where ``bad`` holds."""
    flagged = frame.with_row_index("_row").filter(bad.fill_null(False))
    if flagged.height == 0:
        return
    first = flagged.row(0, named=True)
    ts_column = "ts" if "ts" in first else "entry_ts"
    raise DataError(
        f"{name}: {what} at row {first['_row']} ({ts_column}={first.get(ts_column)}); "
        f"{flagged.height} row(s) affected. Fix the table's producer: nothing is dropped or filled here."
    )


def _describe(schema: dict[str, pl.DataType]) -> str:
    return ", ".join(f"{column}: {dtype}" for column, dtype in schema.items())
