"""Backtests with leverage on real data: funding, margin denial and liquidation through the runner,
reported and reconciled (Bybit BTCUSDT 5m bars and 8 h funding rates of October 2025, from
data/klines and data/funding, ingested into a catalog of the test's own)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from qa_engine.backtest.runner import run_backtest
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from tests.real_catalogs import october_2025_catalog

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def october(tmp_path_factory) -> Path:
    return october_2025_catalog(tmp_path_factory.mktemp("october") / "catalog")


def _run(catalog: Path, run_dir: Path, *overrides: str):
    config = load_config(
        BacktestConfig,
        ROOT / "configs/backtest/default.toml",
        [
            f'data.catalog="{catalog}"',
            "data.start=2025-10-01T00:00:00Z",
            "data.end=2025-11-01T00:00:00Z",
            *overrides,
        ],
    )
    outcome = run_backtest(config, run_dir=run_dir)
    return outcome, json.loads((run_dir / "performance_metrics.json").read_text())


def _hold(side: str, notional_pct: int, leverage: int) -> tuple[str, ...]:
    return (
        'strategies.0.name="tests.plugins.hold:Hold"',
        f'strategies.0.params={{instrument_id="BTCUSDT-LINEAR.BYBIT", '
        f'bar_type="BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL", notional_pct_of_equity={notional_pct}, '
        f'side="{side}"}}',
        f"venues.0.leverage={leverage}",
    )


def test_funding_total_equals_an_independent_sum_over_the_positions(october, tmp_path):
    """The EMA baseline flips ~320 times in October: at each funding time T, the position is the sum of
    the fills stamped before T, the price the close of the bar that closes at T."""
    _, metrics = _run(october, tmp_path)
    fills = pl.read_csv(tmp_path / "fills.csv", try_parse_dates=True)
    bars = pl.read_parquet(ROOT / "data/klines/bybit_linear_BTCUSDT_5m.parquet")
    closes = dict(
        zip(
            (bars["ts_open"].dt.epoch("ns") + 300_000_000_000).to_list(),
            bars["close"].to_list(),
            strict=True,
        )
    )
    rates = pl.read_parquet(ROOT / "data/funding/bybit_linear_BTCUSDT_funding.parquet")
    fill_ns = fills["ts"].dt.epoch("ns").to_list()
    signed = [
        Decimal(str(q)) * (1 if s == "BUY" else -1)
        for q, s in zip(fills["quantity"], fills["side"], strict=True)
    ]
    expected, settlements = Decimal(0), 0
    for ts, rate in zip(rates["ts"].dt.epoch("ns").to_list(), rates["funding_rate"].to_list(), strict=True):
        if not (1_759_276_800_000_000_000 <= ts <= 1_761_955_200_000_000_000):  # 2025-10-01 .. 11-01
            continue
        position = sum((q for t, q in zip(fill_ns, signed, strict=True) if t < ts), Decimal(0))
        if position == 0:
            continue
        amount = -position * Decimal(str(closes[ts])) * Decimal(repr(rate))
        expected += amount.quantize(Decimal("0.00000001"))
        settlements += 1
    funding = metrics["funding"]
    assert funding["settlements"] == settlements > 80
    assert Decimal(str(funding["total"])) == pytest.approx(expected, abs=Decimal("0.000001"))
    trades = pl.read_csv(tmp_path / "trades.csv")
    open_funding = Decimal(str(funding["total"])) - Decimal(str(sum(trades["funding"])))
    assert abs(open_funding) < 5  # the rest belongs to the position still open at the end
    assert metrics["reconciliation"]["balanced_to_the_cent"]
    assert metrics["reconciliation"]["of_which_funding"] == funding["total"]
    print(
        f"\nOctober 2025, EMA baseline: funding {funding['total']:+.4f} USDT over {settlements} settlements"
    )


def test_a_10x_long_through_the_crash_is_liquidated_and_the_run_goes_on(october, tmp_path):
    outcome, metrics = _run(october, tmp_path, *_hold("LONG", 950, 10))
    [liquidation] = metrics["venue_simulation"]["liquidations"]
    assert liquidation["ts"].startswith("2025-10-10T21:")
    assert liquidation["side"] == "LONG"
    assert Decimal(liquidation["fill_price"]) <= Decimal(liquidation["liquidation_price"])
    assert outcome.bars == metrics["bars"] == 8928  # every bar of the month was processed
    trades = pl.read_csv(tmp_path / "trades.csv")
    fills = pl.read_csv(tmp_path / "fills.csv")
    assert "LIQUIDATION" in fills["signal"].to_list()
    assert metrics["reconciliation"]["balanced_to_the_cent"]
    assert trades.height >= 1


def test_the_same_long_at_1x_is_not_liquidated(october, tmp_path):
    _, metrics = _run(october, tmp_path, *_hold("LONG", 95, 1))
    assert metrics["venue_simulation"]["liquidations"] == []
    assert metrics["venue_simulation"]["orders_denied"] == 0


def test_orders_beyond_the_leverage_are_denied_and_nothing_is_held(october, tmp_path):
    """The issue's case: leverage 10 and a target of 50x equity. Every order is denied (110007)."""
    _, metrics = _run(october, tmp_path, *_hold("LONG", 5000, 10), "data.end=2025-10-02T00:00:00Z")
    simulation = metrics["venue_simulation"]
    assert simulation["orders_denied"] > 0
    assert simulation["orders_denied_first"][0]["reason"].startswith("110007 insufficient available balance")
    assert metrics["total_trades"] == 0 and not metrics["open_positions"]
    assert not (tmp_path / "fills.csv").read_text().strip()
