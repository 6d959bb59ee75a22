"""Feature specs, sets, hashes and missing-input handling."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest

from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.features.batch import compute_features_batch
from qa_engine.features.families.common import make_spec
from qa_engine.features.families.fracdiff import ffd_spec
from qa_engine.features.families.orderflow import ofi_spec
from qa_engine.features.families.technical import sma_spec
from qa_engine.features.registry import kind_of
from qa_engine.features.registry import kinds
from qa_engine.features.sets import default_feature_set
from qa_engine.features.sets import get_feature_set
from qa_engine.features.spec import FeatureSet
from qa_engine.features.streaming import StreamingFeatureEngine
from tests.unit.features.conftest import real_bars


def test_default_set_has_at_least_44_features_each_with_a_registered_kind() -> None:
    feature_set = default_feature_set()

    assert len(feature_set.specs) >= 44
    assert len(set(feature_set.names)) == len(feature_set.names)
    for spec in feature_set.specs:
        assert kind_of(spec.kind).name == spec.kind
        assert spec.warmup_bars >= 1
        assert spec.description
    assert feature_set.warmup_bars == max(spec.warmup_bars for spec in feature_set.specs)


def test_hash_is_stable_across_processes() -> None:
    code = "from qa_engine.features.sets import default_feature_set; print(default_feature_set().hash)"
    other_process = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout.strip()

    assert other_process == default_feature_set().hash
    assert len(other_process) == 64


def test_changing_a_parameter_changes_the_hash() -> None:
    base = default_feature_set()
    changed = base.replace_spec(sma_spec(20).with_params(period_bars=21))
    refitted = base.replace_spec(ffd_spec(order=0.35))

    assert changed.hash != base.hash
    assert refitted.hash != base.hash
    assert base.replace_spec(sma_spec(20)).hash == base.hash


def test_version_and_order_are_part_of_the_hash() -> None:
    specs = (sma_spec(5), sma_spec(10))

    assert FeatureSet("s", 1, specs).hash != FeatureSet("s", 2, specs).hash
    assert FeatureSet("s", 1, specs).hash != FeatureSet("s", 1, specs[::-1]).hash


def test_duplicate_feature_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        FeatureSet("s", 1, (sma_spec(5), sma_spec(5)))


def test_unknown_feature_set_lists_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match="registered: default"):
        get_feature_set("nope")


def test_unknown_kind_lists_the_registered_kinds() -> None:
    with pytest.raises(ConfigError, match="registered kinds: .*sma"):
        kind_of("nope")
    assert {"sma", "ema", "rsi", "ffd", "wavelet", "volume_profile", "ofi_taker", "ofi_bvc"} <= set(kinds())


def test_ofi_without_taker_volume_uses_its_declared_bvc_fallback() -> None:
    feature_set = FeatureSet("ofi", 1, (ofi_spec(20),))

    resolved = feature_set.resolve(frozenset({"ohlcv"}))
    kept = feature_set.resolve(frozenset({"ohlcv", "taker_buy_volume"}))

    assert resolved.specs[0].kind == "ofi_bvc"
    assert resolved.specs[0].warmup_bars == 50 + 20
    assert "fallback" in resolved.specs[0].description
    assert resolved.hash != feature_set.hash
    assert kept.specs[0].kind == "ofi_taker"


def test_feature_needing_the_book_without_fallback_refuses_to_build_with_a_clear_message() -> None:
    spread = make_spec(
        "spread_bps",
        "sma",
        warmup_bars=1,
        description="needs a book",
        inputs=("ohlcv", "best_bid_ask"),
        period_bars=1,
        source="close",
    )
    feature_set = FeatureSet("book", 1, (sma_spec(5), spread))
    bars = real_bars("BTCUSDT", "1m", 50)

    with pytest.raises(DataError, match=r"spread_bps \(needs best_bid_ask\)"):
        compute_features_batch(bars, feature_set, 60_000_000_000)
    with pytest.raises(DataError, match="spread_bps"):
        StreamingFeatureEngine(feature_set, 60_000_000_000)


def test_bars_with_nan_or_nulls_are_refused_not_propagated() -> None:
    bars = real_bars("BTCUSDT", "1m", 30)
    broken = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(float("nan")).otherwise(pl.col("close")).alias("close")
    )

    with pytest.raises(DataError, match="NaN"):
        compute_features_batch(broken, FeatureSet("s", 1, (sma_spec(5),)), 60_000_000_000)


def test_spec_params_must_be_sorted_and_warmup_positive() -> None:
    with pytest.raises(ConfigError, match="sorted"):
        sma_spec(5).__class__(
            name="x",
            kind="sma",
            params=(("source", "close"), ("period_bars", 5)),
            inputs=("ohlcv",),
            warmup_bars=5,
        )
    with pytest.raises(ConfigError, match="warmup_bars"):
        make_spec("x", "sma", warmup_bars=0, description="d", period_bars=5, source="close")


def test_the_lookahead_check_catches_a_centred_window(monkeypatch: pytest.MonkeyPatch) -> None:
    # A test that cannot fail is a defect: a deliberately leaky kind (a centred rolling mean, which
    # reads 2 later bars) must change its past values when later bars arrive.
    from qa_engine.features.families.common import FeatureKind
    from qa_engine.features.registry import kinds as registered_kinds

    leaky = FeatureKind(
        "leaky_centred_mean",
        lambda context, spec: pl.col("close").rolling_mean(5, center=True),
        lambda context, spec: "close",
        "reads the future on purpose",
    )
    monkeypatch.setitem(registered_kinds(), "leaky_centred_mean", leaky)
    spec = make_spec("leaky", "leaky_centred_mean", warmup_bars=5, description="leaks")
    feature_set = FeatureSet("leak", 1, (spec,))
    bars = real_bars("BTCUSDT", "1m", 40)

    full = compute_features_batch(bars, feature_set, 60_000_000_000).get_column("leaky")
    cut = compute_features_batch(bars.head(30), feature_set, 60_000_000_000).get_column("leaky")

    assert full[29] is not None and (cut[29] is None or cut[29] != full[29])  # row 29 reads rows 30, 31


def test_streaming_engine_built_for_taker_volume_refuses_a_bar_without_it() -> None:
    engine = StreamingFeatureEngine(
        FeatureSet("ofi", 1, (ofi_spec(20),)), 60_000_000_000, available=("ohlcv", "taker_buy_volume")
    )
    engine.update(60_000_000_000, 1.0, 1.0, 1.0, 1.0, 5.0, 2.0)

    with pytest.raises(DataError, match="no taker buy volume"):
        engine.update(120_000_000_000, 1.0, 1.0, 1.0, 1.0, 5.0)


def test_streaming_engine_refuses_a_nan_bar_instead_of_emitting_nan_features() -> None:
    engine = StreamingFeatureEngine(FeatureSet("s", 1, (sma_spec(5),)), 60_000_000_000)

    with pytest.raises(DataError, match="NaN"):
        engine.update(60_000_000_000, 1.0, 1.0, 1.0, float("nan"), 5.0)
