"""Property tests (hypothesis) for the baselines' labels and inputs, on real Bybit BTCUSDT 5m bars:

- the label at t depends on close[t] and close[t+N] only: changing any other bar leaves it unchanged;
- labels computed on data that ends at bar T equal the full-data labels up to T-N, and are undefined
  (NO_LABEL, never filled in) after it;
- the model input at t (the scaled 20-bar window of default-set features ending at t) is identical
  whether the data ends at t or goes on: features never include bars > t.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import polars as pl
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from qa_engine.contract.labels import NO_LABEL
from qa_engine.contract.labels import triple_class_labels
from qa_engine.features.build import build_feature_table
from qa_engine.features.families.fracdiff import fit_feature_set
from qa_engine.features.io import interval_ns
from qa_engine.features.io import load_kline_file
from qa_engine.features.sets import default_feature_set
from qa_engine.inference.scaling import fit_feature_scaler
from tests.factories import research_klines

BYBIT_BTC_5M = research_klines("bybit_linear_BTCUSDT_5m")  # data/klines: real, gap-free, 2025-01-01 on
STEP_NS = interval_ns("5m")
WINDOW_BARS = 20
FEATURE_SET = default_feature_set()


@cache
def real_bars() -> pl.DataFrame:
    return load_kline_file(BYBIT_BTC_5M, "5m")


@cache
def fitted_feature_set():
    """The default set with its FFD order fitted on a training range (January 2025), as a fold does."""
    return fit_feature_set(FEATURE_SET, real_bars().head(8_000))


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 100_000),
    horizon=st.integers(1, 24),
    threshold=st.sampled_from([5.0, 20.0, 50.0]),
    offset=st.integers(0, 150),
    seed=st.integers(0, 2**32 - 1),
)
def test_label_at_t_reads_only_close_t_and_close_t_plus_n(start, horizon, threshold, offset, seed):
    close = real_bars().get_column("close").to_numpy()[start : start + 200].copy()
    t = offset % (len(close) - horizon)
    labels = triple_class_labels(close, horizon, threshold)

    changed = close * np.random.default_rng(seed).uniform(0.5, 1.5, len(close))  # every bar moves ...
    changed[[t, t + horizon]] = close[[t, t + horizon]]  # ... except bars t and t+N

    assert triple_class_labels(changed, horizon, threshold)[t] == labels[t]
    assert labels[t] != NO_LABEL
    assert np.all(labels[len(close) - horizon :] == NO_LABEL)


@settings(max_examples=60, deadline=None)
@given(start=st.integers(0, 100_000), horizon=st.integers(1, 24), cut=st.integers(30, 199))
def test_labels_on_data_cut_at_t_match_until_t_minus_n_and_are_never_filled(start, horizon, cut):
    bars = real_bars().slice(start, 200)
    close = bars.get_column("close").to_numpy()
    ts = bars.get_column("ts").to_numpy()

    full = triple_class_labels(close, horizon, 20.0, ts=ts, step_ns=STEP_NS)
    truncated = triple_class_labels(close[: cut + 1], horizon, 20.0, ts=ts[: cut + 1], step_ns=STEP_NS)

    defined = cut + 1 - horizon
    np.testing.assert_array_equal(truncated[:defined], full[:defined])
    assert np.all(truncated[max(defined, 0) :] == NO_LABEL)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.integers(0, 100_000), cut_offset=st.integers(0, 120))
def test_model_input_window_at_t_does_not_change_when_later_bars_exist(start, cut_offset):
    feature_set = fitted_feature_set()
    bars = real_bars().slice(start, feature_set.warmup_bars + WINDOW_BARS + 160)
    cut = feature_set.warmup_bars + WINDOW_BARS + cut_offset  # row of bar t in `bars`
    t_ns = int(bars.get_column("ts")[cut])

    full = build_feature_table(bars, feature_set, STEP_NS).table
    truncated = build_feature_table(bars.head(cut + 1), feature_set, STEP_NS).table
    names = list(feature_set.names)
    scaler = fit_feature_scaler(full.head(60).select(names).to_numpy(), feature_set.names, clip=8.0)

    def window_ending_at_t(table: pl.DataFrame) -> np.ndarray:
        values = table.filter(pl.col("ts") <= t_ns).tail(WINDOW_BARS)
        assert values.get_column("ts")[-1] == t_ns and values.height == WINDOW_BARS
        return scaler.transform(values.select(names).to_numpy()).astype(np.float32)  # (E, F)

    np.testing.assert_array_equal(window_ending_at_t(truncated), window_ending_at_t(full))
