"""`qa parity`: the same config through the backtest engine and through a live node on the loopback venue.

1. The backtest runs as `qa backtest run` does, with the order journal added (qa_engine.live.journal).
2. The loopback Bybit venue (qa_engine.live.venue) replays the config's catalog bars in lockstep, with the
   backtest's fee, slippage, margin, funding and liquidation rules, and the run's starting balance.
3. `qa live run` trades against it in a child process (a real TradingNode, Nautilus' Rust Bybit adapter,
   the project's client factories), with the same strategy and actor objects; it is stopped with SIGTERM
   once the venue has replayed every bar.
4. The two order journals are compared (qa_engine.live.parity_compare); so are the final balances.
"""

from __future__ import annotations

import secrets
import signal
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from qa_engine.config.build import funding_plan
from qa_engine.config.models import BacktestConfig
from qa_engine.config.models import BybitEndpointsConfig
from qa_engine.config.models import ComponentConfig
from qa_engine.config.models import LiveConfig
from qa_engine.config.models import LiveSettings
from qa_engine.errors import ConfigError
from qa_engine.errors import QAError
from qa_engine.live.child import live_child
from qa_engine.live.journal import JOURNAL_FILE
from qa_engine.live.journal import read_journal
from qa_engine.live.parity_compare import ParityResult
from qa_engine.live.parity_compare import compare_journals

JOURNAL_COMPONENT = "qa_engine.live.journal:OrderJournalActor"
NODE_STOP_SECS = 30.0


@dataclass
class ParityReport:
    result: ParityResult
    backtest_equity: Decimal  # final equity (balance + unrealised at the last close)
    venue_equity: Decimal
    bars: int
    live_wall_secs: float
    run_dir: Path
    latencies_ms: list[float]

    @property
    def identical(self) -> bool:
        cent = Decimal("0.01")
        return self.result.identical and self.backtest_equity.quantize(cent) == self.venue_equity.quantize(
            cent
        )


def with_journal(config: BacktestConfig, path: Path) -> BacktestConfig:
    journal = ComponentConfig(
        name=JOURNAL_COMPONENT,
        params={"path": str(path), "bar_types": [bars.bar_type for bars in config.data.bars]},
    )
    return config.model_copy(update={"actors": [*config.actors, journal]})


def venue_books(config: BacktestConfig, data, settled: set[str]):
    """The loopback venue's books with the rules and account of the backtest's BYBIT venue."""
    from qa_engine.live.venue.books import AccountSpec
    from qa_engine.live.venue.books import InstrumentSpec
    from qa_engine.live.venue.books import VenueBooks
    from qa_engine.risk.margin import maintenance_margin_rate

    venue = config.venue("BYBIT")
    instruments = [InstrumentSpec.from_instruments_info(entry) for entry in data.instruments]
    configured = venue.configured_fee_rates()
    if venue.fee_model == "none":
        maker = taker = Decimal(0)
    elif configured is not None:
        maker, taker = configured[0], configured[1]
    else:  # the instruments' own rates: Bybit's published base rates (adapters/bybit/README.md)
        maker, taker = Decimal("0.0002"), Decimal("0.00055")
    symbols = {spec.symbol: f"{spec.symbol}-LINEAR.BYBIT" for spec in instruments}
    account = AccountSpec(
        starting_balance=Decimal(str(venue.starting_balance)),
        maker_fee_rate=maker,
        taker_fee_rate=taker,
        slippage_bps=Decimal(str(venue.slippage_bps)),
        default_leverage=Decimal(str(venue.leverage)),
        maintenance_margin_rates={
            symbol: maintenance_margin_rate(instrument_id, venue.maintenance_margin_rate)[0]
            for symbol, instrument_id in symbols.items()
        },
        liquidation=venue.liquidation,
        liquidation_fee_rate=venue.liquidation_fee_rate,
    )
    funding = {s: rates for s, rates in data.funding_rates.items() if symbols.get(s) in settled}
    return VenueBooks(instruments, account, funding if venue.simulate_funding else None)


def check_parity_config(config: BacktestConfig) -> None:
    if [venue.name for venue in config.venues] != ["BYBIT"]:
        raise ConfigError(
            "parity replays one BYBIT venue; the config lists " + ", ".join(v.name for v in config.venues)
        )
    if config.data.signals:
        raise ConfigError(
            "parity runs the model actors live (streamed): remove data.signals (replayed records)"
        )
    if len({bars.interval for bars in config.data.bars}) != 1:
        raise ConfigError("parity replays one bar interval; data.bars lists several")
    if config.venues[0].latency_ms != 0:
        raise ConfigError(
            "parity needs latency_ms = 0 in the backtest (the live node trades at the bar's close)"
        )


def run_parity(
    config: BacktestConfig,
    run_dir: Path,
    *,
    quiet_ms: int = 50,
    timeout_secs: float = 3600.0,
    execution: str = "bybit",
) -> ParityReport:
    """`execution = "paper"`: the node trades in its own sandbox (qa_engine.live.paper) on the venue's bars;
    its final equity is then the node's (summary.json), not the venue's books."""
    from qa_engine.backtest.runner import run_backtest
    from qa_engine.live.venue.server import LoopbackBybitThread
    from qa_engine.live.venue.server import VenueConfig
    from qa_engine.live.venue.source import load_venue_data

    check_parity_config(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    backtest_dir, live_dir = run_dir / "backtest", run_dir / "live"
    outcome = run_backtest(with_journal(config, backtest_dir / JOURNAL_FILE), run_dir=backtest_dir)
    backtest_equity = outcome.report.reconciliation.final_equity

    start_ns = int(config.data.start.timestamp() * 1e9)
    end_ns = int(config.data.end.timestamp() * 1e9)
    interval = config.data.bars[0].interval
    instrument_ids = list(dict.fromkeys(bars.instrument_id for bars in config.data.bars))
    data = load_venue_data(config.data.catalog, instrument_ids, interval, start_ns, end_ns)
    books = venue_books(config, data, set(funding_plan(config).settled))
    api_key, api_secret = f"parity-{secrets.token_hex(4)}", secrets.token_hex(16)
    venue_config = VenueConfig(api_key=api_key, api_secret=api_secret, speed="lockstep", quiet_ms=quiet_ms)
    bars = sum(len(rows) for rows in data.bars.values())

    with LoopbackBybitThread(venue_config, data, books) as venue:
        settings = LiveSettings(
            environment="testnet",
            execution=execution,
            bybit=BybitEndpointsConfig(
                http=venue.http_url,
                ws_public=venue.ws_public_url,
                ws_private=venue.ws_private_url,
                ws_trade=venue.ws_trade_url,
            ),
            reconciliation_lookback_mins=None,
        )
        live = LiveConfig.from_backtest(config, settings)
        started = time.monotonic()
        with live_child(live, run_dir, live_dir, api_key, api_secret) as node:
            try:
                while not venue.done.wait(0.2):
                    if node.poll() is not None:
                        raise QAError(
                            f"the live node exited early (rc {node.returncode}); see {run_dir}/live.stdout"
                        )
                    if time.monotonic() - started > timeout_secs:
                        raise QAError(f"the venue did not replay every bar in {timeout_secs:.0f} s")
                time.sleep(max(1.0, 4 * quiet_ms / 1000))  # the last bar's orders reach the venue
                live_wall = time.monotonic() - started
                node.send_signal(signal.SIGTERM)
                node.wait(NODE_STOP_SECS)
            finally:
                if node.poll() is None:
                    node.kill()
                    node.wait()
        state = venue.state()
        latencies = [s.latency_ms for s in venue.latencies_ms() if s.latency_ms is not None]

    result = compare_journals(
        read_journal(backtest_dir / JOURNAL_FILE), read_journal(live_dir / JOURNAL_FILE)
    )
    venue_equity = Decimal(str(state["books"]["equity"]))
    if execution == "paper":
        venue_equity = _node_equity(live_dir)
    return ParityReport(result, backtest_equity, venue_equity, bars, live_wall, run_dir, latencies)


def _node_equity(live_dir: Path) -> Decimal:
    """The paper node's final equity: its account balance plus unrealised pnl (summary.json)."""
    import json

    summary = json.loads((live_dir / "summary.json").read_text())
    return Decimal(str(summary.get("equity", "nan")))
