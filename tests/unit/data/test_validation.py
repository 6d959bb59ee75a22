from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import polars as pl

from qa_engine.data.intervals import KlineInterval
from qa_engine.data.validation import Check
from qa_engine.data.validation import Severity
from qa_engine.data.validation import validate_klines
from tests.factories import real_klines

FIVE_MINUTES = KlineInterval.MINUTE_5


def _bars(n: int = 288) -> pl.DataFrame:
    return real_klines("bybit_linear_BTCUSDT_5m", n)  # 2025-01-01 from 00:00, gap-free


def _set(frame: pl.DataFrame, row: int, **values: float) -> pl.DataFrame:
    is_row = pl.int_range(pl.len()) == row
    return frame.with_columns(
        [
            pl.when(is_row).then(pl.lit(value)).otherwise(pl.col(name)).alias(name)
            for name, value in values.items()
        ]
    )


def _checks(report) -> dict[Check, int]:
    return {finding.check: finding.count for finding in report.findings}


def test_real_day_of_bars_has_no_findings_even_strict():
    report = validate_klines(_bars(), FIVE_MINUTES, price_precision=2, size_precision=3)

    assert report.bars == 288
    assert report.first_ts_open == datetime(2025, 1, 1, tzinfo=UTC)
    assert report.last_ts_open == datetime(2025, 1, 1, 23, 55, tzinfo=UTC)
    assert report.findings == ()
    assert report.passed(strict=True)


def test_gaps_are_counted_with_missing_bars_and_largest_range():
    bars = _bars()
    holed = pl.concat([bars[:10], bars[13:100], bars[101:]])  # 3 bars missing, then 1 bar missing

    report = validate_klines(holed, FIVE_MINUTES)

    assert (report.gap_count, report.missing_bars) == (2, 4)
    largest = report.largest_gaps[0]
    assert largest.last_ts_open_before == datetime(2025, 1, 1, 0, 45, tzinfo=UTC)
    assert largest.next_ts_open_after == datetime(2025, 1, 1, 1, 5, tzinfo=UTC)
    assert largest.missing_bars == 3
    assert report.passed(strict=False)  # a gap is a warning
    assert not report.passed(strict=True)


def test_crossed_bar_made_by_swapping_high_and_low_is_an_error():
    bars = _bars()
    high, low = bars["high"][5], bars["low"][5]
    crossed = _set(bars, 5, high=low, low=high)

    report = validate_klines(crossed, FIVE_MINUTES)

    assert report.crossed_bars == 1
    assert _checks(report) == {Check.CROSSED_BARS: 1}
    assert report.findings[0].examples == (datetime(2025, 1, 1, 0, 25, tzinfo=UTC),)
    assert report.findings[0].severity == Severity.ERROR
    assert not report.passed(strict=False)


def test_high_below_close_is_crossed():
    bars = _bars()
    report = validate_klines(_set(bars, 7, high=bars["close"][7] - 0.1), FIVE_MINUTES)

    assert report.crossed_bars == 1


def test_identical_duplicate_is_a_warning_and_conflicting_one_an_error():
    bars = _bars()
    identical = pl.concat([bars, bars[20:21]])
    conflicting = pl.concat(
        [bars, _set(bars[20:21], 0, close=bars["close"][20] + 0.1, high=bars["high"][20] + 0.1)]
    )

    identical_report = validate_klines(identical, FIVE_MINUTES)
    conflicting_report = validate_klines(conflicting, FIVE_MINUTES)

    assert (identical_report.duplicate_timestamps, identical_report.conflicting_duplicates) == (1, 0)
    assert identical_report.passed(strict=False) and not identical_report.passed(strict=True)
    assert (conflicting_report.duplicate_timestamps, conflicting_report.conflicting_duplicates) == (1, 1)
    assert not conflicting_report.passed(strict=False)
    assert identical_report.gap_count == 0  # a duplicate is not a gap


def test_non_positive_price_nan_and_negative_volume_are_errors():
    bars = _bars()
    broken = _set(_set(_set(bars, 1, open=0.0), 2, close=float("nan")), 3, volume=-bars["volume"][3])

    report = validate_klines(broken, FIVE_MINUTES)

    assert report.non_positive_price_bars == 1
    assert report.non_finite_bars == 1
    assert report.negative_volume_bars == 1
    assert {finding.check for finding in report.blocking_findings()} >= {
        Check.NON_POSITIVE_PRICES,
        Check.NON_FINITE_VALUES,
        Check.NEGATIVE_VOLUME,
    }


def test_zero_volume_bar_is_a_warning():
    report = validate_klines(_set(_bars(), 9, volume=0.0), FIVE_MINUTES)

    assert report.zero_volume_bars == 1
    assert report.passed(strict=False)
    assert not report.passed(strict=True)


def test_timestamp_off_the_interval_grid_is_irregular():
    bars = _bars()
    shifted = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 50)
        .then(pl.col("ts_open") + timedelta(minutes=2))
        .otherwise(pl.col("ts_open"))
        .alias("ts_open")
    )

    report = validate_klines(shifted, FIVE_MINUTES)

    assert report.irregular_timestamps == 1
    assert report.gap_count == 1 and report.missing_bars == 1  # the on-grid slot it left is missing
    assert not report.passed(strict=False)


def test_price_finer_than_instrument_precision_is_an_error():
    bars = _bars()
    report = validate_klines(_set(bars, 4, low=bars["low"][4] - 0.001), FIVE_MINUTES, price_precision=2)

    assert report.off_precision_bars == 1
    assert not report.passed()


def test_report_rows_name_every_check_with_status():
    report = validate_klines(_set(_bars(), 9, volume=0.0), FIVE_MINUTES)

    rows = {check: (value, status) for check, value, status in report.rows()}

    assert rows["bars"] == ("288", "")
    assert rows["zero-volume bars"] == ("1 (first: 2025-01-01 00:45)", "warning")
    assert rows["crossed OHLC"] == ("0", "ok")
    assert rows["gaps"][1] == "ok"
    assert {status for _, _, status in report.rows(strict=True)} >= {"error", "ok"}
