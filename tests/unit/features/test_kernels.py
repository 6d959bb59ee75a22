"""The hand-written numeric kernels: wavelet matrices vs pywt, volume profile by hand, the compiled
per-bar forms against the batch forms, fsum against math.fsum."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from qa_engine.errors import ConfigError
from qa_engine.features.compiled_kernels import fsum
from qa_engine.features.compiled_kernels import volume_profile_batch
from qa_engine.features.compiled_kernels import volume_profile_step
from qa_engine.features.compiled_kernels import wavelet_denoise_last
from qa_engine.features.kernels import wavelet_denoise_last_batch
from qa_engine.features.kernels import wavelet_denoise_last_reference
from qa_engine.features.kernels import wavelet_operator
from tests.unit.features.conftest import real_bars


def volume_profile_one(
    typical: np.ndarray, volume: np.ndarray, lowest: float, highest: float, bins: int, value_area: float
) -> tuple[float, float, float]:
    """One window by the streaming kernel, from a fresh state (so it bins the whole window)."""
    ring = np.zeros(2 * len(typical), dtype=np.int64)
    state = np.array([math.nan, math.nan, 0.0, 0.0])
    return volume_profile_step(ring, state, typical, volume, lowest, highest, bins, value_area)


def test_wavelet_matrix_form_equals_the_pywt_call_chain_on_real_windows() -> None:
    closes = real_bars("BTCUSDT", "1m", 2_000).get_column("close").to_numpy()
    operator = wavelet_operator(64, "db4", 3, "symmetric")
    windows = sliding_window_view(closes, 64)[::37]
    columns = np.ascontiguousarray(operator.analysis.T)

    batch = wavelet_denoise_last_batch(windows, operator)

    for row, window in enumerate(windows):
        reference = wavelet_denoise_last_reference(window, "db4", 3, "symmetric")
        assert batch[row] == pytest.approx(reference, abs=1e-9)
        step = wavelet_denoise_last(
            np.ascontiguousarray(window),
            columns,
            operator.synthesis,
            operator.detail_synthesis,
            operator.finest_count,
            operator.threshold_factor,
        )
        assert step == pytest.approx(batch[row], abs=1e-9)


def test_wavelet_denoising_smooths_and_only_reads_the_window() -> None:
    closes = real_bars("ETHUSDT", "1m", 5_000).get_column("close").to_numpy()
    operator = wavelet_operator(64, "db4", 3, "symmetric")
    windows = sliding_window_view(closes, 64)

    denoised = wavelet_denoise_last_batch(windows, operator)

    # Denoised changes are smaller than raw changes on average (it removes the finest noise).
    assert np.abs(np.diff(denoised)).mean() < np.abs(np.diff(closes[63:])).mean()
    # and it stays near the price: within 1% on real 1m bars.
    assert np.max(np.abs(denoised / closes[63:] - 1.0)) < 0.01


def test_wavelet_window_with_even_finest_count_is_refused() -> None:
    with pytest.raises(ConfigError, match="odd count"):
        wavelet_operator(66, "db4", 3, "symmetric")


def test_volume_profile_by_hand() -> None:
    # 4 bins over [100, 108]: typical prices 101 (bin 0), 103 and 103.5 (bin 1), 107 and 108 (bin 3;
    # the window high folds into the top bin)
    typical = np.array([101.0, 103.0, 103.5, 107.0, 108.0])
    volume = np.array([10.0, 50.0, 30.0, 5.0, 1.0])

    poc, vah, val = volume_profile_one(typical, volume, 100.0, 108.0, 4, 0.7)

    assert poc == 103.0  # bin 1 = [102, 104), centre 103, holds 80 of 96
    assert (val, vah) == (102.0, 104.0)  # 80 / 96 >= 70%: the value area is the POC bin alone
    batch = volume_profile_batch(
        typical[None, :], volume[None, :], np.array([100.0]), np.array([108.0]), 4, 0.7
    )
    assert [float(level[0]) for level in batch] == [poc, vah, val]


def test_volume_profile_value_area_grows_towards_the_fuller_side() -> None:
    typical = np.array([100.5, 101.5, 102.5, 103.5])
    volume = np.array([20.0, 30.0, 40.0, 10.0])

    poc, vah, val = volume_profile_one(typical, volume, 100.0, 104.0, 4, 0.7)

    # POC bin 2 (40); neighbours 30 (below) > 10 (above): add below -> 70 of 100 = 70%: stop.
    assert (poc, val, vah) == (102.5, 101.0, 103.0)


def test_volume_profile_twins_agree_bit_for_bit_on_real_windows() -> None:
    frame = real_bars("BTCUSDT", "5m", 1_500)
    high, low, close, volume = (frame.get_column(c).to_numpy() for c in ("high", "low", "close", "volume"))
    typical = (high + low + close) * (1.0 / 3.0)
    windows = sliding_window_view(typical, 96)
    volumes = sliding_window_view(volume, 96)
    lowest = sliding_window_view(low, 96).min(axis=1)
    highest = sliding_window_view(high, 96).max(axis=1)

    batch = volume_profile_batch(windows, volumes, lowest, highest, 24, 0.7)

    for row in range(0, len(windows), 53):
        one = volume_profile_one(windows[row], volumes[row], lowest[row], highest[row], 24, 0.7)
        assert one == (batch[0][row], batch[1][row], batch[2][row])
        assert lowest[row] <= batch[2][row] <= batch[0][row] <= batch[1][row] <= highest[row]


def test_volume_profile_stream_keeps_bins_between_extremes_bit_for_bit() -> None:
    # Bar by bar through one state, as the engine calls it: the bins of old bars are kept while the
    # window's low and high stay, and rebuilt when they move; every bar equals the batch form.
    frame = real_bars("ETHUSDT", "5m", 1_200)
    high, low, close, volume = (frame.get_column(c).to_numpy() for c in ("high", "low", "close", "volume"))
    typical = (high + low + close) * (1.0 / 3.0)
    window = 96
    windows, volumes = sliding_window_view(typical, window), sliding_window_view(volume, window)
    lowest = sliding_window_view(low, window).min(axis=1)
    highest = sliding_window_view(high, window).max(axis=1)
    batch = volume_profile_batch(windows, volumes, lowest, highest, 24, 0.7)
    ring = np.zeros(2 * window, dtype=np.int64)
    state = np.array([math.nan, math.nan, 0.0, 0.0])
    kept = 0
    for row in range(len(windows)):
        kept += lowest[row] == state[0] and highest[row] == state[1]
        levels = volume_profile_step(
            ring,
            state,
            np.ascontiguousarray(windows[row]),
            np.ascontiguousarray(volumes[row]),
            lowest[row],
            highest[row],
            24,
            0.7,
        )
        assert levels == (batch[0][row], batch[1][row], batch[2][row]), row
    assert 0 < kept < len(windows)  # both paths ran


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@settings(max_examples=400, deadline=None)
@given(st.lists(finite, max_size=80), st.integers(min_value=-60, max_value=60))
def test_fsum_equals_math_fsum(values: list[float], exponent: int) -> None:
    scaled = [value * 2.0**exponent if abs(value) < 1e250 else value for value in values]
    assert fsum(np.asarray(scaled, dtype=np.float64)) == math.fsum(scaled)


def test_fsum_rounds_half_to_even_like_math_fsum() -> None:
    # Sums whose exact value sits halfway between two floats: the correction step decides.
    for values in (
        [1.0, 2.0**-53, 2.0**-106],
        [1.0, -(2.0**-54), -(2.0**-108)],
        [1e16, 1.0, 1e-16],
        [0.1] * 10,
    ):
        assert fsum(np.asarray(values)) == math.fsum(values)
