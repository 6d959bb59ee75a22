import json
from pathlib import Path

import pytest

from qa_engine.backtest.compare import compare_strategies
from qa_engine.backtest.runner import run_backtest
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
THREE_DAYS = ["data.start=2025-01-01T00:00:00Z", "data.end=2025-01-04T00:00:00Z"]


def load(name: str, sample_catalog: Path, *overrides: str) -> BacktestConfig:
    return load_config(
        BacktestConfig,
        ROOT / "configs/backtest" / name,
        [f'data.catalog="{sample_catalog}"', *THREE_DAYS, *overrides],
    )


def test_compare_runs_every_strategy_on_the_same_data_and_ranks_them(sample_catalog, tmp_path):
    comparison = compare_strategies(load("compare.toml", sample_catalog), "sharpe_ratio", run_dir=tmp_path)
    assert list(comparison.outcomes) == ["ema_cross", "supertrend", "rsi_ema", "macd_stochastic"]
    assert {o.bars for o in comparison.outcomes.values()} == {3 * 288}
    sharpe = {
        k: o.report.metrics.sharpe_ratio
        for k, o in comparison.outcomes.items()
        if o.report.metrics.sharpe_ratio
    }
    assert comparison.best == max(sharpe, key=sharpe.get)
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert saved["best"] == comparison.best and set(saved["strategies"]) == set(comparison.outcomes)
    assert (tmp_path / "equity_comparison.png").stat().st_size > 20_000


def test_max_drawdown_ranks_lowest_first(sample_catalog, tmp_path):
    comparison = compare_strategies(
        load("compare.toml", sample_catalog), "max_drawdown_pct", run_dir=tmp_path
    )
    drawdowns = {k: o.report.metrics.max_drawdown_pct for k, o in comparison.outcomes.items()}
    assert comparison.best == min(drawdowns, key=drawdowns.get)


def test_compare_needs_two_strategies(sample_catalog, tmp_path):
    with pytest.raises(ConfigError, match="at least two"):
        compare_strategies(load("default.toml", sample_catalog), "sharpe_ratio", run_dir=tmp_path)


def test_portfolio_per_instrument_results_add_up_to_the_portfolio(sample_catalog, tmp_path):
    outcome = run_backtest(load("portfolio.toml", sample_catalog), run_dir=tmp_path)
    per_instrument = outcome.report.per_instrument
    assert set(per_instrument) == {"BTCUSDT-LINEAR.BYBIT", "ETHUSDT-LINEAR.BYBIT"}
    portfolio = outcome.report.metrics
    assert sum(m.total_return for m in per_instrument.values()) == pytest.approx(
        portfolio.total_return, abs=0.01
    )
    assert sum(m.total_trades for m in per_instrument.values()) == portfolio.total_trades
    assert sum(m.fees_paid for m in per_instrument.values()) == pytest.approx(portfolio.fees_paid, abs=1e-6)
    assert outcome.report.reconciliation.balanced_to_the_cent
