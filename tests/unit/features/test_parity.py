"""Batch and streaming twins agree (|diff| <= 1e-9, same warm-up masks) on real BTC and ETH bars."""

from __future__ import annotations

import polars as pl
import pytest

from qa_engine.features.families.orderflow import ofi_spec
from qa_engine.features.families.technical import sma_spec
from qa_engine.features.sets import default_feature_set
from qa_engine.features.spec import FeatureSet
from tests.factories import kline_stretches
from tests.unit.features.conftest import KLINE_FILES
from tests.unit.features.conftest import max_abs_diff_by_feature
from tests.unit.features.conftest import real_bars
from tests.unit.features.conftest import run_batch
from tests.unit.features.conftest import run_streaming
from tests.unit.features.conftest import second_bars_with_taker_volume

PARITY_TOLERANCE = 1e-9
DATASETS = [("BTCUSDT", "1m"), ("ETHUSDT", "1m"), ("BTCUSDT", "5m"), ("ETHUSDT", "5m")]


def assert_parity(frame: pl.DataFrame, feature_set: FeatureSet, interval: str) -> dict[str, float]:
    batch = run_batch(frame, feature_set, interval)
    streaming = run_streaming(frame, feature_set, interval)
    differences = max_abs_diff_by_feature(batch, streaming, feature_set.names)
    too_far = {name: diff for name, diff in differences.items() if not diff <= PARITY_TOLERANCE}
    assert not too_far, f"batch and streaming differ by more than {PARITY_TOLERANCE}: {too_far}"
    return differences


@pytest.mark.parametrize(("symbol", "interval"), DATASETS)
def test_default_set_batch_equals_streaming_on_real_bars(symbol: str, interval: str) -> None:
    # 6,000 real bars per dataset keeps the default suite fast; the slow test below runs whole files.
    frame = real_bars(symbol, interval, 6_000, offset=-6_000)
    feature_set = default_feature_set()

    differences = assert_parity(frame, feature_set, interval)

    assert len(differences) == len(feature_set.specs)
    warm = run_batch(frame, feature_set, interval)[feature_set.warmup_bars - 1 :]
    assert warm.shape[0] == frame.height - feature_set.warmup_bars + 1
    assert not pl.DataFrame(warm).select(pl.all().is_nan().any()).row(0).count(True)


@pytest.mark.slow
@pytest.mark.parametrize(("symbol", "interval"), DATASETS)
def test_default_set_batch_equals_streaming_on_every_shipped_stretch(symbol: str, interval: str) -> None:
    # Each contiguous stretch of shipped real bars, whole. BTCUSDT 5m holds 121,065 bars from 2024-05-09
    # across the 230-day hole to 2026-02-19: running sums must not drift, and both twins must restart
    # their warm-up at the gap in the same way.
    for first, stretch in kline_stretches(KLINE_FILES[(symbol, interval)]):
        frame = real_bars(symbol, interval, stretch.height, offset=first)

        differences = assert_parity(frame, default_feature_set(), interval)

        print(
            f"{symbol} {interval} rows {first}..{first + frame.height}: "
            f"max |batch - streaming| = {max(differences.values()):.3e}"
        )


def test_taker_volume_ofi_batch_equals_streaming_on_real_trades() -> None:
    # Real 1-second bars built from real trades carry real taker buy volume: the primary OFI path.
    frame = second_bars_with_taker_volume("BTCUSDT")
    feature_set = FeatureSet("taker", 1, (ofi_spec(1), ofi_spec(20), sma_spec(5)))

    differences = assert_parity(frame, feature_set, "1s")

    assert set(differences) == {"ofi_1", "ofi_20", "sma_5"}
    batch = run_batch(frame, feature_set, "1s")
    buy = frame.get_column("taker_buy_volume").to_numpy()
    volume = frame.get_column("volume").to_numpy()
    assert batch[0, 0] == pytest.approx((2 * buy[0] - volume[0]) / volume[0], abs=1e-15)
