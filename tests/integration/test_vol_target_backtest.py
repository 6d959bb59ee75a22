"""Vol-target sizing (strategies/base.py, qa_engine/risk/sizing.py) in the engine, on the real bars of the
sample catalog (Bybit linear BTCUSDT 5m, January 2025):

- vol-targeted buy-and-hold holds a position whose notional is min(max_leverage, target / sigma) x equity
  with sigma the realized one of the last 48 bars, recomputed here from the bars independently: smaller in
  the most volatile day than in the calmest;
- it re-sizes only when the wanted size leaves the rebalance band;
- sizing = "fixed" with every vol field set gives exactly the orders of the reviewed default ema_cross run;
- the risk guard's max_position still caps a vol-target position.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from nautilus_trader.model.data import BarType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from qa_engine.backtest.runner import run_backtest
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from strategies.buy_and_hold import BuyAndHoldStrategyConfig
from tests.pristine import pristine_catalog

ROOT = Path(__file__).resolve().parents[2]
INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"
BAR_TYPE = f"{INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL"
GOLDEN = ROOT / "tests" / "golden" / "backtest_default_summary.json"
LOOKBACK = 48
TARGET_PER_BAR = 0.20 / math.sqrt(365 * 288)
LOT = 0.001  # BTCUSDT-LINEAR size increment


def _run(config_file: str, run_dir: Path, *overrides: str):
    config = load_config(
        BacktestConfig,
        ROOT / "configs/backtest" / config_file,
        [f'data.catalog="{pristine_catalog()}"', *overrides],
    )
    return run_backtest(config, run_dir=run_dir)


@pytest.fixture(scope="module")
def vol_run(tmp_path_factory):
    return _run(
        "buy_and_hold.toml", tmp_path_factory.mktemp("vol"), 'strategies.0.params.sizing="vol_target"'
    )


@pytest.fixture(scope="module")
def closes() -> pl.DataFrame:
    bars = ParquetDataCatalog(str(pristine_catalog())).bars([BAR_TYPE])
    frame = pl.DataFrame({"ts_ns": [b.ts_event for b in bars], "close": [float(b.close) for b in bars]})
    log_close = np.log(frame["close"].to_numpy())
    returns = np.diff(log_close, prepend=np.nan)
    sigma = pl.Series(returns).rolling_std(LOOKBACK, ddof=1).to_numpy()  # the last 48 returns, causal
    leverage = np.minimum(3.0, TARGET_PER_BAR / sigma)
    return frame.with_columns(pl.Series("sigma", sigma), pl.Series("leverage", leverage))


def _fills(run) -> pl.DataFrame:
    fills = pl.read_csv(run.run_dir / "fills.csv", try_parse_dates=True)
    return fills.with_columns(pl.col("ts").dt.epoch("ns").alias("ts_ns"))


def _equity(run) -> pl.DataFrame:
    curve = pl.read_csv(run.run_dir / "equity_curve.csv", try_parse_dates=True)
    return curve.with_columns(pl.col("ts").dt.epoch("ns").alias("ts_ns"))


def test_each_resize_sets_the_notional_to_the_vol_target_of_the_last_48_bars(vol_run, closes):
    fills = _fills(vol_run).join(closes, on="ts_ns", how="left")
    equity = _equity(vol_run).select("ts_ns", "equity")
    assert fills.height > 10
    assert (fills["side"] == "BUY").any() and (fills["position_after"] > 0).all()  # always long
    first = fills.row(0, named=True)
    assert first["ts_ns"] == closes["ts_ns"][LOOKBACK]  # the first bar with 48 returns
    rows = fills.join(equity, on="ts_ns", how="left").iter_rows(named=True)
    for row in rows:
        # the equity the strategy sized on (before the fill) ~ the mark after it: 0.2 % for fee and slippage
        wanted = row["equity"] * row["leverage"] / row["close"]
        assert wanted * 0.998 - LOT <= row["position_after"] <= wanted * 1.002, row


def test_the_notional_is_smaller_in_the_most_volatile_day_than_in_the_calmest(vol_run, closes):
    curve = _equity(vol_run).join(closes, on="ts_ns", how="inner").filter(pl.col("position_notional") > 0)
    days = (
        curve.with_columns((pl.col("position_notional").abs() / pl.col("equity")).alias("exposure"))
        .group_by(pl.col("ts").dt.date().alias("day"))
        .agg(pl.col("sigma").mean(), pl.col("exposure").mean())
        .sort("sigma")
    )
    calm, wild = days.row(0, named=True), days.row(-1, named=True)
    assert wild["sigma"] > 2 * calm["sigma"]
    assert wild["exposure"] < 0.6 * calm["exposure"], (calm, wild)
    # and over the month the exposure falls as sigma rises
    assert np.corrcoef(days["sigma"].to_numpy(), days["exposure"].to_numpy())[0, 1] < -0.5


def test_it_resizes_only_outside_the_rebalance_band(vol_run, closes):
    fills = _fills(vol_run)
    held = fills["position_after"].to_numpy()
    changes = np.abs(held[1:] - held[:-1]) / held[:-1]
    assert (changes > 0.25).all(), changes.min()  # every re-size left the 25 % band
    # between fills, the size wanted at each close stayed inside the band (lot and fee tolerance)
    curve = (
        _equity(vol_run)
        .join(closes, on="ts_ns")
        .join(fills.select("ts_ns", "position_after"), on="ts_ns", how="left")
    )
    curve = curve.filter(pl.col("ts_ns") >= fills["ts_ns"][0]).with_columns(
        pl.col("position_after").forward_fill().alias("held"),
        pl.col("position_after").is_null().alias("no_fill"),
    )
    quiet = curve.filter(pl.col("no_fill"))
    wanted = np.floor(quiet["equity"] * quiet["leverage"] / quiet["close"] / LOT) * LOT  # the lot step, down
    deviation = np.abs(wanted - quiet["held"].to_numpy()) / quiet["held"].to_numpy()
    assert deviation.max() <= 0.25 + 0.01, deviation.max()  # 1 %: the equity after vs before a fill
    assert fills.height < curve.height / 20  # far fewer orders than bars


def test_fixed_sizing_with_vol_fields_set_gives_the_reviewed_ema_cross_orders(tmp_path):
    plain = _run("default.toml", tmp_path / "plain")
    fixed = _run(
        "default.toml",
        tmp_path / "fixed",
        'strategies.0.params.sizing="fixed"',
        "strategies.0.params.vol_target_annual_pct=5.0",
        "strategies.0.params.max_leverage=0.5",
        "strategies.0.params.rebalance_band_pct=90.0",
        "strategies.0.params.vol_lookback_bars=7",
    )
    columns = ["ts", "side", "quantity", "price", "fee", "position_after"]
    plain_fills = pl.read_csv(plain.run_dir / "fills.csv").select(columns)
    assert pl.read_csv(fixed.run_dir / "fills.csv").select(columns).equals(plain_fills)
    golden = json.loads(GOLDEN.read_text())
    assert plain_fills.height == golden["fills"]
    assert plain_fills.head(3).select("ts", "side", "quantity", "price", "fee").rows() == [
        tuple(row) for row in golden["first_fills"]
    ]
    metrics = json.loads((fixed.run_dir / "performance_metrics.json").read_text())
    assert round(metrics["final_equity"], 2) == golden["final_equity"]


def test_max_position_of_the_risk_limits_caps_a_vol_target_position(tmp_path):
    run = _run(
        "buy_and_hold.toml",
        tmp_path,
        'strategies.0.params.sizing="vol_target"',
        "strategies.0.params.vol_target_annual_pct=200.0",  # wants ~3x equity: ~0.3 BTC
        'risk.limits.max_position={"BTCUSDT-LINEAR.BYBIT" = 0.05}',
    )
    fills = _fills(run)
    assert fills["position_after"].max() == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sizing", "kelly"),
        ("vol_source", "implied"),
        ("vol_target_annual_pct", 0.0),
        ("max_leverage", -1.0),
        ("rebalance_band_pct", 100.0),
        ("vol_lookback_bars", 1),
    ],
)
def test_bad_vol_fields_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        BuyAndHoldStrategyConfig(
            instrument_id=InstrumentId.from_str(INSTRUMENT_ID),
            bar_type=BarType.from_str(BAR_TYPE),
            **{field: value},
        )


def test_vol_target_needs_time_bars():
    with pytest.raises(ValueError, match="time bars"):
        BuyAndHoldStrategyConfig(
            instrument_id=InstrumentId.from_str(INSTRUMENT_ID),
            bar_type=BarType.from_str(f"{INSTRUMENT_ID}-100-TICK-LAST-EXTERNAL"),
            sizing="vol_target",
        )


def _forecast_run(run_dir: Path, vol_source: str):
    """Vol-targeted buy-and-hold for 3 days beside the committed Oracle (and the FeatureActor it reads)."""
    params = {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE}
    features = {"component_id": "FeatureActor-strategist", **params, "artifact": "artifacts/strategist"}
    oracle = {**params, "artifact": "artifacts/oracle", "features_from": "artifacts/strategist"}
    config = BacktestConfig.model_validate(
        {
            "id": f"vol-target-{vol_source}",
            "venues": [{"name": "BYBIT", "leverage": 3.0, "latency_ms": 0.0}],
            "data": {
                "catalog": str(pristine_catalog()),
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "5m"}],
                "start": "2025-01-01T00:00:00Z",
                "end": "2025-01-04T00:00:00Z",
            },
            "actors": [{"name": "features", "params": features}, {"name": "oracle", "params": oracle}],
            "strategies": [
                {
                    "name": "buy_and_hold",
                    "params": {**params, "sizing": "vol_target", "vol_source": vol_source},
                }
            ],
        }
    )
    return run_backtest(config, run_dir=run_dir)


def test_forecast_sigma_sizes_once_the_oracle_speaks_and_realized_before(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(ROOT)  # the artifact paths are relative to the repository
    columns = ["ts", "side", "quantity", "position_after"]
    realized = pl.read_csv(_forecast_run(tmp_path / "realized", "realized").run_dir / "fills.csv").select(
        columns
    )
    capfd.readouterr()
    forecast = pl.read_csv(_forecast_run(tmp_path / "forecast", "forecast").run_dir / "fills.csv").select(
        columns
    )
    output = "".join(capfd.readouterr())
    assert output.count("no Forecast for BTCUSDT-LINEAR.BYBIT yet") == 1  # the fallback, said once
    # the first Forecast comes once the features are warm (Jan 2, evening): the same orders until then
    differ = next(i for i, (a, b) in enumerate(zip(realized.rows(), forecast.rows(), strict=False)) if a != b)
    assert differ >= 5
    assert realized.head(differ).equals(forecast.head(differ))
    assert forecast["ts"][differ] > "2025-01-02T12:00"
