"""No leakage in the model datasets (hypothesis, real bars from data/klines).

- the feature window ending at bar t is identical whether the data ends at t or goes on;
- the label of bar t depends only on bars t+1 .. t+H (and close[t], the forecast's reference price):
  changing any other bar leaves it unchanged, and it equals ln(close[t+k] / close[t]);
- no window (encoder bars and label bars) spans a gap, and none mixes two symbols.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from qa_engine.models.data import forward_log_returns
from qa_engine.models.data import series_arrays
from qa_engine.models.data import window_end_mask
from tests.unit.models.oracle_data import STEP_NS
from tests.unit.models.oracle_data import all_bars
from tests.unit.models.oracle_data import small_feature_set

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENCODER, HORIZON = 24, 6


@st.composite
def real_slice(draw: st.DrawFn, length: int) -> pl.DataFrame:
    """`length` consecutive real BTCUSDT 5m bars from a random place in 2025."""
    bars = all_bars()
    first_2025 = int(np.searchsorted(bars.get_column("ts").to_numpy(), 1_735_689_600 * 10**9))
    start = draw(st.integers(first_2025, bars.height - length - 1))
    return bars.slice(start, length)


@given(bars=real_slice(400), cut=st.integers(150, 399))
@SETTINGS
def test_feature_window_at_t_is_the_same_when_the_data_ends_at_t(bars: pl.DataFrame, cut: int) -> None:
    full, _ = series_arrays(bars, small_feature_set(), HORIZON, STEP_NS)
    truncated, _ = series_arrays(bars.head(cut + 1), small_feature_set(), HORIZON, STEP_NS)
    t_ns = int(bars.get_column("ts")[cut])
    end_full = int(np.searchsorted(full["ts"], t_ns))
    end_cut = int(np.searchsorted(truncated["ts"], t_ns))
    assert truncated["ts"][end_cut] == t_ns and end_cut == len(truncated["ts"]) - 1

    start = max(0, end_cut - ENCODER + 1)
    window_full = full["features"][end_full - (end_cut - start) : end_full + 1]
    window_cut = truncated["features"][start : end_cut + 1]

    np.testing.assert_array_equal(window_cut, window_full)  # bit-identical, not just close
    np.testing.assert_array_equal(truncated["past"][end_cut], full["past"][end_full])


@given(
    bars=real_slice(200),
    t=st.integers(0, 190),
    factor=st.floats(0.5, 2.0).filter(lambda f: abs(f - 1) > 1e-3),
)
@SETTINGS
def test_label_at_t_depends_only_on_bars_t_to_t_plus_h(bars: pl.DataFrame, t: int, factor: float) -> None:
    ts = bars.get_column("ts").to_numpy()
    close = bars.get_column("close").to_numpy()
    horizon = min(HORIZON, len(close) - 1 - t)
    labels = forward_log_returns(ts, close, horizon, STEP_NS)
    outside = np.ones(len(close), dtype=bool)
    outside[t : t + horizon + 1] = False
    moved = np.where(outside, close * factor, close)  # every bar before t and after t+H changes

    relabelled = forward_log_returns(ts, moved, horizon, STEP_NS)

    np.testing.assert_array_equal(relabelled[t], labels[t])
    expected = np.log(close[t + 1 : t + horizon + 1] / close[t])
    np.testing.assert_array_equal(labels[t], expected)
    inside = close.copy()
    inside[t + horizon] *= factor  # the last label bar does matter
    assert forward_log_returns(ts, inside, horizon, STEP_NS)[t, horizon - 1] != labels[t, horizon - 1]


@given(
    bars=real_slice(600),
    holes=st.lists(st.tuples(st.integers(50, 560), st.integers(1, 30)), min_size=1, max_size=4),
    split=st.integers(100, 500),
)
@SETTINGS
def test_no_window_spans_a_gap_or_two_symbols(
    bars: pl.DataFrame, holes: list[tuple[int, int]], split: int
) -> None:
    keep = np.ones(bars.height, dtype=bool)
    for start, length in holes:
        keep[start : start + length] = False  # real bars removed: gaps of 5 .. 150 minutes
    gapped = bars.filter(pl.Series(keep))
    arrays, _ = series_arrays(gapped, small_feature_set(), HORIZON, STEP_NS)
    ts = arrays["ts"]
    series = (np.arange(len(ts)) >= split).astype(np.int32)  # pretend a second symbol starts at `split`

    valid = window_end_mask(ts, series, ENCODER, STEP_NS) & np.all(np.isfinite(arrays["labels"]), axis=1)
    ends = np.flatnonzero(valid)

    bar_ts = gapped.get_column("ts").to_numpy()
    for end in ends:
        assert ts[end] - ts[end - ENCODER + 1] == (ENCODER - 1) * STEP_NS  # encoder: consecutive bars
        assert series[end - ENCODER + 1] == series[end]  # one symbol
        position = int(np.searchsorted(bar_ts, ts[end]))
        assert bar_ts[position + HORIZON] - ts[end] == HORIZON * STEP_NS  # labels: consecutive bars
    gap_rows = np.flatnonzero(np.diff(ts) != STEP_NS) + 1
    for row in gap_rows:  # a window ending right after a gap would need bars from across it
        assert not valid[row : row + ENCODER - 1].any()
