"""Property tests for every feature of the default set (hypothesis).

- no lookahead: values at bar t are identical whether the data ends at t or goes on (both twins);
- warm-up independence: past its warm-up, a value does not depend on where the history started;
- no NaN / inf after the warm-up.
Data: windows of real bars (the first 20,000 bars of each series shipped in tests/data, see
tests/factories.py) chosen by hypothesis, and synthetic random walks with flat stretches and
zero-volume bars (edge cases the real files hold rarely).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from qa_engine.features.sets import default_feature_set
from tests.unit.features.conftest import real_bars
from tests.unit.features.conftest import run_batch
from tests.unit.features.conftest import run_streaming

FEATURE_SET = default_feature_set()
RESOLVED_SPECS = FEATURE_SET.resolve(frozenset({"ohlcv"})).specs  # OHLCV bars: OFI uses its BVC fallback
WARMUP = FEATURE_SET.warmup_bars
INTERVAL = "5m"
STEP_NS = 300_000_000_000
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REAL = [("BTCUSDT", "5m"), ("ETHUSDT", "5m"), ("ETHUSDT-SPOT", "5m"), ("BTCUSDT", "1m")]
REAL_HEAD_BARS = 20_000  # windows lie in the first 20,000 bars of each series (all shipped)


@st.composite
def real_window(draw: st.DrawFn, length: int) -> pl.DataFrame:
    symbol, interval = draw(st.sampled_from(REAL))
    start = draw(st.integers(0, REAL_HEAD_BARS - length))
    window = real_bars(symbol, interval, length, offset=start)
    # Re-stamp gap-free so the property, not a data gap, decides the warm-up.
    return window.with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) * STEP_NS + 1_700_000_000_000_000_000).alias("ts")
    )


@st.composite
def synthetic_walk(draw: st.DrawFn, length: int) -> pl.DataFrame:
    """Random-walk OHLCV with flat stretches and zero-volume bars (synthetic: edge cases only)."""
    seed = draw(st.integers(0, 2**32 - 1))
    volatility = draw(st.sampled_from([1e-4, 1e-3, 1e-2]))
    flat_share = draw(st.sampled_from([0.0, 0.2, 0.6]))
    level = draw(st.sampled_from([0.05, 30.0, 60_000.0]))
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, volatility, length) * (rng.random(length) >= flat_share)
    close = level * np.exp(np.cumsum(steps))
    close = np.round(close, 6 if level < 1 else 2)
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.abs(rng.normal(0.0, volatility, length)) * close * (rng.random(length) >= flat_share)
    high = np.maximum(open_, close) + wick
    low = np.maximum(np.minimum(open_, close) - wick, close * 0.5)
    volume = rng.gamma(2.0, 50.0, length) * (rng.random(length) >= flat_share / 2)
    ts = np.arange(length, dtype=np.int64) * STEP_NS + 1_700_000_000_000_000_000
    return pl.DataFrame({"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume})


bars = st.one_of(real_window(WARMUP + 240), synthetic_walk(WARMUP + 240))


def _first_difference(first: np.ndarray, second: np.ndarray, rows: slice, tolerance: np.ndarray) -> str:
    both_nan = np.isnan(first[rows]) & np.isnan(second[rows])
    differing = ~both_nan & ~(np.abs(first[rows] - second[rows]) <= tolerance[rows])
    if not differing.any():
        return ""
    row, column = np.argwhere(differing)[0]
    name = FEATURE_SET.names[column]
    one, other = first[rows][row, column], second[rows][row, column]
    return f"{name} at row {row + (rows.start or 0)}: {one!r} vs {other!r}"


@SETTINGS
@given(frame=bars, cut_offset=st.integers(0, 239))
def test_no_feature_looks_ahead(frame: pl.DataFrame, cut_offset: int) -> None:
    cut = WARMUP + cut_offset  # values at rows <= cut must not change when later bars exist
    truncated = frame.head(cut + 1)

    for run in (run_streaming, run_batch):
        full_values = run(frame, FEATURE_SET, INTERVAL)[: cut + 1]
        cut_values = run(truncated, FEATURE_SET, INTERVAL)
        tolerance = np.zeros_like(full_values)  # bit-identical
        problem = _first_difference(cut_values, full_values, slice(0, cut + 1), tolerance)
        assert not problem, f"{run.__name__}: value changed when later bars were added: {problem}"


@SETTINGS
@given(frame=bars, skipped=st.integers(1, 200))
def test_values_after_warmup_do_not_depend_on_where_history_starts(frame: pl.DataFrame, skipped: int) -> None:
    full_values = run_batch(frame, FEATURE_SET, INTERVAL)
    later_values = run_batch(frame.slice(skipped), FEATURE_SET, INTERVAL)
    aligned = full_values[skipped:]
    # EMA-type features forget their seed to 1e-9 of its offset within their warm-up; windowed ones
    # are exact up to rounding of running sums.
    scale = np.maximum(np.abs(aligned), 1.0)
    # A MACD value is a difference of two price-level EMAs: their seeds are forgotten to 1e-9 of the
    # PRICE, which can be 1e-7 of a small MACD value; measure it against the close.
    close_scale = np.maximum(frame["close"].to_numpy()[skipped:], 1.0)
    for column, spec in enumerate(RESOLVED_SPECS):
        if spec.kind == "macd":
            scale[:, column] = np.maximum(scale[:, column], close_scale)
        rows = slice(spec.warmup_bars - 1, None)
        first, second = later_values[rows, column], aligned[rows, column]
        close = np.abs(first - second) <= 1e-7 * scale[rows, column]
        assert close.all(), (
            f"{spec.name} depends on where history starts: "
            f"row {np.flatnonzero(~close)[0] + spec.warmup_bars - 1}"
            f" {first[~close][0]!r} vs {second[~close][0]!r}"
        )


@SETTINGS
@given(frame=bars)
def test_no_nan_or_inf_after_warmup_in_either_twin(frame: pl.DataFrame) -> None:
    for run in (run_batch, run_streaming):
        values = run(frame, FEATURE_SET, INTERVAL)
        for column, spec in enumerate(RESOLVED_SPECS):
            warm = values[spec.warmup_bars - 1 :, column]
            assert np.isfinite(warm).all(), f"{run.__name__}: {spec.name} has NaN/inf after its warm-up"
            assert np.isnan(values[: spec.warmup_bars - 1, column]).all(), (
                f"{spec.name} has a value in its warm-up"
            )


@settings(max_examples=15, deadline=None)
@given(cut=st.integers(25, 340))
def test_taker_volume_ofi_does_not_look_ahead_on_real_trade_bars(cut: int) -> None:
    from qa_engine.features.families.orderflow import ofi_spec
    from qa_engine.features.spec import FeatureSet
    from tests.unit.features.conftest import second_bars_with_taker_volume

    frame = second_bars_with_taker_volume("ETHUSDT")  # one second without trades: a gap at row 158
    feature_set = FeatureSet("taker", 1, (ofi_spec(1), ofi_spec(20)))
    ts = frame.get_column("ts").to_numpy()
    segment_start = np.maximum.accumulate(
        np.where(np.diff(ts, prepend=ts[0] - 1) != 1_000_000_000, np.arange(len(ts)), 0)
    )
    in_warmup = np.arange(len(ts)) - segment_start < 19

    for run in (run_batch, run_streaming):
        full_values = run(frame, feature_set, "1s")[: cut + 1]
        cut_values = run(frame.head(cut + 1), feature_set, "1s")
        np.testing.assert_array_equal(cut_values, full_values)
        assert np.isfinite(full_values[:, 0]).all()
        np.testing.assert_array_equal(np.isnan(full_values[:, 1]), in_warmup[: cut + 1])
