"""Parity, end to end: the default backtest config (EMA cross on the committed sample's real BTCUSDT 5m
bars, 2025-01-01, 288 bars, three funding settlements) run as a backtest and as a live node (a child
`qa live run`, Nautilus' Rust Bybit adapter) against the loopback Bybit venue replaying the same bars in
lockstep. The two order journals must be identical order by order (side, type, quantity, price to the
tick, bar), and the final equities equal to the cent, funding included:

- execution on the venue: the venue's books (its own fee, margin and funding rules) hold the equity;
- `--paper`: the node's sandbox fills the orders with the backtest's fill, fee and margin models and
  settles funding from the rates the venue's ticker stream announces.

Each run takes ~25 s wall (the lockstep waits 50 ms of quiet per bar)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.live.journal import read_journal
from qa_engine.live.parity import run_parity
from tests.pristine import pristine_catalog

REPO_ROOT = Path(__file__).resolve().parents[2]


def _one_day() -> BacktestConfig:
    return load_config(
        BacktestConfig,
        REPO_ROOT / "configs" / "backtest" / "default.toml",
        [f"data.catalog={pristine_catalog()}", "data.end=2025-01-02T00:00:00Z"],
    )


def _funding_settlements(backtest_dir: Path) -> int:
    lines = (backtest_dir / "funding.csv").read_text().splitlines()
    return len(lines) - 1


@pytest.mark.parametrize("execution", ["bybit", "paper"])
def test_live_node_trades_exactly_like_the_backtest(tmp_path: Path, execution: str) -> None:
    report = run_parity(_one_day(), tmp_path / "parity", quiet_ms=50, timeout_secs=300, execution=execution)

    result = report.result
    assert result.identical, (result.first_difference, result.backtest_order, result.live_order)
    assert result.backtest_orders == result.live_orders
    assert result.backtest_orders >= 5, "the day should trade: otherwise parity proves nothing"
    assert report.bars == 288
    # funding moved money on this day, so equal equity means funding was settled alike on both sides
    assert _funding_settlements(tmp_path / "parity" / "backtest") == 3
    cent = Decimal("0.01")
    assert report.backtest_equity.quantize(cent) == report.venue_equity.quantize(cent)
    assert report.identical
    # the live journal is a live node's own record: stamped by the wall clock, filled by its venue
    live = read_journal(tmp_path / "parity" / "live" / "orders.jsonl")
    orders = [entry for entry in live if entry["event"] == "order"]
    fills = [entry for entry in live if entry["event"] == "fill"]
    assert len(orders) == result.live_orders and len(fills) >= len(orders)
    assert all(entry["ts_init"] > entry["bar_ts"] + 365 * 86_400 * 10**9 for entry in orders)


def _config_for(strategy: str) -> BacktestConfig:
    """Four days (1,152 bars) of the strategy alone: from compare.toml for the classic ones, from its own
    config for those that need actors (features, models: streamed mode, as live)."""
    overrides = [f"data.catalog={pristine_catalog()}", "data.end=2025-01-05T00:00:00Z"]
    own = REPO_ROOT / "configs" / "backtest" / f"{strategy}.toml"
    if own.exists():
        return load_config(BacktestConfig, own, overrides)
    base = load_config(BacktestConfig, REPO_ROOT / "configs" / "backtest" / "compare.toml", overrides)
    chosen = [entry for entry in base.strategies if entry.name == strategy]
    assert chosen, f"no config runs the registered strategy {strategy!r}: add it to compare.toml"
    return base.model_copy(update={"strategies": chosen})


def _registered() -> list[str]:
    from qa_engine.plugins import strategy_registry

    return sorted(strategy_registry())


@pytest.mark.slow
@pytest.mark.parametrize("strategy", _registered())
def test_every_registered_strategy_trades_alike_live(tmp_path: Path, strategy: str) -> None:
    report = run_parity(_config_for(strategy), tmp_path / strategy, quiet_ms=50, timeout_secs=900)
    result = report.result
    assert result.identical, (result.first_difference, result.backtest_order, result.live_order)
    assert report.identical, (report.backtest_equity, report.venue_equity)
