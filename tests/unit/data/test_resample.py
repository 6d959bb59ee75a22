"""`qa data resample`: coarser klines from finer ones, complete buckets only (real Bybit 5m bars)."""

from __future__ import annotations

import polars as pl
import pytest

from qa_engine.cli.main import main
from qa_engine.data.resample import resample_file
from qa_engine.data.resample import resample_klines
from qa_engine.errors import DataError
from tests.factories import real_klines


def test_hourly_bars_aggregate_their_twelve_5m_bars():
    five = real_klines("bybit_linear_BTCUSDT_5m", 288)  # 2025-01-01, one day
    result = resample_klines(five, "5m", "1h")
    assert (result.complete_buckets, result.incomplete_buckets) == (24, 0)
    hourly = result.frame
    for hour in (0, 13, 23):
        part = five.slice(12 * hour, 12)
        row = hourly.row(hour, named=True)
        assert row["ts_open"] == part["ts_open"][0]
        assert row["open"] == part["open"][0] and row["close"] == part["close"][-1]
        assert row["high"] == part["high"].max() and row["low"] == part["low"].min()
        assert row["volume"] == pytest.approx(part["volume"].sum())


def test_an_hour_missing_one_5m_bar_is_dropped_not_built_from_the_rest():
    five = real_klines("bybit_linear_BTCUSDT_5m", 288)
    holed = pl.concat([five.slice(0, 40), five.slice(41)])  # bar 40 = 03:20 missing
    result = resample_klines(holed, "5m", "1h")
    assert (result.complete_buckets, result.incomplete_buckets) == (23, 1)
    assert 3 not in result.frame["ts_open"].dt.hour().to_list()


def test_a_partial_first_and_last_bucket_are_dropped():
    five = real_klines("bybit_linear_BTCUSDT_5m", 100, offset=6)  # starts 00:30, ends 08:45
    result = resample_klines(five, "5m", "1h")
    assert result.frame["ts_open"].dt.hour().to_list() == [1, 2, 3, 4, 5, 6, 7]
    assert result.incomplete_buckets == 2


def test_bad_intervals_and_mislabelled_files_are_data_errors():
    five = real_klines("bybit_linear_BTCUSDT_5m", 48)
    with pytest.raises(DataError, match="whole multiple"):
        resample_klines(five, "5m", "1m")
    hourly = resample_klines(five, "5m", "1h").frame
    with pytest.raises(DataError, match="not 5m bars: they are 1h apart"):
        resample_klines(hourly, "5m", "4h")


def test_the_command_writes_atomically_and_refuses_bad_input_with_exit_2(tmp_path, capsys):
    source = tmp_path / "five.parquet"
    real_klines("bybit_linear_BTCUSDT_5m", 288).write_parquet(source)
    target = tmp_path / "out" / "hourly.parquet"
    assert main(["data", "resample", str(source), str(target), "--from", "5m", "--to", "1h"]) == 0
    assert pl.read_parquet(target).height == 24 and "24 1h bars from 288 5m bars" in capsys.readouterr().out
    assert list(target.parent.iterdir()) == [target]  # no partial file left
    assert main(["data", "resample", str(tmp_path / "missing.parquet"), str(tmp_path / "x.parquet")]) == 2
    assert "missing.parquet: no such file" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
    short = tmp_path / "short.parquet"  # 2.5 hours of 5m bars: no complete 4h bucket
    pl.read_parquet(source).slice(0, 30).write_parquet(short)
    with pytest.raises(DataError, match="no complete 4h bucket"):
        resample_file(short, tmp_path / "y.parquet", "5m", "4h")
    assert not (tmp_path / "y.parquet").exists()
