"""The hourly Trinity as shipped (configs/backtest/trinity_1h.toml, artifacts/hourly, preset "swing") on
the sample catalog's real Bybit 1h bars, out of sample for its models: it trades, only from trade_from,
every stop at least three round trips away, within the preset's leverage, and its books balance."""

from __future__ import annotations

from pathlib import Path

from nautilus_trader.model.enums import OrderType

from strategies.trinity import TrinityStrategy

REPO = Path(__file__).resolve().parents[2]
ROUND_TRIP = 2 * 0.00055 + 2e-4  # Bybit's taker fee twice + the preset's 2 bp margin (funding aside)
TRADE_FROM_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01 00:00 UTC


def test_the_hourly_trinity_trades_out_of_sample_with_stops_beyond_the_cost(
    sample_catalog, tmp_path, monkeypatch
):
    from qa_engine.backtest.runner import run_backtest
    from qa_engine.config.loader import load_config
    from qa_engine.config.models import BacktestConfig

    monkeypatch.chdir(REPO)  # the config's artifact paths are relative to the repository
    config = load_config(
        BacktestConfig, REPO / "configs/backtest/trinity_1h.toml", [f'data.catalog="{sample_catalog}"']
    )
    captured = {}

    def inspect(engine):
        captured["strategy"] = next(s for s in engine.trader.strategies() if isinstance(s, TrinityStrategy))
        captured["orders"] = list(engine.cache.orders())

    outcome = run_backtest(config, run_dir=tmp_path / "run", inspect=inspect)
    report, orders = outcome.report, captured["orders"]
    assert report.metrics.total_trades > 0, "the hourly Trinity must trade out of sample"
    assert report.reconciliation.balanced_to_the_cent
    entries = [o for o in orders if o.order_list_id is not None and o.order_type == OrderType.MARKET]
    assert entries and all(o.ts_init >= TRADE_FROM_NS for o in orders)  # December only warms up
    for entry in entries:
        siblings = [o for o in orders if o.order_list_id == entry.order_list_id and o is not entry]
        stop = next(o for o in siblings if o.order_type == OrderType.STOP_MARKET)
        close = float(entry.avg_px)
        distance = abs(close - float(stop.trigger_price))
        assert distance >= 3 * ROUND_TRIP * close - 0.1  # never inside three round trips (tick rounding)
        assert float(entry.quantity) * close <= 2.0 * 10_000 * 1.5  # the preset's 2x cap (equity moves)
