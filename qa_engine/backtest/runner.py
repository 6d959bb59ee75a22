"""Run one backtest from a validated run config and write its run folder.

`run_backtest(config, run_dir)` writes into `run_dir` whatever it holds (API callers and tests pass an
existing, often empty, folder; files of the same names are overwritten). The CLI (`qa backtest run|compare
--out`, `run_backtest.py --out`) guards the folder first (qa_engine.cli.backtest.out_folder): an existing
non-empty folder is refused (exit 2) unless `--overwrite` is given, and then the new run is written into a
fresh sibling folder that replaces the old one only once the run has succeeded.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path

from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.node import BacktestNode

from qa_engine.backtest.recorder import RunRecorderActor
from qa_engine.config.build import INTERVAL_SECS
from qa_engine.config.build import FundingPlan
from qa_engine.config.build import build_backtest_run
from qa_engine.config.loader import dump_toml
from qa_engine.config.models import BacktestConfig
from qa_engine.errors import ConfigError
from qa_engine.errors import PluginError
from qa_engine.lifecycle import attach_risk_engine
from qa_engine.logging import get_logger
from qa_engine.reporting.report import BacktestReport
from qa_engine.reporting.report import build_report
from qa_engine.reporting.report import write_report

log = get_logger(__name__)


@dataclass(frozen=True)
class BacktestOutcome:
    run_dir: Path
    report: BacktestReport
    bars: int
    wall_secs: float

    @property
    def bars_per_sec(self) -> float:
        return self.bars / self.wall_secs if self.wall_secs > 0 else 0.0


def default_run_dir(config: BacktestConfig, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return config.output.directory / f"{stamp}_{config.id}"


def _ignore_trade(*_args, **_kwargs) -> None:
    return None


def skip_per_trade_analysis(engine: BacktestEngine) -> None:
    """Stop the Portfolio from feeding every closed position to Nautilus' PortfolioAnalyzer.

    Since 1.231 the Portfolio calls `analyzer.record_trade` on each closed position during the run
    (1.221 did not), and each call concatenates a one-row pandas Series onto the series of all earlier
    trades: quadratic in the number of trades, whether or not the engine's `run_analysis` is on. This
    project's statistics are its own (qa_engine.reporting, from the RunRecorderActor's records) and
    the runner sets run_analysis=False, so nothing reads those series; orders, fills, positions and
    accounts are untouched. A no-op where the analyzer has no `record_trade` (1.221)."""
    analyzer = getattr(engine.portfolio, "analyzer", None)
    if analyzer is not None and hasattr(analyzer, "record_trade"):
        analyzer.record_trade = _ignore_trade


def estimated_bars(config: BacktestConfig) -> int:
    """Bars the run will replay if the catalog has no gaps: the total of a progress bar."""
    seconds = (config.data.end - config.data.start).total_seconds()
    return sum(int(seconds // INTERVAL_SECS[bars.interval]) for bars in config.data.bars)


def run_in_windows(node: BacktestNode, run_config, config: BacktestConfig) -> None:
    """`node.run()` without loading the whole range first: the data of each window of
    `engine.chunk_size_bars` bars (every data config of the run: bars, funding updates, replayed
    signals; catalog queries take both ends, so windows are [start, start + step - 1 ns]) is added,
    sorted and run in streaming mode, then cleared; `engine.end()` closes the run. Peak memory is one
    window's records instead of the range's.

    Not Nautilus' own `BacktestRunConfig.chunk_size`: its streaming session (Rust DataFusion backend)
    refuses FundingRateUpdate and our custom signal classes in 1.231 ("custom data type ... is not
    registered with an Arrow schema"). Each window is a one-shot load (`BacktestNode.load_data_config`,
    the query `_run_oneshot` makes, narrowed to the window); the engine's streaming runs process the
    concatenated stream in the same order, so orders and fills are those of the one-shot run."""
    engine = node.get_engine(run_config.id)
    step_ns = config.engine.chunk_size_bars * min(INTERVAL_SECS[b.interval] for b in config.data.bars) * 10**9
    start_ns = int(config.data.start.timestamp()) * 10**9
    end_ns = int(config.data.end.timestamp()) * 10**9
    window_start = start_ns
    while window_start <= end_ns:
        window_last = min(window_start + step_ns - 1, end_ns)
        loaded = 0
        for data_config in run_config.data:
            result = node.load_data_config(data_config, window_start, window_last)
            if result.data:
                node._load_engine_data(engine, result, sort=False)
                loaded += len(result.data)
        if loaded:
            engine.sort_data()
            engine.run(run_config_id=run_config.id, streaming=True)
            engine.clear_data()
        window_start = window_last + 1
    engine.end()


def run_backtest(
    config: BacktestConfig,
    run_dir: Path | None = None,
    inspect: Callable[[BacktestEngine], None] | None = None,
    on_bars: Callable[[int], None] | None = None,
) -> BacktestOutcome:
    """Run, report, write the run folder. `inspect(engine)` is called before the engine is disposed
    (tests and research read actors' in-memory state there); `on_bars(n)` every 1,000 bars replayed
    (a progress bar: the CLI's for runs of many bars)."""
    run_dir = run_dir or default_run_dir(config)
    run_config, plan = build_backtest_run(config, run_dir=run_dir)  # refuses before anything is written
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(dump_toml(config), encoding="utf-8")
    try:
        return _run(config, run_config, plan, run_dir, inspect, on_bars)
    except ConfigError:
        if created:  # refused (e.g. an actor refused its artifact at start): leave no run folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _run(
    config: BacktestConfig, run_config, plan: FundingPlan, run_dir: Path, inspect, on_bars
) -> BacktestOutcome:
    started = time.perf_counter()
    node = BacktestNode(configs=[run_config])
    try:
        try:
            node.build()
            built = node.get_engine(run_config.id)
            if built is not None and not run_config.engine.run_analysis:
                skip_per_trade_analysis(built)
            if built is not None:
                attach_risk_engine(built.trader, built.kernel.risk_engine)
                for actor in built.trader.actors():
                    if isinstance(actor, RunRecorderActor):
                        actor.on_bars = on_bars
            if config.engine.chunk_size_bars is None:
                node.run()
            else:
                run_in_windows(node, run_config, config)
        except Exception as exc:
            raise PluginError(f"backtest '{config.id}' failed inside the engine: {exc!r}") from exc
        wall_secs = time.perf_counter() - started
        engine = node.get_engine(run_config.id)
        components = [*engine.trader.actors(), *engine.trader.strategies()]
        config_errors = [e for c in components for e in getattr(c, "config_errors", [])]
        if config_errors:  # e.g. an actor refused its model artifact in on_start
            raise ConfigError("; ".join(config_errors))
        plugin_errors = [e for c in components for e in getattr(c, "plugin_errors", [])]
        if plugin_errors:
            raise PluginError("; ".join(plugin_errors))
        recorder = next(a for a in engine.trader.actors() if isinstance(a, RunRecorderActor))
        risk_events = [e for a in engine.trader.actors() for e in getattr(a, "risk_guard_events", [])]
        report = build_report(config, recorder, plan, risk_events)
        if inspect is not None:
            inspect(engine)
        bars = recorder.bars_seen
    finally:
        node.dispose()
    write_report(report, run_dir, title=f"{config.id}: {config.description}".rstrip(": "))
    log.info("backtest_finished", run_dir=str(run_dir), bars=bars, secs=round(wall_secs, 2))
    return BacktestOutcome(run_dir=run_dir, report=report, bars=bars, wall_secs=wall_secs)
