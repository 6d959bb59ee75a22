"""qa_engine.reporting.cost_horizon and `qa research cost-horizon`, on real Binance USD-M BTCUSDT 5m bars."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from qa_engine.cli.main import main
from qa_engine.reporting.cost_horizon import DEFAULT_COST_BPS
from qa_engine.reporting.cost_horizon import abs_moves_bp
from qa_engine.reporting.cost_horizon import cost_horizon_table
from qa_engine.reporting.cost_horizon import horizons_in_bars
from qa_engine.reporting.cost_horizon import resample
from tests.factories import real_klines
from tests.factories import research_klines

SERIES = "binance_futures_BTCUSDT_5m"


@pytest.fixture(scope="module")
def klines() -> pl.DataFrame:
    return real_klines(SERIES, 30 * 288, start="2025-03-01T00:00:00Z")  # 30 days of real 5m bars


def test_default_cost_is_two_taker_fees_and_two_slippages():
    assert DEFAULT_COST_BPS == 13.0


def test_horizons_are_one_bar_and_the_whole_multiples_of_30_min_to_24_h():
    assert horizons_in_bars("5m") == [1, 6, 12, 24, 48, 96, 144, 288]
    assert horizons_in_bars("1h") == [1, 2, 4, 8, 12, 24]
    assert horizons_in_bars("4h") == [1, 2, 3, 6]


def test_resample_keeps_complete_buckets_and_matches_the_5m_bars(klines):
    hours = resample(klines, "1h")
    first = klines.head(12)
    assert hours.row(0, named=True) == {
        "ts_open": first["ts_open"][0],
        "open": first["open"][0],
        "high": first["high"].max(),
        "low": first["low"].min(),
        "close": first["close"][-1],
        "volume": pytest.approx(first["volume"].sum()),
    }
    assert hours.height == 30 * 24
    # a bucket with a missing 5m bar is left out
    holed = klines.filter(pl.col("ts_open") != klines["ts_open"][5])
    assert resample(holed, "1h").height == 30 * 24 - 1
    assert resample(holed, "1h")["ts_open"][0] == klines["ts_open"][12]


def test_moves_pair_bars_exactly_h_intervals_apart(klines):
    moves = abs_moves_bp(klines, "5m", 6)
    close = klines["close"].to_numpy()
    np.testing.assert_allclose(moves, np.abs(np.log(close[6:] / close[:-6])) * 1e4)
    holed = klines.filter(pl.col("ts_open") != klines["ts_open"][100])
    assert abs_moves_bp(holed, "5m", 6).size == moves.size - 2  # the pairs into and out of the hole


def test_longer_moves_clear_the_cost_more_often(klines):
    rows = {(row.interval, row.horizon): row for row in cost_horizon_table(klines)}
    five_minutes, four_hours = rows["5m", "5m"], rows["4h", "4h"]
    assert four_hours.share_above_cost > five_minutes.share_above_cost
    assert four_hours.median_abs_move_bp > 3 * five_minutes.median_abs_move_bp
    assert five_minutes.move_to_cost == pytest.approx(five_minutes.median_abs_move_bp / 13.0)
    assert {interval for interval, _ in rows} == {"5m", "15m", "1h", "4h"}


def test_refuses_klines_that_are_not_5m():
    with pytest.raises(ValueError, match="5m bars"):
        cost_horizon_table(real_klines("binance_futures_BTCUSDT_1m", 600))


def test_cli_prints_the_table_and_writes_markdown(tmp_path, capsys):
    out = tmp_path / "cost.md"
    path = research_klines(SERIES)
    assert (
        main(["research", "cost-horizon", "--klines", str(path), "--cost-bps", "13", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "median |move| (bp)" in printed and "4h" in printed
    text = out.read_text()
    assert "round-trip cost 13 bp" in text
    assert text.count("\n| ") == 1 + 8 + 8 + 6 + 4  # header + rows of 5m, 15m, 1h, 4h


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["--klines", "no/such/klines.parquet"], "no/such/klines.parquet"),
        (["--klines", "data/klines/binance_futures_BTCUSDT_5m.parquet", "--cost-bps", "0"], "--cost-bps"),
        (["--klines", "tests/data/klines/binance_futures_BTCUSDT_1m__rows_0_30507.parquet"], "5m bars"),
        (
            ["--klines", "data/klines/binance_futures_BTCUSDT_5m.parquet", "--out", "no/such/dir/x.md"],
            "--out",
        ),
    ],
)
def test_cli_bad_input_exits_2_naming_the_culprit_without_a_traceback(
    argv, culprit, capsys, repo_root, monkeypatch
):
    monkeypatch.chdir(repo_root)
    assert main(["research", "cost-horizon", *argv]) == 2
    err = capsys.readouterr().err
    assert culprit in err and "Traceback" not in err
