"""One sweep trial: a backtest config (as a plain dict) in, one result row out. Runs in a worker process
(a Ray task, or a process-pool worker): it reads the catalog by the path in the config, writes its run
folder to a temporary directory it deletes, and returns only figures. It never raises: a failure is a
row with status "failed", the error and the parameters that caused it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

# the metrics copied from PerformanceMetrics into each result row
ROW_METRICS = (
    "final_equity",
    "total_return_pct",
    "annualised_return_pct",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown_pct",
    "profit_factor",
    "win_rate_pct",
    "total_trades",
    "fees_paid",
)


@dataclass(frozen=True)
class Task:
    """One backtest of the sweep. `key` identifies it across reruns (resume)."""

    phase: str  # "search" (a trial on a train window, or the whole range) | "test" (walk-forward)
    fold: int  # walk-forward fold; 0 without walk-forward
    symbol: str  # the instrument traded ("" when the base's own)
    trial: int  # trial number within its (phase, fold, symbol) group
    params: dict[str, Any]
    window: tuple[str, str]  # ISO start, end
    config: dict[str, Any] = field(repr=False)  # the full backtest config (BacktestConfig.model_dump)

    @property
    def key(self) -> str:
        canonical = json.dumps(
            {"phase": self.phase, "fold": self.fold, "config": self.config}, sort_keys=True, default=str
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:20]

    @property
    def group(self) -> str:
        return f"{self.phase}|{self.fold}|{self.symbol}"

    def describe(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "phase": self.phase,
            "fold": self.fold,
            "symbol": self.symbol,
            "trial": self.trial,
            "params": json.dumps(self.params, sort_keys=True),
            "window_start": self.window[0],
            "window_end": self.window[1],
        }


def run_task(task: Task) -> dict[str, Any]:
    """The trial's result row (never raises)."""
    started = time.perf_counter()
    row: dict[str, Any] = {
        **task.describe(),
        "status": "ok",
        "error": "",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "traceback": "",
        "bars": None,
        "wall_secs": None,
        "days": [],
        "equity": [],
        **{metric: None for metric in ROW_METRICS},
    }
    try:
        from qa_engine.backtest.runner import run_backtest
        from qa_engine.config.models import BacktestConfig
        from qa_engine.logging import configure_logging

        configure_logging(level="WARNING")
        config = BacktestConfig.model_validate(task.config)
        with tempfile.TemporaryDirectory(prefix="qa-sweep-") as tmp:
            outcome = run_backtest(config, run_dir=Path(tmp) / "run")
        metrics = outcome.report.metrics
        for name in ROW_METRICS:
            value = getattr(metrics, name)
            row[name] = float(value) if value is not None else None
        daily = daily_equity(outcome.report.equity)
        row["days"] = [day for day, _ in daily]
        row["equity"] = [value for _, value in daily]
        row["bars"] = outcome.bars
    except Exception as error:
        row["status"] = "failed"
        row["error"] = f"{type(error).__name__}: {error}"[:2000]
        row["traceback"] = "".join(traceback.format_exception(error))[-4000:]
    row["wall_secs"] = time.perf_counter() - started
    return row


def daily_equity(equity) -> list[tuple[str, float]]:
    """(UTC day, equity at its close) of a report's equity frame (ts, equity, ...): a bar closing at 00:00
    closes the day before, and the starting row (at the window's start) is the previous day's close, so
    an N-day window gives N + 1 points and N daily returns."""
    import polars as pl

    frame = (
        equity.select((pl.col("ts") - pl.duration(nanoseconds=1)).dt.date().alias("day"), pl.col("equity"))
        .group_by("day", maintain_order=True)
        .last()
        .sort("day")
    )
    return [(str(day), float(value)) for day, value in frame.iter_rows()]
