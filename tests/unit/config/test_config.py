import re
from pathlib import Path

import pytest

from qa_engine.config.build import build_backtest_run_config
from qa_engine.config.loader import apply_override
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.errors import ConfigError

DEFAULT = Path(__file__).resolve().parents[3] / "configs" / "backtest" / "default.toml"


def load(*overrides: str) -> BacktestConfig:
    return load_config(BacktestConfig, DEFAULT, list(overrides))


def test_default_config_loads_and_round_trips_through_toml(tmp_path):
    from qa_engine.config.loader import dump_toml

    config = load()
    path = tmp_path / "resolved.toml"
    path.write_text(dump_toml(config))
    assert load_config(BacktestConfig, path) == config


def test_set_override_goes_through_validation():
    config = load("strategies.0.params.fast_ema_period=5", "venues.0.leverage=2.5")
    assert config.strategies[0].params["fast_ema_period"] == 5
    assert config.venues[0].leverage == 2.5


def test_unknown_key_is_named_in_the_message():
    with pytest.raises(ConfigError, match=r"venues\.0\.levrage: unknown key"):
        load("venues.0.levrage=2")


def test_wrong_type_is_named_in_the_message():
    with pytest.raises(ConfigError, match=r"venues\.0\.starting_balance"):
        load('venues.0.starting_balance="lots"')


def test_leverage_above_ten_is_refused():
    with pytest.raises(ConfigError, match=r"venues\.0\.leverage: Input should be less than or equal to 10"):
        load("venues.0.leverage=20")


def test_end_before_start_is_refused():
    with pytest.raises(ConfigError, match="must be after start"):
        load("data.end=2024-01-01T00:00:00Z")


def test_bars_on_an_unconfigured_venue_are_refused():
    with pytest.raises(ConfigError, match="venue BINANCE, which is not configured"):
        load('data.bars.0.instrument_id="BTCUSDT-PERP.BINANCE"')


def test_set_into_a_missing_list_index_is_refused():
    with pytest.raises(ConfigError, match="not an index"):
        apply_override({"strategies": []}, "strategies.3.name=x")


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(BacktestConfig, tmp_path / "nope.toml")


def test_invalid_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(BacktestConfig, path)


# Checks that need the catalog and the plug-ins: made when the Nautilus config is built.


def build(sample_catalog, *overrides):
    return build_backtest_run_config(load(f'data.catalog="{sample_catalog}"', *overrides))


def test_default_config_builds_into_a_valid_nautilus_run_config(sample_catalog):
    run_config = build(sample_catalog)
    assert run_config.venues[0].name == "BYBIT"
    assert run_config.venues[0].latency_model.config == {"base_latency_nanos": 0}
    assert [s.strategy_path for s in run_config.engine.strategies] == [
        "strategies.ema_cross:EMACrossStrategy"
    ]


def test_negative_period_is_refused_by_the_strategy_config(sample_catalog):
    with pytest.raises(ConfigError, match=r"strategies\.0 \(ema_cross\): invalid params: .*fast_ema_period"):
        build(sample_catalog, "strategies.0.params.fast_ema_period=-3")


def test_cross_field_rule_of_the_strategy_config(sample_catalog):
    with pytest.raises(ConfigError, match="must be less than slow_ema_period"):
        build(sample_catalog, "strategies.0.params.fast_ema_period=30")


def test_unknown_strategy_lists_the_registered_ones(sample_catalog):
    with pytest.raises(
        ConfigError, match="unknown strategy 'ema_crosss'; registered strategies: .*ema_cross"
    ):
        build(sample_catalog, 'strategies.0.name="ema_crosss"')


def test_strategy_by_import_path(sample_catalog):
    run_config = build(sample_catalog, 'strategies.0.name="strategies.ema_cross:EMACrossStrategy"')
    assert run_config.engine.strategies[0].config_path == "strategies.ema_cross:EMACrossStrategyConfig"


def test_bad_import_path(sample_catalog):
    with pytest.raises(ConfigError, match="cannot import module 'nowhere'"):
        build(sample_catalog, 'strategies.0.name="nowhere:Strategy"')


def test_instrument_missing_from_catalog(sample_catalog):
    with pytest.raises(ConfigError, match="SOLUSDT-LINEAR.BYBIT is not in the catalog"):
        build(sample_catalog, 'data.bars.0.instrument_id="SOLUSDT-LINEAR.BYBIT"')


def test_range_missing_from_catalog(sample_catalog):
    with pytest.raises(
        ConfigError, match="has no 5m bars of BTCUSDT-LINEAR.BYBIT; the catalog holds 2025-01-01"
    ):
        build(sample_catalog, "data.start=2023-01-01T00:00:00Z", "data.end=2023-02-01T00:00:00Z")


def test_interval_missing_from_catalog(sample_catalog):
    with pytest.raises(ConfigError, match="no 4h bars of BTCUSDT-LINEAR.BYBIT"):
        build(sample_catalog, 'data.bars.0.interval="4h"')


def test_missing_catalog_directory(tmp_path):
    with pytest.raises(ConfigError, match="no catalog at"):
        build_backtest_run_config(load(f'data.catalog="{tmp_path / "none"}"'))


def test_fee_tier_of_the_venue_sets_both_rates(tmp_path):
    from decimal import Decimal

    from qa_engine.config.loader import dump_toml

    config = load('venues.0.fee_tier="non-vip"')
    assert config.venues[0].configured_fee_rates() == (
        Decimal("0.0002"),
        Decimal("0.00055"),
        "fee tier non-vip",
    )
    path = tmp_path / "resolved.toml"
    path.write_text(dump_toml(config))
    assert load_config(BacktestConfig, path) == config


def test_unknown_fee_tier_lists_the_venue_tiers():
    with pytest.raises(ConfigError, match=r"unknown fee tier 'vip3' for BYBIT; known: non-vip"):
        load('venues.0.fee_tier="vip3"')


def test_explicit_rates_round_trip_and_need_each_other(tmp_path):
    from decimal import Decimal

    from qa_engine.config.loader import dump_toml

    config = load("venues.0.maker_fee_rate=0.0001", "venues.0.taker_fee_rate=0.0004")
    assert config.venues[0].configured_fee_rates() == (Decimal("0.0001"), Decimal("0.0004"), "run config")
    path = tmp_path / "resolved.toml"
    path.write_text(dump_toml(config))
    assert load_config(BacktestConfig, path) == config
    with pytest.raises(ConfigError, match="set both maker_fee_rate and taker_fee_rate"):
        load("venues.0.taker_fee_rate=0.0004")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            (
                'venues.0.fee_tier="non-vip"',
                "venues.0.maker_fee_rate=0.0001",
                "venues.0.taker_fee_rate=0.0004",
            ),
            "either fee_tier or maker_fee_rate/taker_fee_rate",
        ),
        (('venues.0.fee_model="none"', 'venues.0.fee_tier="non-vip"'), "fee_model 'none' charges no fees"),
        (("venues.0.maker_fee_rate=0.0001", "venues.0.taker_fee_rate=0.5"), r"venues\.0\.taker_fee_rate"),
    ],
)
def test_contradictory_or_absurd_fee_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load(*overrides)


def test_configured_rates_build_our_fee_model_and_instrument_rates_nautilus_own(sample_catalog):
    default = build_backtest_run_config(load(f'data.catalog="{sample_catalog}"')).venues[0].fee_model
    tier = (
        build_backtest_run_config(load(f'data.catalog="{sample_catalog}"', 'venues.0.fee_tier="non-vip"'))
        .venues[0]
        .fee_model
    )

    assert default.fee_model_path == "nautilus_trader.backtest.models:MakerTakerFeeModel"
    assert tier.fee_model_path == "qa_engine.backtest.fees:VenueRateFeeModel"
    assert tier.config == {"maker_fee_rate": "0.0002", "taker_fee_rate": "0.00055"}


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        (("data.start=2024-12-31T00:00:00Z",), "2024-12-31 00:00 -> 2025-01-01 00:00 (before the first bar)"),
        (("data.end=2025-02-01T00:05:00Z",), "2025-02-01 00:00 -> 2025-02-01 00:05 (after the last bar)"),
    ],
)
def test_a_range_partly_outside_the_catalog_is_refused_naming_the_span(sample_catalog, overrides, missing):
    with pytest.raises(ConfigError, match=re.escape(missing)):
        build_backtest_run_config(load(f'data.catalog="{sample_catalog}"', *overrides))


def test_the_catalog_exact_range_passes_and_truncation_is_opt_in(sample_catalog):
    # start = the first bar's OPEN (its close is 00:05), end = the last bar's close: fully covered
    build_backtest_run_config(load(f'data.catalog="{sample_catalog}"'))
    build_backtest_run_config(
        load(
            f'data.catalog="{sample_catalog}"',
            "data.end=2025-03-01T00:00:00Z",
            "data.allow_partial_range=true",
        )
    )
