"""Windows, labels, folds and scaling on real bars (shipped slices, see tests/factories.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from qa_engine.models.data import DatasetConfig
from qa_engine.models.data import bars_sha256
from qa_engine.models.data import build_fold
from qa_engine.models.data import forward_log_returns
from qa_engine.models.data import load_source_bars
from qa_engine.models.data import past_log_returns
from qa_engine.models.data import to_ns
from qa_engine.models.data import window_end_mask
from tests.factories import real_klines
from tests.unit.models.oracle_data import BTC_5M
from tests.unit.models.oracle_data import STEP_NS
from tests.unit.models.oracle_data import bars_from
from tests.unit.models.oracle_data import small_feature_set
from tests.unit.models.oracle_data import tiny_config
from tests.unit.models.oracle_data import tiny_fold


def test_forward_returns_are_log_returns_of_the_next_closes() -> None:
    bars = bars_from("2025-02-01T00:00:00", 50)
    ts, close = bars.get_column("ts").to_numpy(), bars.get_column("close").to_numpy()

    labels = forward_log_returns(ts, close, 3, STEP_NS)

    assert labels[10, 0] == pytest.approx(np.log(close[11] / close[10]), abs=0, rel=1e-12)
    assert labels[10, 2] == pytest.approx(np.log(close[13] / close[10]), abs=0, rel=1e-12)
    assert np.isnan(labels[-1]).all() and np.isnan(labels[-3, 2]) and np.isfinite(labels[-3, 1])


def test_labels_and_past_returns_never_reach_across_a_gap() -> None:
    bars = bars_from("2025-02-01T00:00:00", 40)
    gapped = pl.concat([bars.head(20), bars.tail(15)])  # five real bars removed: a 25-minute hole
    ts, close = gapped.get_column("ts").to_numpy(), gapped.get_column("close").to_numpy()

    labels = forward_log_returns(ts, close, 4, STEP_NS)
    past = past_log_returns(ts, close, 4, STEP_NS)

    assert np.isnan(labels[19]).all()  # the last bar before the gap has no forward bar at +5 .. +20 min
    assert np.isfinite(labels[15]).all() and np.isnan(labels[16, 3])
    assert np.isnan(past[20]).all() and np.isfinite(past[24]).all()


def test_window_mask_rejects_gaps_and_symbol_boundaries() -> None:
    ts = np.array([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11], dtype=np.int64) * STEP_NS  # a gap after row 3
    series = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1], dtype=np.int32)  # a new symbol at row 7

    mask = window_end_mask(ts, series, 3, STEP_NS)

    assert mask.tolist() == [False, False, True, True, False, False, True, False, False, True, True]


def test_splits_respect_time_order_embargo_and_label_containment() -> None:
    data = tiny_fold()
    fold = data.fold
    train, validation, test = (data.splits[name] for name in ("train", "validation", "test"))
    horizon = data.meta.horizon_bars

    train_end_ts = train.ts[train.ends]
    assert train_end_ts.min() >= to_ns(fold.train_start)
    assert train_end_ts.max() + horizon * STEP_NS < to_ns(fold.validation_start)
    assert validation.ts[validation.ends].min() >= to_ns(fold.validation_start) + horizon * STEP_NS
    assert validation.ts[validation.ends].max() + horizon * STEP_NS < to_ns(fold.test_start)
    assert test.ts[test.ends].min() >= to_ns(fold.test_start) + horizon * STEP_NS
    assert test.ts[test.ends].max() + horizon * STEP_NS < to_ns(fold.test_end)


def test_scaler_and_target_scale_come_from_the_training_split_only() -> None:
    bars = bars_from("2025-03-01T00:00:00", 1_500)
    config = tiny_config(bars)
    validation_start = to_ns(config.folds[0].validation_start)
    later = pl.col("ts") >= validation_start
    changed = bars.with_columns(  # every bar from validation on: 3x volume and prices moved 20% up
        *(
            pl.when(later).then(pl.col(c) * 1.2).otherwise(pl.col(c)).alias(c)
            for c in ("open", "high", "low", "close")
        ),
        pl.when(later).then(pl.col("volume") * 3).otherwise(pl.col("volume")).alias("volume"),
    )

    original = build_fold(config, config.folds[0], {"BTCUSDT": bars}, small_feature_set())
    altered = build_fold(config, config.folds[0], {"BTCUSDT": changed}, small_feature_set())

    np.testing.assert_array_equal(original.scaler.mean, altered.scaler.mean)
    np.testing.assert_array_equal(original.scaler.std, altered.scaler.std)
    np.testing.assert_array_equal(original.target_scale, altered.target_scale)
    assert original.training_bars["sha256"] == altered.training_bars["sha256"]
    train = original.splits["train"]
    np.testing.assert_allclose(train.features[train.ends].std(), 1.0, rtol=0.2)  # scaled to unit-ish scale


def test_windows_on_the_real_2024_gap_stay_on_one_side() -> None:
    bars = bars_from("2024-05-10T00:00:00", 3_000)  # the file jumps from 2024-05-14 to 2024-12-31
    config = tiny_config(bars, encoder_bars=32, horizon_bars=6)
    data = build_fold(config, config.folds[0], {"BTCUSDT": bars}, small_feature_set())
    span = (32 - 1 + 6) * STEP_NS

    for dataset in data.splits.values():
        ends = dataset.ends
        first_rows = dataset.ts[ends - 31]
        last_label = dataset.ts[ends] + 6 * STEP_NS
        assert np.all(dataset.ts[ends] - first_rows == 31 * STEP_NS)
        assert np.all(np.isfinite(dataset.labels_raw[ends]))
        assert np.all(last_label - first_rows == span)
    gap_start = int(bars.filter(pl.col("ts").diff() > STEP_NS).get_column("ts")[0])
    all_ends = np.concatenate([d.ts[d.ends] for d in data.splits.values()])
    assert not np.any((all_ends < gap_start) & (all_ends + 6 * STEP_NS >= gap_start))


def test_two_symbols_never_share_a_window(tmp_path) -> None:
    btc = bars_from("2025-03-01T00:00:00", 1_200)
    eth = bars_from("2025-03-01T00:00:00", 1_200, series="binance_futures_ETHUSDT_5m")
    eth_klines = tmp_path / "binance_futures_ETHUSDT_5m.parquet"  # the same real bars as a kline file
    real_klines("binance_futures_ETHUSDT_5m", 1_200, start="2025-02-28T23:55").write_parquet(eth_klines)
    config = tiny_config(btc)
    config = DatasetConfig.model_validate(
        {
            **config.model_dump(),
            "sources": [
                {"symbol": "BTCUSDT", "klines": str(BTC_5M)},
                {"symbol": "ETHUSDT", "klines": str(eth_klines)},
            ],
        }
    )

    data = build_fold(config, config.folds[0], {"BTCUSDT": btc, "ETHUSDT": eth}, small_feature_set())

    train = data.splits["train"]
    rows = train.rows(np.arange(len(train)))  # (M, E)
    series = train.series_id[rows]
    assert np.all(series == series[:, :1])
    assert set(np.unique(series[:, 0]).tolist()) == {0, 1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embargo_bars": 3}, r"embargo_bars \(3\) must be >= horizon_bars \(4\)"),
        ({"sources": [{"symbol": "X"}]}, "give exactly one of klines or catalog"),
        ({"sources": [{"symbol": "X", "catalog": "catalog"}]}, "a catalog source needs instrument_id"),
    ],
)
def test_dataset_config_refuses_inconsistent_settings(change: dict, message: str) -> None:
    bars = bars_from("2025-03-01T00:00:00", 1_000)
    raw = {**tiny_config(bars).model_dump(), **change}

    with pytest.raises(ValidationError, match=message):
        DatasetConfig.model_validate(raw)


def test_dataset_config_refuses_overlapping_test_ranges() -> None:
    fold = {"train_start": "2025-01-01T00:00:00Z", "validation_start": "2025-02-01T00:00:00Z"}
    folds = [
        {**fold, "name": "a", "test_start": "2025-03-01T00:00:00Z", "test_end": "2025-05-01T00:00:00Z"},
        {**fold, "name": "b", "test_start": "2025-04-01T00:00:00Z", "test_end": "2025-06-01T00:00:00Z"},
    ]
    with pytest.raises(ValidationError, match="test ranges of folds 'a' and 'b' overlap"):
        DatasetConfig.model_validate(
            {"sources": [{"symbol": "BTCUSDT", "klines": str(BTC_5M)}], "folds": folds}
        )


def test_bars_hash_is_stable_and_sensitive() -> None:
    bars = bars_from("2025-03-01T00:00:00", 500)

    nudged = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 250).then(pl.col("close") + 0.1).otherwise(pl.col("close"))
    )

    assert bars_sha256(bars) == bars_sha256(bars.clone())
    assert bars_sha256(bars) != bars_sha256(nudged)


def test_catalog_and_kline_sources_load_the_same_real_bars(sample_catalog) -> None:
    from qa_engine.models.data import BarSourceConfig

    source = BarSourceConfig(symbol="BTCUSDT", catalog=sample_catalog, instrument_id="BTCUSDT-LINEAR.BYBIT")
    start, end = to_ns_text("2025-01-02T00:00:00"), to_ns_text("2025-01-03T00:00:00")

    bars = load_source_bars(source, "5m", start, end)

    assert bars.height == 288
    assert bars.get_column("ts").min() == start and bars.get_column("ts").max() == end - STEP_NS


def to_ns_text(text: str) -> int:
    from datetime import UTC
    from datetime import datetime

    return to_ns(datetime.fromisoformat(text).replace(tzinfo=UTC))
