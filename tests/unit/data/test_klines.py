from __future__ import annotations

import zipfile
from datetime import UTC
from datetime import datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from qa_engine.data.klines import KLINE_SCHEMA
from qa_engine.data.klines import epoch_unit_counts
from qa_engine.data.klines import read_klines
from qa_engine.data.klines import read_klines_many
from qa_engine.errors import DataError
from tests.factories import binance_dump_rows
from tests.factories import binance_spot_klines_2021_lines
from tests.factories import real_klines
from tests.factories import research_klines
from tests.factories import write_text
from tests.factories import write_zip

BINANCE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
    "taker_buy_quote_volume,ignore"
)


def _ohlcv(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(list(KLINE_SCHEMA))


def test_shipped_parquet_reads_with_the_normalised_schema():
    frame = read_klines(research_klines("bybit_linear_BTCUSDT_5m"))

    assert frame.schema == pl.Schema(KLINE_SCHEMA)
    assert frame.height == 116_350
    assert frame["ts_open"][0] == datetime(2025, 1, 1, tzinfo=UTC)
    assert frame.row(0)[1:] == (93530.0, 93672.8, 93501.3, 93630.1, 147.13)


def test_csv_with_header_and_iso_times_equals_the_parquet_rows(tmp_path):
    bars = real_klines("bybit_linear_ETHUSDT_5m", 50)
    path = tmp_path / "eth.csv"
    bars.with_columns(pl.col("ts_open").dt.strftime("%Y-%m-%d %H:%M:%S").alias("date")).select(
        "date", "open", "high", "low", "close", "volume"
    ).write_csv(path)

    assert_frame_equal(read_klines(path), bars)


def test_csv_with_epoch_ms_and_alias_names_is_read(tmp_path):
    bars = real_klines("binance_futures_BTCUSDT_1m", 30)
    path = tmp_path / "klines.csv"
    bars.select(
        pl.col("ts_open").dt.epoch("ms").alias("Timestamp"),
        pl.col("open").alias("Open"),
        pl.col("high").alias("High"),
        pl.col("low").alias("Low"),
        pl.col("close").alias("Close"),
        pl.col("volume").alias("Volume"),
    ).write_csv(path)

    assert_frame_equal(read_klines(path), bars)


def test_csv_with_mixed_iso_forms_is_read_as_utc(tmp_path):
    bars = real_klines("bybit_linear_BTCUSDT_5m", 2)
    rows = [
        f"2025-01-01T00:00:00Z,{','.join(repr(v) for v in bars.row(0)[1:])}",
        f"2025-01-01 01:05:00+01:00,{','.join(repr(v) for v in bars.row(1)[1:])}",
    ]
    path = write_text(tmp_path / "mixed.csv", rows, header="timestamp,open,high,low,close,volume")

    assert read_klines(path)["ts_open"].to_list() == bars["ts_open"].to_list()


def test_binance_dump_in_milliseconds_2024(tmp_path):
    bars = real_klines("binance_futures_BTCUSDT_5m", 20, start="2024-03-01")
    path = write_text(tmp_path / "BTCUSDT-5m-2024-03.csv", binance_dump_rows(bars, "5m", "ms"))

    frame = read_klines(path)

    assert_frame_equal(_ohlcv(frame), bars)
    assert frame["ts_open"][0] == datetime(2024, 3, 1, tzinfo=UTC)


def test_binance_dump_in_microseconds_2025(tmp_path):
    bars = real_klines("binance_futures_BTCUSDT_1m", 20, start="2025-05-05")
    lines = binance_dump_rows(bars, "1m", "us")
    path = write_text(tmp_path / "BTCUSDT-1m-2025-05-05.csv", lines)

    frame = read_klines(path)

    assert lines[0].startswith("1746403200000000,")  # 2025-05-05 00:00 in µs
    assert_frame_equal(_ohlcv(frame), bars)


def test_binance_dump_mixing_ms_and_us_across_the_2025_switch(tmp_path):
    bars = real_klines("binance_futures_BTCUSDT_5m", 24, start="2024-12-31T23:00:00")
    units = ["ms" if time.year == 2024 else "us" for time in bars["ts_open"]]
    path = write_text(tmp_path / "BTCUSDT-5m-mixed.csv", binance_dump_rows(bars, "5m", units))

    frame = read_klines(path)

    assert units.count("ms") == 12 and units.count("us") == 12
    assert_frame_equal(_ohlcv(frame), bars)
    raw_times = pl.read_csv(path, has_header=False).to_series(0)
    assert epoch_unit_counts(raw_times) == {"ms": 12, "us": 12}


def test_binance_zip_dump_is_read(tmp_path):
    bars = real_klines("binance_futures_ETHUSDT_1m", 15, start="2025-05-05")
    path = write_zip(
        tmp_path / "ETHUSDT-1m-2025-05-05.zip",
        "ETHUSDT-1m-2025-05-05.csv",
        binance_dump_rows(bars, "1m", "us"),
    )

    assert_frame_equal(_ohlcv(read_klines(path)), bars)


def test_binance_dump_keeps_quote_volume_trade_count_and_taker_buy_volumes(tmp_path):
    path = write_text(tmp_path / "BTCUSDT-1m-2021-10-22.csv", binance_spot_klines_2021_lines())

    frame = read_klines(path)

    assert frame.height == 10
    assert frame["ts_open"][0] == datetime(2021, 10, 22, 23, 3, tzinfo=UTC)
    assert frame.row(0, named=True) == {
        "ts_open": datetime(2021, 10, 22, 23, 3, tzinfo=UTC),
        "open": 60685.22,
        "high": 60729.84,
        "low": 60670.9,
        "close": 60719.27,
        "volume": 21.63272,
        "quote_volume": 1313200.0134041,
        "trade_count": 617,
        "taker_buy_volume": 12.28492,
        "taker_buy_quote_volume": 745719.4102284,
    }


def test_binance_dump_with_header_row_is_read(tmp_path):
    path = write_text(tmp_path / "with_header.csv", binance_spot_klines_2021_lines(), header=BINANCE_HEADER)

    frame = read_klines(path)

    assert frame.height == 10
    assert frame["trade_count"].to_list()[-1] == 7


def test_read_many_stacks_files_and_keeps_optional_columns(tmp_path):
    dump = write_text(tmp_path / "a.csv", binance_spot_klines_2021_lines())
    bars = real_klines("bybit_linear_BTCUSDT_5m", 3)
    parquet = tmp_path / "b.parquet"
    bars.write_parquet(parquet)

    frame = read_klines_many([dump, parquet])

    assert frame.height == 13
    assert frame["trade_count"].null_count() == 3


def test_unknown_timestamp_unit_names_the_file_and_line(tmp_path):
    lines = binance_dump_rows(real_klines("binance_futures_BTCUSDT_1m", 5), "1m", "ms")
    lines[3] = "17464032," + lines[3].split(",", 1)[1]  # a time in no plausible unit
    path = write_text(tmp_path / "bad_time.csv", lines)

    with pytest.raises(DataError, match=r"bad_time\.csv line 4: time 17464032 .*unknown unit"):
        read_klines(path)


def test_truncated_file_names_the_short_line(tmp_path):
    lines = binance_dump_rows(real_klines("binance_futures_BTCUSDT_1m", 5), "1m", "ms")
    lines[-1] = ",".join(lines[-1].split(",")[:7])  # download cut in the middle of the last line
    path = write_text(tmp_path / "cut.csv", lines)

    with pytest.raises(DataError, match=r"cut\.csv line 5 has 7 of 12 fields.*truncated"):
        read_klines(path)


def test_unparseable_value_names_column_and_line(tmp_path):
    bars = real_klines("bybit_linear_BTCUSDT_5m", 4)
    path = tmp_path / "bad_value.csv"
    bars.with_columns(pl.col("high").cast(pl.String)).with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("93,6x")).otherwise(pl.col("high")).alias("high")
    ).write_csv(path)

    with pytest.raises(DataError, match=r"bad_value\.csv line 4: cannot read '93,6x' in column 'high'"):
        read_klines(path)


def test_missing_column_lists_what_was_found(tmp_path):
    bars = real_klines("bybit_linear_BTCUSDT_5m", 3).drop("volume")
    path = tmp_path / "no_volume.csv"
    bars.write_csv(path)

    with pytest.raises(DataError, match=r"no_volume\.csv: missing column\(s\) volume; found ts_open, open"):
        read_klines(path)


def test_empty_file_is_a_data_error(tmp_path):
    path = write_text(tmp_path / "empty.csv", [""])

    with pytest.raises(DataError, match="empty"):
        read_klines(path)


def test_corrupt_zip_is_a_data_error(tmp_path):
    good = write_zip(tmp_path / "good.zip", "x.csv", binance_spot_klines_2021_lines())
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[:-30])

    with pytest.raises(DataError, match=r"cut\.zip.*re-download"):
        read_klines(cut)


def test_zip_with_two_members_is_refused(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "1")
        archive.writestr("b.csv", "2")

    with pytest.raises(DataError, match="exactly one .csv"):
        read_klines(path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_klines(tmp_path / "nope.parquet")
