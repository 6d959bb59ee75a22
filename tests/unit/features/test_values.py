"""Feature values against hand computation and known cases (real bars where they exist)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from qa_engine.features.families.fracdiff import ffd_spec
from qa_engine.features.families.returns import calendar_spec
from qa_engine.features.families.returns import log_return_spec
from qa_engine.features.families.technical import bollinger_spec
from qa_engine.features.families.technical import candle_spec
from qa_engine.features.families.technical import mfi_spec
from qa_engine.features.families.technical import obv_slope_weights
from qa_engine.features.families.technical import obv_spec
from qa_engine.features.families.technical import rsi_spec
from qa_engine.features.families.technical import sma_spec
from qa_engine.features.families.technical import volume_spec
from qa_engine.features.families.technical import williams_r_spec
from qa_engine.features.kernels import ffd_weights
from qa_engine.features.spec import FeatureSet
from tests.unit.features.conftest import real_bars
from tests.unit.features.conftest import run_batch
from tests.unit.features.conftest import run_streaming

MINUTE_NS = 60_000_000_000


def both(frame: pl.DataFrame, *specs, interval: str = "1m") -> tuple[np.ndarray, np.ndarray]:
    feature_set = FeatureSet("t", 1, tuple(specs))
    return run_batch(frame, feature_set, interval), run_streaming(frame, feature_set, interval)


def bars(close: list[float], volume: list[float] | None = None, spread: float = 1.0) -> pl.DataFrame:
    count = len(close)
    close_array = np.asarray(close, dtype=float)
    open_array = np.concatenate([[close_array[0]], close_array[:-1]])
    return pl.DataFrame(
        {
            "ts": np.arange(1, count + 1, dtype=np.int64) * MINUTE_NS + 1_704_067_200_000_000_000,
            "open": open_array,
            "high": np.maximum(open_array, close_array) + spread,
            "low": np.minimum(open_array, close_array) - spread,
            "close": close_array,
            "volume": np.asarray(volume if volume is not None else [10.0] * count, dtype=float),
        }
    )


def test_sma_5_equals_the_hand_computed_mean_of_five_real_closes() -> None:
    frame = real_bars("BTCUSDT", "1m", 5)
    closes = frame.get_column("close").to_list()  # 94,xxx.x closes of 2025-05-04

    batch, streaming = both(frame, sma_spec(5))

    expected = sum(closes) / 5
    assert batch[4, 0] == pytest.approx(expected, abs=1e-9)
    assert streaming[4, 0] == pytest.approx(expected, abs=1e-9)
    assert np.isnan(batch[:4, 0]).all() and np.isnan(streaming[:4, 0]).all()


def test_rsi_climbs_through_the_longest_real_run_of_rising_closes() -> None:
    # BTCUSDT 1m, 15 consecutive higher closes ending at row 20578 (found by scanning the file).
    frame = real_bars("BTCUSDT", "1m", 20579)
    closes = frame.get_column("close").to_numpy()
    assert (np.diff(closes[-16:]) > 0).all()

    batch, streaming = both(frame, rsi_spec(14))

    run = batch[-16:, 0]
    assert (np.diff(run) > 0).all()
    assert run[-1] > 80.0
    assert streaming[-1, 0] == pytest.approx(run[-1], abs=1e-9)


def test_rsi_of_flat_prices_is_50_and_of_a_steady_rise_is_100() -> None:
    flat = bars([100.0] * 400)
    rising = bars([100.0 + step for step in range(400)])

    assert both(flat, rsi_spec(14))[1][-1, 0] == 50.0
    assert both(rising, rsi_spec(14))[0][-1, 0] == pytest.approx(100.0, abs=1e-9)


def test_bollinger_percent_b_is_half_in_a_flat_window_and_bands_match_population_std() -> None:
    frame = real_bars("ETHUSDT", "1m", 40)
    closes = frame.get_column("close").to_numpy()[-20:]
    flat = bars([2500.0] * 30)

    batch, _ = both(frame, bollinger_spec("upper"), bollinger_spec("percent_b"))
    _, flat_streaming = both(flat, bollinger_spec("percent_b"))

    assert batch[-1, 0] == pytest.approx(closes.mean() + 2.0 * closes.std(ddof=0), abs=1e-9)
    lower = closes.mean() - 2.0 * closes.std(ddof=0)
    assert batch[-1, 1] == pytest.approx((closes[-1] - lower) / (batch[-1, 0] - lower), abs=1e-9)
    assert flat_streaming[-1, 0] == 0.5


def test_williams_r_and_mfi_stay_in_range_on_real_bars() -> None:
    frame = real_bars("ETHUSDT", "5m", 3000)

    batch, _ = both(frame, williams_r_spec(14), mfi_spec("index"), interval="5m")

    williams, mfi = batch[20:, 0], batch[20:, 1]
    assert williams.min() >= -100.0 and williams.max() <= 0.0 and williams.min() < -95 and williams.max() > -5
    assert mfi.min() >= 0.0 and mfi.max() <= 100.0


def test_mfi_by_hand_on_three_bars() -> None:
    frame = pl.DataFrame(
        {
            "ts": np.arange(1, 4, dtype=np.int64) * MINUTE_NS,
            "open": [10.0, 11.0, 12.0],
            "high": [11.0, 12.0, 12.0],
            "low": [9.0, 10.0, 9.0],
            "close": [10.0, 12.0, 9.0],
            "volume": [100.0, 200.0, 300.0],
        }
    )
    # typical 10, 11.333.., 10 -> flows: up 11.333 * 200, down 10 * 300
    up, down = (12.0 + 10.0 + 12.0) / 3 * 200.0, 10.0 * 300.0

    batch, streaming = both(frame, mfi_spec("index", period_bars=2))

    assert batch[2, 0] == pytest.approx(100.0 * up / (up + down), abs=1e-9)
    assert streaming[2, 0] == pytest.approx(batch[2, 0], abs=1e-12)


def test_obv_slope_weights_reproduce_the_least_squares_slope_of_obv() -> None:
    rng_volumes = real_bars("BTCUSDT", "1m", 20).get_column("volume").to_numpy()
    signs = np.sign(np.diff(real_bars("BTCUSDT", "1m", 21).get_column("close").to_numpy()))
    signed = signs * rng_volumes
    obv = 1e6 + np.cumsum(signed)  # any starting value

    slope = np.polyfit(np.arange(20), obv, 1)[0]

    assert float(signed @ obv_slope_weights(20)) == pytest.approx(slope, rel=1e-9)


def test_obv_divergence_flags_price_down_while_volume_flows_in() -> None:
    # Price drifts down on small down-volume, with big up-volume bars in between: OBV rises.
    closes = [100.0 - 0.1 * i + (0.15 if i % 2 else 0.0) for i in range(30)]
    volumes = [500.0 if i % 2 else 10.0 for i in range(30)]
    frame = bars(closes, volumes)

    batch, streaming = both(frame, obv_spec("divergence"))

    assert batch[-1, 0] == 1.0 and streaming[-1, 0] == 1.0


def test_volume_change_is_symmetric_and_zero_between_empty_bars() -> None:
    frame = bars([1.0, 1.0, 1.0, 1.0], volume=[0.0, 0.0, 30.0, 10.0])

    batch, _ = both(frame, volume_spec("change"))

    assert batch[1:, 0].tolist() == [0.0, 1.0, -0.5]


def test_candle_patterns_on_hand_made_bars() -> None:
    frame = pl.DataFrame(
        {
            "ts": np.arange(1, 5, dtype=np.int64) * MINUTE_NS,
            "open": [10.0, 10.5, 9.5, 10.0],
            "high": [10.1, 10.6, 11.0, 10.05],
            "low": [9.9, 9.8, 9.4, 9.0],
            "close": [10.02, 9.9, 10.8, 10.01],
            "volume": [1.0, 1.0, 1.0, 1.0],
        }
    )
    # bar 0: doji; bar 1 engulfs bar 0 bearishly, bar 2 engulfs bar 1 bullishly; bar 3: hammer

    batch, streaming = both(frame, candle_spec("doji"), candle_spec("engulfing"), candle_spec("hammer"))

    assert batch[:, 0].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert batch[1:, 1].tolist() == [-1.0, 1.0, 0.0]
    assert batch[:, 2].tolist() == [0.0, 0.0, 0.0, 1.0]
    np.testing.assert_array_equal(np.nan_to_num(batch, nan=-9), np.nan_to_num(streaming, nan=-9))


def test_calendar_features_of_known_times() -> None:
    # 2024-01-01 was a Monday: its 00:00 close is phase 0 of the day and of the week; 06:00 a quarter day.
    monday = 1_704_067_200_000_000_000
    frame = pl.DataFrame(
        {
            "ts": [monday, monday + 6 * 3_600_000_000_000],
            "open": [1.0, 1.0],
            "high": [1.0, 1.0],
            "low": [1.0, 1.0],
            "close": [1.0, 1.0],
            "volume": [1.0, 1.0],
        }
    )
    specs = [calendar_spec(c, o) for c in ("time_of_day", "day_of_week") for o in ("sin", "cos")]
    feature_set = FeatureSet("t", 1, tuple(specs))

    batch = run_batch(frame, feature_set, "6h")

    np.testing.assert_allclose(batch[0], [0.0, 1.0, 0.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(
        batch[1], [1.0, 0.0, math.sin(2 * math.pi / 28), math.cos(2 * math.pi / 28)], atol=1e-15
    )


def test_log_return_over_five_real_bars() -> None:
    frame = real_bars("ETHUSDT", "1m", 10)
    closes = frame.get_column("close").to_numpy()

    batch, streaming = both(frame, log_return_spec(5))

    assert batch[9, 0] == pytest.approx(math.log(closes[9] / closes[4]), abs=1e-15)
    assert streaming[9, 0] == batch[9, 0]


def test_ffd_weights_match_the_binomial_series() -> None:
    weights = ffd_weights(0.5, 1e-2)

    np.testing.assert_allclose(weights[:4], [1.0, -0.5, -0.125, -0.0625])
    assert abs(weights[-1]) >= 1e-2 > abs(-weights[-1] * (0.5 - len(weights) + 1) / len(weights))
    np.testing.assert_array_equal(ffd_weights(1.0, 1e-4), [1.0, -1.0])  # d = 1: the plain difference


def test_ffd_feature_is_the_weighted_sum_of_trailing_log_closes() -> None:
    frame = real_bars("BTCUSDT", "5m", 800)
    spec = ffd_spec(order=0.4)
    weights = ffd_weights(0.4, 1e-4)
    log_close = np.log(frame.get_column("close").to_numpy())

    batch, streaming = both(frame, spec, interval="5m")

    expected = float(np.dot(weights, log_close[799 - np.arange(len(weights))]))
    assert batch[799, 0] == pytest.approx(expected, abs=1e-12)
    assert streaming[799, 0] == pytest.approx(expected, abs=1e-12)
    assert np.isnan(batch[len(weights) - 2, 0]) and not np.isnan(batch[len(weights) - 1, 0])
