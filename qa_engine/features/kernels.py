"""Numeric routines that neither polars nor a library provides: batch forms, and what both twins share.

The streaming twin runs the per-bar forms of the same routines, compiled (`compiled_kernels`); the
weights and matrices below are computed once and used by both, so both compute the same numbers:
- fractional-differencing weights (no library ships fixed-width FFD weights);
- a causal wavelet denoiser written as matrices derived from pywavelets (pywt only denoises a whole
  signal; calling it once per bar costs ~30 us, the matrix form ~5 us and vectorises over bars);
- a rolling volume profile (no library computes POC / value area over a trailing window): the rules
  are below, both forms are compiled (`compiled_kernels`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qa_engine.errors import ConfigError

# Largest FFD window accepted: beyond it the warm-up eats most of a training range.
MAX_FFD_WIDTH_BARS = 20_000


def ffd_weights(order: float, threshold: float) -> np.ndarray:
    """Fixed-width fractional-differencing weights w_0..w_{K-1}, newest bar first.

    w_0 = 1, w_k = -w_{k-1} (d - k + 1) / k, stopping at the first |w_k| < threshold
    (Lopez de Prado, Advances in Financial Machine Learning, 2018, section 5.5). Hand-written
    because no installed library ships FFD; the recursion is four lines.
    """
    if not 0.0 <= order <= 2.0:
        raise ConfigError(f"fractional differencing order d must be in [0, 2], got {order}")
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"fractional differencing threshold must be in (0, 1), got {threshold}")
    weights = [1.0]
    k = 1
    while True:
        weight = -weights[-1] * (order - k + 1) / k
        if abs(weight) < threshold:
            break
        weights.append(weight)
        k += 1
        if k > MAX_FFD_WIDTH_BARS:
            raise ConfigError(
                f"FFD weights for d={order}, threshold={threshold} need more than {MAX_FFD_WIDTH_BARS} "
                "bars; raise the threshold or the order"
            )
    return np.asarray(weights, dtype=np.float64)


@dataclass(frozen=True)
class WaveletOperator:
    """The causal wavelet denoiser of one trailing window, as matrices.

    The denoised last sample of a window x (length W) is
        shift + synthesis . soft(analysis @ (x - shift), lambda)
    with shift = x[-1] (wavelet details of a constant are zero, so removing it changes nothing
    mathematically and keeps the products small: better rounding), lambda the universal threshold
    sigma * sqrt(2 ln W), sigma = median(|finest details|) / 0.6745 (Donoho & Johnstone 1994;
    the finest level must hold an odd count of coefficients, so the median is one of them),
    soft thresholding on detail coefficients only. Rows of `analysis` are the coefficients needed:
    all finest-level details first (for sigma), then every other coefficient that reaches the last
    sample. Equal, up to rounding, to pywt.wavedec -> pywt.threshold(soft) -> pywt.waverec -> [-1].
    """

    window_bars: int
    analysis: np.ndarray  # (R, W)
    synthesis: np.ndarray  # (R,)
    detail_synthesis: np.ndarray  # (R,) synthesis weights of detail coefficients, 0 for approximations
    finest_count: int
    threshold_factor: float  # sqrt(2 ln W) / 0.6745


@lru_cache(maxsize=16)
def wavelet_operator(window_bars: int, wavelet: str, level: int, mode: str) -> WaveletOperator:
    import pywt

    if window_bars < 8:
        raise ConfigError(f"wavelet window must be >= 8 bars, got {window_bars}")
    max_level = pywt.dwt_max_level(window_bars, pywt.Wavelet(wavelet).dec_len)
    if not 1 <= level <= max_level:
        raise ConfigError(f"wavelet level must be in [1, {max_level}] for {wavelet} on {window_bars} bars")
    template = pywt.wavedec(np.zeros(window_bars), wavelet, mode=mode, level=level)
    lengths = [len(block) for block in template]
    total = sum(lengths)
    full_analysis = np.empty((total, window_bars))
    for column in range(window_bars):
        unit = np.zeros(window_bars)
        unit[column] = 1.0
        full_analysis[:, column] = np.concatenate(pywt.wavedec(unit, wavelet, mode=mode, level=level))
    full_synthesis = np.empty(total)
    offsets = np.cumsum([0, *lengths])
    for index in range(total):
        flat = np.zeros(total)
        flat[index] = 1.0
        blocks = [flat[offsets[b] : offsets[b + 1]] for b in range(len(lengths))]
        full_synthesis[index] = pywt.waverec(blocks, wavelet, mode=mode)[window_bars - 1]
    is_detail = np.arange(total) >= lengths[0]
    finest = np.arange(offsets[-2], offsets[-1])
    others = [i for i in range(offsets[-2]) if full_synthesis[i] != 0.0]
    rows = np.concatenate([finest, np.asarray(others, dtype=np.int64)]).astype(np.int64)
    if len(finest) % 2 == 0:
        raise ConfigError(
            f"wavelet window {window_bars} gives an even count of finest details ({len(finest)}); "
            "choose a window with an odd count so the median is one coefficient"
        )
    return WaveletOperator(
        window_bars=window_bars,
        analysis=np.ascontiguousarray(full_analysis[rows]),
        synthesis=np.ascontiguousarray(full_synthesis[rows]),
        detail_synthesis=np.ascontiguousarray(np.where(is_detail[rows], full_synthesis[rows], 0.0)),
        finest_count=len(finest),
        threshold_factor=math.sqrt(2.0 * math.log(window_bars)) / 0.6745,
    )


def wavelet_denoise_last_reference(window: np.ndarray, wavelet: str, level: int, mode: str) -> float:
    """Reference implementation with pywt calls (slow; for tests): denoise a window, keep its end."""
    import pywt

    shift = float(window[-1])
    coefficients = pywt.wavedec(window - shift, wavelet, mode=mode, level=level)
    sigma = float(np.median(np.abs(coefficients[-1]))) / 0.6745
    threshold = sigma * math.sqrt(2.0 * math.log(len(window)))
    denoised = [coefficients[0]] + [pywt.threshold(c, threshold, mode="soft") for c in coefficients[1:]]
    return shift + float(pywt.waverec(denoised, wavelet, mode=mode)[len(window) - 1])


def wavelet_denoise_last_batch(windows: np.ndarray, operator: WaveletOperator) -> np.ndarray:
    """Denoised last sample of each row of `windows` (m, W): the vectorised twin of
    `compiled_kernels.wavelet_denoise_last`.

    soft(c, t) = c - clip(c, -t, t), so the value is shift + s.c - s_detail.clip(c, -t, t): three
    products instead of a masked sign/max chain (fewer numpy calls per bar in the streaming twin).
    """
    shift = windows[:, -1].copy()
    coefficients = (windows - shift[:, None]) @ operator.analysis.T  # (m, R)
    finest = np.abs(coefficients[:, : operator.finest_count])  # (m, F)
    middle = operator.finest_count // 2
    finest.partition(middle, axis=1)
    threshold = finest[:, middle] * operator.threshold_factor  # (m,) sigma * sqrt(2 ln W)
    clipped = np.clip(coefficients, -threshold[:, None], threshold[:, None])  # (m, R)
    return shift + coefficients @ operator.synthesis - clipped @ operator.detail_synthesis


# ---------------------------------------------------------------------------------------------
# Rolling volume profile.
# Hand-written: no library computes a trailing-window volume profile. Each bar's volume goes to
# the price bin of its typical price (high + low + close) / 3 (a documented simplification of
# spreading it over the bar's range); bins split [lowest low, highest high] of the window evenly.
# POC = centre of the fullest bin (lowest on ties). Value area: start at the POC bin and add the
# fuller neighbour (the upper one on ties) until it holds `value_area` of the window volume
# (the Market Profile convention); VAH / VAL = upper / lower edge of the value area.
# Both forms are loops, compiled: `compiled_kernels.volume_profile_batch` (every window binned afresh)
# and `compiled_kernels.volume_profile_step` (per bar, bins kept between new window extremes).
# ---------------------------------------------------------------------------------------------
