"""The numeric routines compiled with numba: the streaming engine's, and the batch volume profile.

The streaming twin of a feature set is one generated function compiled to machine code
(`qa_engine.features.contexts.StreamContext.compile`); what it calls must be compiled too. Most
routines here are the per-bar forms of what `qa_engine.features.kernels` computes for the batch twin, with
the same arithmetic in the same order wherever the batch twin's order is fixed (the volume profile's
binning and histogram, the correctly rounded `fsum`), and a plain left-to-right loop where the batch
twin calls BLAS (dot products: BLAS sums in an order of its own, so either way the two twins agree
to rounding, ~1e-15 relative, not bit for bit; the parity tests bound it at 1e-9).

Hand-written, not a library: numba compiles neither `math.fsum` nor numpy's `partition` on a view,
and no library has a per-bar volume profile or the matrix form of the causal wavelet denoiser.
The batch twin's volume profile is here too (`volume_profile_batch`: a loop over the windows beats
numpy's index matrices 5x); the batch twin imports this module only when it computes that kind, so
importing the feature library does not import numba.
`NUMBA_DISABLE_JIT=1` runs all of it (and the generated engine) as plain Python, to step through it in
a debugger.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Shewchuk's partials never exceed ~40 for float64 (one per binary exponent range that can hold
# a non-overlapping component); 64 leaves room.
_MAX_PARTIALS = 64


@njit(cache=True, nogil=True)
def fsum(values: np.ndarray) -> float:
    """The correctly rounded sum of `values`, equal to `math.fsum` for finite inputs.

    Shewchuk's exact summation into non-overlapping partials, then the sum of the partials with the
    round-half-even correction of the last step (the algorithm CPython's math.fsum documents).
    """
    partials = np.empty(_MAX_PARTIALS)
    count = 0
    for value in values:
        x = value
        kept = 0
        for index in range(count):
            y = partials[index]
            if abs(x) < abs(y):
                x, y = y, x
            high = x + y
            low = y - (high - x)
            if low != 0.0:
                partials[kept] = low
                kept += 1
            x = high
        partials[kept] = x
        count = kept + 1
    if count == 0:
        return 0.0
    count -= 1
    high = partials[count]
    low = 0.0
    while count > 0:
        x = high
        count -= 1
        y = partials[count]
        high = x + y
        low = y - (high - x)
        if low != 0.0:
            break
    # Round half to even across the partials that were not added: if the remainder `low` and the
    # next partial have the same sign, the true sum lies beyond the halfway point high + low.
    if count > 0 and ((low < 0.0 and partials[count - 1] < 0.0) or (low > 0.0 and partials[count - 1] > 0.0)):
        y = low * 2.0
        x = high + y
        if y == x - high:
            high = x
    return high


@njit(cache=True, nogil=True)
def dot(first: np.ndarray, second: np.ndarray) -> float:
    """sum(first[i] * second[i]), left to right."""
    total = 0.0
    for index in range(first.shape[0]):
        total += first[index] * second[index]
    return total


@njit(cache=True, nogil=True)
def wavelet_denoise_last(
    window: np.ndarray,
    analysis_columns: np.ndarray,
    synthesis: np.ndarray,
    detail_synthesis: np.ndarray,
    finest_count: int,
    threshold_factor: float,
) -> float:
    """Denoised last sample of one window (oldest first): the per-bar form of
    `kernels.wavelet_denoise_last_batch` (see `kernels.WaveletOperator` for the mathematics).

    `analysis_columns` is the operator's analysis matrix transposed, (W, R) C-ordered: each
    coefficient still adds its terms bar by bar, oldest first, but the R coefficients advance
    together, so the inner loop runs over contiguous memory and vectorises.
    """
    width, rows = analysis_columns.shape
    shift = window[width - 1]
    coefficients = np.zeros(rows)
    for column in range(width):
        centred = window[column] - shift
        for row in range(rows):
            coefficients[row] += analysis_columns[column, row] * centred
    finest = np.sort(np.abs(coefficients[:finest_count]))
    threshold = finest[finest_count // 2] * threshold_factor
    kept = 0.0
    removed = 0.0
    for row in range(rows):
        value = coefficients[row]
        clipped = (
            value if -threshold <= value <= threshold else (threshold if value > threshold else -threshold)
        )
        kept += value * synthesis[row]
        removed += clipped * detail_synthesis[row]
    return shift + kept - removed


@njit(cache=True, nogil=True)
def volume_profile_step(
    index_ring: np.ndarray,
    state: np.ndarray,
    typical_window: np.ndarray,
    volume_window: np.ndarray,
    lowest: float,
    highest: float,
    bins: int,
    value_area: float,
) -> tuple[float, float, float]:
    """(poc, vah, val) of the trailing window, once the window is full (see `kernels` for the rules).

    `index_ring` (int64, 2 x window) is a double-length ring of each bar's bin; `state` holds
    [window lowest, window highest, bins / span, position of the oldest bar]. While the window's
    lowest low and highest high stay the same every bar keeps its bin and only the new bar is binned
    (the same float operations as the batch twin `volume_profile_batch`, so the same index);
    a new extreme re-bins the window.
    """
    window = typical_window.shape[0]
    if lowest == state[0] and highest == state[1]:
        position = int(state[3])
        value = int((typical_window[window - 1] - lowest) * state[2])
        index_ring[position] = value
        index_ring[position + window] = value
        position = position + 1 if position + 1 < window else 0
    else:
        span = highest - lowest
        scale = bins / span if span > 0.0 else 0.0
        for item in range(window):
            value = int((typical_window[item] - lowest) * scale)
            index_ring[item] = value
            index_ring[item + window] = value
        position = 0
        state[0] = lowest
        state[1] = highest
        state[2] = scale
    state[3] = position
    # The histogram in bar order (np.bincount's order, as the batch twin adds it).
    histogram = np.zeros(bins + 1)
    for item in range(window):
        histogram[index_ring[position + item]] += volume_window[item]
    return profile_levels(histogram, lowest, highest, bins, value_area)


@njit(cache=True, nogil=True)
def profile_levels(
    histogram: np.ndarray, lowest: float, highest: float, bins: int, value_area: float
) -> tuple[float, float, float]:
    """(poc, vah, val) of a window's histogram (`bins` + 1 entries: the last holds the bars at the
    window high, folded here into the top bin; the array is changed). Both twins call it."""
    histogram[bins - 1] = histogram[bins - 1] + histogram[bins]
    total = 0.0
    poc = 0
    for item in range(bins):
        total = total + histogram[item]
        if histogram[item] > histogram[poc]:
            poc = item
    target = value_area * total
    lower = poc
    upper = poc
    accumulated = histogram[poc]
    for _ in range(bins - 1):
        if not accumulated < target:
            break
        above = histogram[upper + 1] if upper + 1 < bins else -1.0
        below = histogram[lower - 1] if lower > 0 else -1.0
        if above >= below and above >= 0.0:
            upper += 1
            accumulated = accumulated + above
        elif below >= 0.0:
            lower -= 1
            accumulated = accumulated + below
        else:
            break
    width = (highest - lowest) / bins
    return lowest + (poc + 0.5) * width, lowest + (upper + 1) * width, lowest + lower * width


@njit(cache=True, nogil=True)
def volume_profile_batch(
    typical_windows: np.ndarray,
    volume_windows: np.ndarray,
    lowest: np.ndarray,
    highest: np.ndarray,
    bins: int,
    value_area: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(poc, vah, val) for each row of (m, W) windows (strided views are fine), compiled with numba.

    Each row is binned afresh (`volume_profile_step` keeps the bins between new window
    extremes instead; the tests hold the two to the same bits): bin = int((typical - lowest) * bins /
    span), the window high's bin folded into the top one, volumes added in bar order (np.bincount's
    order); the levels are `profile_levels`, shared by both twins. A numpy form of this
    (one bincount over (m, W) index matrices) took 1.0-1.2 s on 1M bars; this loop 0.18 s.
    """
    rows, window = typical_windows.shape
    poc = np.empty(rows)
    vah = np.empty(rows)
    val = np.empty(rows)
    histogram = np.empty(bins + 1)
    for row in range(rows):
        low = lowest[row]
        span = highest[row] - low
        scale = bins / span if span > 0.0 else 0.0
        histogram[:] = 0.0
        for item in range(window):
            histogram[int((typical_windows[row, item] - low) * scale)] += volume_windows[row, item]
        poc[row], vah[row], val[row] = profile_levels(histogram, low, highest[row], bins, value_area)
    return poc, vah, val
