"""Engine throughput at scale: bars/second of bare Nautilus, of this project's EMA-cross backtest and
of Nautilus' Rust-native (v2) backtest engine, on the same synthetic 1m bars (a seeded random walk).

    .venv/bin/python bench/bench_engine_throughput.py [--bars 100000,1000000] [--repeats 3]
        [--only bare_noop,bare_ema,bare_ema_purge,bare_ema_tuned,project,v2_builtin,v2_python]
        [--project-root DIR] [--save results.json] [--compare other_results.json]

Cases (each run is a fresh subprocess; repeats are interleaved across cases; medians are printed,
as bars/s of wall time and of the process's CPU time, which is steadier on a shared machine):
  bare_noop        BacktestEngine + a strategy that only subscribes to the bars (engine floor)
  bare_ema         BacktestEngine + a minimal EMA 12/26 flip strategy (always in the market, one
                   market order per cross), closed orders never purged from the Cache
  bare_ema_purge   the same, closed orders purged from the Cache every 1000 minutes: on 1.231 the
                   official way, ExecEngineConfig(purge_closed_orders_interval_mins=1000) (a timer of
                   the execution engine); on 1.221, whose backtest ExecEngineConfig has no purge
                   option, the strategy calls cache.purge_closed_orders every 1000 bars
  bare_ema_tuned   bare_ema_purge with the one engine-usage switch the project's runner applies:
                   no per-trade PortfolioAnalyzer recording (1.231 concatenates a pandas Series per
                   closed position, quadratic; see qa_engine.backtest.runner.skip_per_trade_analysis);
                   the same as bare_ema_purge on 1.221
  project          the project's `ema_cross` through qa_engine.backtest.runner.run_backtest on
                   configs/backtest/default.toml, the bars read from a temporary ParquetDataCatalog;
                   time = node.run() (catalog load + engine build + run, console WARNING and the run
                   folder's INFO log file as configured); "project_total" is the wall time of the
                   whole run_backtest call (adds config build and the report: CSV, JSON, PNG)
  v2_builtin       1.231 only, for information: nautilus_pyo3.backtest.BacktestEngine (the Rust
                   engine) with its built-in Rust EmaCross. That strategy has no bar type: it
                   subscribes to quotes, so it gets one quote per bar (bid = the bar's close,
                   ask = close + one tick) instead of the bars; it trades `trade_size` on each cross.
  v2_python        1.231 only: the Rust engine running the same EMA flip written in Python on the
                   pyo3 Strategy class (pyo3 EMA indicators and order factory) on the same bars

The instrument (a BTCUSDT linear perpetual on BYBIT, as the default backtest) has zero fees, so that
sizing by equity (project) keeps trading over 1M bars; every case flips on the same EMA 12/26 crosses
(about 3,530 orders per 100k bars; the project's order count is its filled orders).

Bare Nautilus runs on 1.221 too (the v2 cases are skipped there): run this script with the old venv
and `--project-root <old checkout>` to measure 1.221 (the project case then runs the old code), then
`--compare` the two saved result files. Timings depend on the machine's load: compare only numbers
measured in one invocation (ratios) or in interleaved invocations. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"
BAR_TYPE = f"{INSTRUMENT_ID}-1-MINUTE-LAST-EXTERNAL"
START_NS = 1_577_836_800_000_000_000  # 2020-01-01T00:00:00Z
MINUTE_NS = 60_000_000_000
FAST, SLOW = 12, 26
PURGE_EVERY_MINUTES = 1_000  # the project's default: purge_closed_orders_every_bars = 1000
CASES = ["bare_noop", "bare_ema", "bare_ema_purge", "bare_ema_tuned", "project", "v2_builtin", "v2_python"]
V2_CASES = {"v2_builtin", "v2_python"}
# The Rust engine's own purge options: closed orders, closed positions and account events every
# 1000 minutes. Account events matter there: without their purge the v2 engine slows down with every
# fill (measured: v2_builtin ~300k bars/s at 100k bars, ~7k bars/s at 1M without any purge, ~50k at
# 300k with the order purge alone); the Cython engine is not affected (checked: no change).
V2_PURGE = {
    "purge_closed_orders_interval_mins": PURGE_EVERY_MINUTES,
    "purge_closed_positions_interval_mins": PURGE_EVERY_MINUTES,
    "purge_account_events_interval_mins": PURGE_EVERY_MINUTES,
    "purge_account_events_lookback_mins": 0,
}

# --- synthetic data ------------------------------------------------------------------------------


def synthetic_frame(bars: int, seed: int = 7):
    """A seeded random walk of 1m bars: log returns N(0, 5e-4) from 50,000; high/low around open/close."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    close = 50_000.0 * np.exp(np.cumsum(rng.normal(0.0, 5e-4, bars)))
    open_ = np.concatenate([[50_000.0], close[:-1]])
    spread = np.abs(rng.normal(0.0, 2.5e-4, bars))
    high = np.maximum(open_, close) * (1.0 + spread)
    low = np.minimum(open_, close) * (1.0 - spread)
    volume = np.round(rng.uniform(1.0, 50.0, bars), 3)
    # Bars close at t + 1 minute (Nautilus: ts_event = close time).
    index = pd.to_datetime(START_NS + MINUTE_NS * np.arange(1, bars + 1), utc=True)
    return pd.DataFrame(
        {
            "open": np.round(open_, 1),
            "high": np.round(high, 1),
            "low": np.round(low, 1),
            "close": np.round(close, 1),
            "volume": volume,
        },
        index=index,
    )


def make_instrument():
    from nautilus_trader.model.currencies import BTC
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.identifiers import Symbol
    from nautilus_trader.model.instruments import CryptoPerpetual
    from nautilus_trader.model.objects import Price
    from nautilus_trader.model.objects import Quantity

    return CryptoPerpetual(
        instrument_id=InstrumentId.from_str(INSTRUMENT_ID),
        raw_symbol=Symbol("BTCUSDT"),
        base_currency=BTC,
        quote_currency=USDT,
        settlement_currency=USDT,
        is_inverse=False,
        price_precision=1,
        size_precision=3,
        price_increment=Price.from_str("0.1"),
        size_increment=Quantity.from_str("0.001"),
        max_quantity=Quantity.from_str("1000.000"),
        min_quantity=Quantity.from_str("0.001"),
        max_notional=None,
        min_notional=None,
        max_price=None,
        min_price=None,
        margin_init=Decimal("0.1"),
        margin_maint=Decimal("0.05"),
        maker_fee=Decimal("0"),
        taker_fee=Decimal("0"),
        ts_event=0,
        ts_init=0,
    )


def make_bars(instrument, bars: int):
    from nautilus_trader.model.data import BarType
    from nautilus_trader.persistence.wranglers import BarDataWrangler

    return BarDataWrangler(BarType.from_str(BAR_TYPE), instrument).process(synthetic_frame(bars))


def write_catalog(path: Path, bars: int) -> None:
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    instrument = make_instrument()
    catalog = ParquetDataCatalog(str(path))
    catalog.write_data([instrument])
    catalog.write_data(make_bars(instrument, bars))


# --- bare Nautilus (Cython engine; 1.221 and 1.231) ------------------------------------------------


def bare_strategy_classes():
    from nautilus_trader.config import StrategyConfig
    from nautilus_trader.indicators import ExponentialMovingAverage
    from nautilus_trader.model.data import BarType
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.trading.strategy import Strategy

    class EmaFlipConfig(StrategyConfig, frozen=True):
        instrument_id: InstrumentId
        bar_type: BarType
        trade_size: Decimal = Decimal("0.100")
        fast_period: int = FAST
        slow_period: int = SLOW
        trade: bool = True  # False: the no-op strategy (subscribes, never trades)
        purge_every_bars: int = 0  # 1.221: the strategy purges the Cache itself

    class EmaFlip(Strategy):
        def __init__(self, config: EmaFlipConfig) -> None:
            super().__init__(config)
            self.fast = ExponentialMovingAverage(config.fast_period)
            self.slow = ExponentialMovingAverage(config.slow_period)
            self.side = 0
            self.bars = 0

        def on_start(self) -> None:
            self.instrument = self.cache.instrument(self.config.instrument_id)
            self.single = self.instrument.make_qty(self.config.trade_size)
            self.double = self.instrument.make_qty(self.config.trade_size * 2)
            if self.config.trade:
                self.register_indicator_for_bars(self.config.bar_type, self.fast)
                self.register_indicator_for_bars(self.config.bar_type, self.slow)
            self.subscribe_bars(self.config.bar_type)

        def on_bar(self, bar) -> None:
            self.bars += 1
            every = self.config.purge_every_bars
            if every and self.bars % every == 0:
                self.cache.purge_closed_orders(self.clock.timestamp_ns(), 0)
            if not self.config.trade or not self.slow.initialized:
                return
            want = 1 if self.fast.value > self.slow.value else -1
            if want == self.side:
                return
            self.submit_order(
                self.order_factory.market(
                    instrument_id=self.config.instrument_id,
                    order_side=OrderSide.BUY if want > 0 else OrderSide.SELL,
                    quantity=self.single if self.side == 0 else self.double,
                )
            )
            self.side = want

    return EmaFlipConfig, EmaFlip


def nautilus_version() -> str:
    import nautilus_trader

    return nautilus_trader.__version__


def has_backtest_purge_option() -> bool:
    from nautilus_trader.config import ExecEngineConfig

    return "purge_closed_orders_interval_mins" in ExecEngineConfig.__struct_fields__


def run_bare(case: str, bars: int) -> dict:
    from nautilus_trader.backtest.engine import BacktestEngine
    from nautilus_trader.backtest.models import FillModel
    from nautilus_trader.backtest.models import MakerTakerFeeModel
    from nautilus_trader.config import BacktestEngineConfig
    from nautilus_trader.config import ExecEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.data import BarType
    from nautilus_trader.model.enums import AccountType
    from nautilus_trader.model.enums import OmsType
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.identifiers import Venue
    from nautilus_trader.model.objects import Money

    EmaFlipConfig, EmaFlip = bare_strategy_classes()
    instrument = make_instrument()
    data = make_bars(instrument, bars)
    purge = case in ("bare_ema_purge", "bare_ema_tuned")
    official_purge = purge and has_backtest_purge_option()
    exec_engine = (
        ExecEngineConfig(purge_closed_orders_interval_mins=PURGE_EVERY_MINUTES)
        if official_purge
        else ExecEngineConfig()
    )
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id="BENCH-001",
            logging=LoggingConfig(log_level="ERROR"),
            exec_engine=exec_engine,
            run_analysis=False,
        )
    )
    engine.add_venue(
        venue=Venue("BYBIT"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        base_currency=USDT,
        starting_balances=[Money(1_000_000, USDT)],
        default_leverage=Decimal(3),
        fill_model=FillModel(),
        fee_model=MakerTakerFeeModel(),
        bar_adaptive_high_low_ordering=True,
    )
    engine.add_instrument(instrument)
    strategy = EmaFlip(
        EmaFlipConfig(
            instrument_id=InstrumentId.from_str(INSTRUMENT_ID),
            bar_type=BarType.from_str(BAR_TYPE),
            trade=case != "bare_noop",
            purge_every_bars=PURGE_EVERY_MINUTES if purge and not official_purge else 0,
        )
    )
    engine.add_strategy(strategy)
    analyzer = engine.portfolio.analyzer
    if case == "bare_ema_tuned" and hasattr(analyzer, "record_trade"):
        analyzer.record_trade = lambda *args, **kwargs: None  # as qa_engine.backtest.runner does
    started = time.perf_counter()
    cpu_started = time.process_time()
    engine.add_data(data)
    engine.run()
    secs = time.perf_counter() - started
    cpu_secs = time.process_time() - cpu_started
    orders = engine.kernel.exec_engine.command_count
    result = {
        "secs": secs,
        "cpu_secs": cpu_secs,
        "orders": orders,
        "purge": ("ExecEngineConfig.purge_closed_orders_interval_mins" if official_purge else "strategy")
        if purge
        else "",
        "orders_in_cache_at_end": len(engine.cache.orders()),
    }
    engine.dispose()
    return result


# --- the project's backtest ----------------------------------------------------------------------


def run_project(bars: int, catalog: Path, project_root: Path) -> dict:
    sys.path.insert(0, str(project_root))
    from nautilus_trader.backtest.node import BacktestNode

    import qa_engine.backtest.runner as runner
    from qa_engine.config.loader import read_toml
    from qa_engine.config.models import BacktestConfig

    raw = read_toml(project_root / "configs/backtest/default.toml")
    first_close_ns = START_NS + MINUTE_NS
    last_close_ns = START_NS + MINUTE_NS * bars
    raw["data"]["catalog"] = str(catalog)
    raw["data"]["bars"] = [{"instrument_id": INSTRUMENT_ID, "interval": "1m"}]
    raw["data"]["start"] = _iso(first_close_ns)
    raw["data"]["end"] = _iso(last_close_ns)
    raw["strategies"][0]["params"]["bar_type"] = BAR_TYPE
    config = BacktestConfig.model_validate(raw)
    cpu: list[float] = []

    class TimedNode(BacktestNode):  # the CPU time of node.run(), the interval the runner times
        def run(self):
            started = time.process_time()
            try:
                return super().run()
            finally:
                cpu.append(time.process_time() - started)

    runner.BacktestNode = TimedNode
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        outcome = runner.run_backtest(config, run_dir=Path(run_dir))
        total = time.perf_counter() - started
        fills = outcome.report.fills
        orders = fills["client_order_id"].n_unique() if fills.height else 0  # filled orders
    if outcome.bars != bars:
        raise RuntimeError(f"project run saw {outcome.bars} bars, expected {bars}")
    return {"secs": outcome.wall_secs, "cpu_secs": cpu[0], "total_secs": total, "orders": orders}


def _iso(ns: int) -> str:
    from datetime import UTC
    from datetime import datetime

    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the Rust-native (v2) engine (1.231) -----------------------------------------------------------


def v2_available() -> bool:
    try:
        from nautilus_trader.core.nautilus_pyo3 import backtest

        return hasattr(backtest, "BacktestEngine")
    except ImportError:
        return False


def run_v2(case: str, bars: int) -> dict:
    from nautilus_trader.core import nautilus_pyo3 as pyo3

    model = pyo3.model
    usdt = model.Currency.from_str("USDT")
    instrument_id = model.InstrumentId.from_str(INSTRUMENT_ID)
    bar_type = model.BarType.from_str(BAR_TYPE)
    instrument = model.CryptoPerpetual(
        instrument_id=instrument_id,
        raw_symbol=model.Symbol("BTCUSDT"),
        base_currency=model.Currency.from_str("BTC"),
        quote_currency=usdt,
        settlement_currency=usdt,
        is_inverse=False,
        price_precision=1,
        size_precision=3,
        price_increment=model.Price.from_str("0.1"),
        size_increment=model.Quantity.from_str("0.001"),
        ts_event=0,
        ts_init=0,
        max_quantity=model.Quantity.from_str("1000.000"),
        min_quantity=model.Quantity.from_str("0.001"),
        margin_init=0.1,
        margin_maint=0.05,
        maker_fee=0.0,
        taker_fee=0.0,
    )
    engine = pyo3.backtest.BacktestEngine(
        pyo3.backtest.BacktestEngineConfig(
            trader_id=model.TraderId("BENCH-001"),
            run_analysis=False,
            logging=pyo3.common.LoggerConfig(stdout_level=pyo3.common.LogLevel.ERROR),
            exec_engine=pyo3.execution.ExecutionEngineConfig(**V2_PURGE),
        )
    )
    engine.add_venue(
        venue=model.Venue("BYBIT"),
        oms_type=model.OmsType.NETTING,
        account_type=model.AccountType.MARGIN,
        starting_balances=[model.Money(1_000_000, usdt)],
        base_currency=usdt,
        default_leverage=3.0,
        fee_model=pyo3.execution.MakerTakerFeeModel(),
        bar_adaptive_high_low_ordering=True,
    )
    engine.add_instrument(instrument)
    frame = synthetic_frame(bars)
    o, h, lo, c, v = (frame[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    ts = frame.index.asi8
    price, qty = model.Price, model.Quantity
    if case == "v2_builtin":
        # The built-in Rust EmaCross (EmaCrossConfig has no bar type) subscribes to quotes: it gets
        # one quote per bar, bid = the bar's close, ask = close + one tick.
        data = [
            model.QuoteTick(
                instrument_id,
                price(c[i], 1),
                price(c[i] + 0.1, 1),
                qty(1, 3),
                qty(1, 3),
                int(ts[i]),
                int(ts[i]),
            )
            for i in range(bars)
        ]
        engine.add_builtin_strategy(
            "EmaCross",
            pyo3.trading.EmaCrossConfig(
                instrument_id=instrument_id,
                trade_size=model.Quantity.from_str("0.100"),
                fast_period=FAST,
                slow_period=SLOW,
            ),
        )
    else:
        data = [
            model.Bar(
                bar_type,
                price(o[i], 1),
                price(h[i], 1),
                price(lo[i], 1),
                price(c[i], 1),
                qty(v[i], 3),
                int(ts[i]),
                int(ts[i]),
            )
            for i in range(bars)
        ]
        strategy = _v2_ema_flip(pyo3, instrument_id, bar_type)
        engine.add_strategy(strategy)
    started = time.perf_counter()
    cpu_started = time.process_time()
    engine.add_data(data)
    engine.run()
    secs = time.perf_counter() - started
    cpu_secs = time.process_time() - cpu_started
    # The Cache is purged: the built-in strategy's order count is not known here.
    orders = strategy.orders if case == "v2_python" else None
    out = {"secs": secs, "cpu_secs": cpu_secs, "orders": orders, "purge": V2_PURGE}
    engine.dispose()
    return out


def _v2_ema_flip(pyo3, instrument_id, bar_type):
    """The bare EMA flip written on the pyo3 Strategy class (pyo3 indicators and order factory)."""
    model = pyo3.model

    class EmaFlipV2(pyo3.trading.Strategy):
        def __init__(self) -> None:
            super().__init__(pyo3.trading.StrategyConfig(strategy_id=model.StrategyId("EmaFlip-001")))
            self.fast = pyo3.indicators.ExponentialMovingAverage(FAST)
            self.slow = pyo3.indicators.ExponentialMovingAverage(SLOW)
            self.single = model.Quantity.from_str("0.100")
            self.double = model.Quantity.from_str("0.200")
            self.side = 0
            self.orders = 0

        def on_start(self) -> None:
            self.register_indicator_for_bars(bar_type, self.fast)
            self.register_indicator_for_bars(bar_type, self.slow)
            self.subscribe_bars(bar_type)

        def on_bar(self, bar) -> None:
            if not self.slow.initialized:
                return
            want = 1 if self.fast.value > self.slow.value else -1
            if want == self.side:
                return
            self.submit_order(
                self.order_factory.market(
                    instrument_id,
                    model.OrderSide.BUY if want > 0 else model.OrderSide.SELL,
                    self.single if self.side == 0 else self.double,
                )
            )
            self.side = want
            self.orders += 1

    return EmaFlipV2()


# --- driver --------------------------------------------------------------------------------------


def worker(case: str, bars: int, catalog: Path | None, project_root: Path) -> dict:
    if case.startswith("bare_"):
        result = run_bare(case, bars)
    elif case == "project":
        result = run_project(bars, catalog, project_root)
    else:
        result = run_v2(case, bars)
    result.update(
        case=case,
        bars=bars,
        bars_per_sec=bars / result["secs"],
        cpu_bars_per_sec=bars / result["cpu_secs"],
        nautilus=nautilus_version(),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", default="100000,1000000", help="comma-separated bar counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(CASES), help=f"comma-separated cases of {CASES}")
    parser.add_argument("--project-root", type=Path, default=ROOT, help="checkout whose qa_engine runs")
    parser.add_argument("--save", type=Path, help="write every run's result as JSON")
    parser.add_argument("--compare", type=Path, help="a --save file of another invocation to print beside")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--catalog", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--write-catalog", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    bar_counts = [int(b) for b in args.bars.split(",")]
    project_root = args.project_root.resolve()

    if args.write_catalog:
        write_catalog(args.write_catalog, bar_counts[0])
        return
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, bar_counts[0], args.catalog, project_root)))
        return

    cases = [c for c in args.only.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {CASES}")
    if not v2_available():
        skipped = [c for c in cases if c in V2_CASES]
        if skipped:
            print(
                f"nautilus_trader {nautilus_version()}: no Rust backtest engine binding, skipping {skipped}"
            )
        cases = [c for c in cases if c not in V2_CASES]
    print(f"nautilus_trader {nautilus_version()}, Python {sys.version.split()[0]}, project {project_root}")

    me = [sys.executable, str(Path(__file__).resolve())]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    tmp = Path(tempfile.mkdtemp(prefix="bench_engine_"))
    results: list[dict] = []
    try:
        catalogs = {}
        if "project" in cases:
            for bars in bar_counts:
                catalogs[bars] = tmp / f"catalog_{bars}"
                subprocess.run([*me, "--write-catalog", str(catalogs[bars]), "--bars", str(bars)], check=True)
        for repeat in range(args.repeats):
            for bars in bar_counts:
                for case in cases:
                    command = [
                        *me,
                        "--worker",
                        case,
                        "--bars",
                        str(bars),
                        "--project-root",
                        str(project_root),
                    ]
                    if case == "project":
                        command += ["--catalog", str(catalogs[bars])]
                    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp)
                    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
                    if done.returncode or line is None:
                        print(f"{case} {bars:,}: failed\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
                        continue
                    result = json.loads(line.removeprefix("RESULT ")) | {"repeat": repeat}
                    results.append(result)
                    print(
                        f"  [{repeat + 1}/{args.repeats}] {case:15s} {bars:>9,} bars "
                        f"{result['secs']:8.2f}s {result['bars_per_sec']:>10,.0f} bars/s wall "
                        f"{result['cpu_bars_per_sec']:>10,.0f} cpu",
                        flush=True,
                    )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.save:
        args.save.write_text(json.dumps(results, indent=1))
    print_table(results, bar_counts, cases)
    if args.compare:
        print_comparison(results, json.loads(args.compare.read_text()))


def medians(results: list[dict]) -> dict[tuple[str, int], dict]:
    grouped: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        grouped.setdefault((r["case"], r["bars"]), []).append(r)
    return {
        key: {
            "wall": statistics.median(r["bars_per_sec"] for r in runs),
            "cpu": statistics.median(r["cpu_bars_per_sec"] for r in runs),
            "n": len(runs),
            "orders": runs[0].get("orders"),
            "total": statistics.median(key[1] / r["total_secs"] for r in runs)
            if "total_secs" in runs[0]
            else None,
            "version": runs[0]["nautilus"],
        }
        for key, runs in grouped.items()
    }


def print_table(results: list[dict], bar_counts: list[int], cases: list[str]) -> None:
    """Median bars/s by wall clock and by the process's CPU time (steadier on a shared machine)."""
    med = medians(results)
    print(
        "\nmedian bars/s (wall | cpu), orders ('-': not known, the Cache is purged); "
        "last column: throughput at the largest / smallest bar count"
    )
    header = f"{'case':15s}" + "".join(f"{f'{b:,} bars':>32s}" for b in bar_counts)
    print(header + ("   ratio wall|cpu" if len(bar_counts) > 1 else ""))
    for case in [*cases, "project_total"]:
        source = "project" if case == "project_total" else case
        row = f"{case:15s}"
        for bars in bar_counts:
            m = med.get((source, bars))
            if m is None or (case == "project_total" and not m["total"]):
                row += f"{'-':>32s}"
            elif case == "project_total":
                row += f"{m['total']:>10,.0f} {'(wall incl. report)':>21s}"
            else:
                orders = "-" if m["orders"] is None else f"{m['orders']:,}"
                row += f"{m['wall']:>10,.0f} |{m['cpu']:>9,.0f} {orders:>8} n={m['n']}"
        first, last = med.get((source, bar_counts[0])), med.get((source, bar_counts[-1]))
        if len(bar_counts) > 1 and first and last and case != "project_total":
            row += f"   {last['wall'] / first['wall']:.2f}|{last['cpu'] / first['cpu']:.2f}"
        if any(med.get((source, b)) for b in bar_counts):
            print(row)
    for bars in bar_counts:
        project = med.get(("project", bars))
        for bare in ("bare_ema_purge", "bare_ema_tuned"):
            other = med.get((bare, bars))
            if project and other:
                print(
                    f"project / {bare} at {bars:,} bars: {project['wall'] / other['wall']:.2f}x wall, "
                    f"{project['cpu'] / other['cpu']:.2f}x cpu"
                )


def print_comparison(results: list[dict], other: list[dict]) -> None:
    mine, theirs = medians(results), medians(other)
    print("\nthis invocation against --compare (median bars/s, wall | cpu)")
    print(f"{'case':15s} {'bars':>10s} {'this':>19s} {'other':>19s} {'this/other':>12s}")
    for key in sorted(set(mine) & set(theirs)):
        a, b = mine[key], theirs[key]
        print(
            f"{key[0]:15s} {key[1]:>10,} {a['wall']:>9,.0f}|{a['cpu']:>9,.0f} "
            f"{b['wall']:>9,.0f}|{b['cpu']:>9,.0f}"
            f" {a['wall'] / b['wall']:>5.2f}|{a['cpu'] / b['cpu']:.2f}   ({a['version']} vs {b['version']})"
        )


if __name__ == "__main__":
    main()
