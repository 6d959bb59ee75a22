"""Strategy comparison: each strategy of a run config in its own backtest on the same data and
account, one table, one overlaid equity plot (equity_comparison.png, and report.html with the drawdowns
and a metrics table), and the best by a chosen metric."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from qa_engine.backtest.runner import BacktestOutcome
from qa_engine.backtest.runner import default_run_dir
from qa_engine.backtest.runner import run_backtest
from qa_engine.config.models import BacktestConfig
from qa_engine.config.models import slug
from qa_engine.errors import ConfigError
from qa_engine.reporting.plots import plot_equity_comparison
from qa_engine.reporting.tearsheet import write_comparison_tearsheet

RankMetric = Literal[
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "total_return_pct",
    "profit_factor",
    "max_drawdown_pct",
    "win_rate_pct",
]
LOWER_IS_BETTER = {"max_drawdown_pct"}


@dataclass(frozen=True)
class Comparison:
    run_dir: Path
    outcomes: dict[str, BacktestOutcome]
    metric: str
    best: str | None  # None when no strategy has the metric (e.g. Sharpe of flat curves)


def strategy_label(config: BacktestConfig, index: int) -> str:
    """The strategy's name, with its position appended when the same name appears twice."""
    names = [slug(component.name.rsplit(":", 1)[-1]) for component in config.strategies]
    return names[index] if names.count(names[index]) == 1 else f"{names[index]}-{index}"


def rank(outcomes: dict[str, BacktestOutcome], metric: str) -> str | None:
    scored = {
        name: getattr(outcome.report.metrics, metric)
        for name, outcome in outcomes.items()
        if getattr(outcome.report.metrics, metric) is not None
    }
    if not scored:
        return None
    choose = min if metric in LOWER_IS_BETTER else max
    return choose(scored, key=scored.get)


def compare_strategies(
    config: BacktestConfig, metric: str, run_dir: Path | None = None, progress=None
) -> Comparison:
    if len(config.strategies) < 2:
        raise ConfigError(
            f"compare needs at least two [[strategies]] in the config, found {len(config.strategies)}"
        )
    run_dir = run_dir or default_run_dir(config)
    outcomes: dict[str, BacktestOutcome] = {}
    for index in range(len(config.strategies)):
        label = strategy_label(config, index)
        single = config.model_copy(
            update={"id": f"{config.id}-{label}", "strategies": [config.strategies[index]]}
        )
        outcomes[label] = run_backtest(single, run_dir=run_dir / label)
        if progress is not None:
            progress(label)
    best = rank(outcomes, metric)
    title = f"{config.id}: strategies compared (best by {metric}: {best or 'n/a'})"
    plot_equity_comparison(
        {label: outcome.report.equity for label, outcome in outcomes.items()},
        run_dir / "equity_comparison.png",
        title=title,
    )
    write_comparison_tearsheet(
        {label: outcome.report for label, outcome in outcomes.items()},
        run_dir,
        title,
        metric=metric,
        best=best,
    )
    summary = {
        "metric": metric,
        "best": best,
        "strategies": {label: outcome.report.metrics.to_dict() for label, outcome in outcomes.items()},
    }
    (run_dir / "comparison.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return Comparison(run_dir=run_dir, outcomes=outcomes, metric=metric, best=best)
