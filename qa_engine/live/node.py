"""The live TradingNode, built from a LiveConfig: the same strategy and actor objects as a backtest.

    plan = plan_live_run(config, run_dir)        # validates, resolves plug-ins and keys; nothing starts
    exit_code = run_live_node(plan)              # runs until SIGINT / SIGTERM / max_runtime_secs

Data clients come from adapters/ (qa_engine.plugins.load_live_clients): Bybit or Binance USD-M futures.
Execution: Bybit, or `paper` (qa_engine.live.paper: Nautilus' sandbox with the backtest's venue rules).
On start Nautilus reconciles with the venue (open orders, fills, positions: LiveExecEngineConfig
reconciliation). On SIGINT / SIGTERM Nautilus stops the trader: every strategy cancels its open orders
(strategies/base.py on_stop) and, with `flatten_on_stop`, closes its positions at market (Nautilus'
`manage_stop` market exit) before the clients disconnect.

The run folder holds the resolved config (no secrets: keys never enter a config), Nautilus' log, the order
journal (orders.jsonl, written as orders happen), the operations log (events.jsonl: one JSON line per order
event, kill-switch event and websocket drop; actors/operations.py), metrics.json (the Prometheus URL, with
`[ops.metrics]`) and summary.json (written at a clean stop).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from pathlib import Path
from typing import Any

from nautilus_trader.config import ImportableActorConfig
from nautilus_trader.config import ImportableStrategyConfig
from nautilus_trader.config import LiveExecEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import TradingNodeConfig

from qa_engine.config.build import build_venue_configs
from qa_engine.config.build import resolve_component
from qa_engine.config.build import risk_engine_config
from qa_engine.config.build import risk_guard_actor
from qa_engine.config.models import BacktestConfig
from qa_engine.config.models import LiveConfig
from qa_engine.errors import ConfigError
from qa_engine.lifecycle import attach_risk_engine
from qa_engine.live.clients import Credentials
from qa_engine.live.clients import LiveClients
from qa_engine.live.clients import LiveClientSpec
from qa_engine.live.clients import credentials_from_environment
from qa_engine.live.journal import JOURNAL_FILE
from qa_engine.plugins import load_live_clients
from qa_engine.risk.equity import open_pnl

OPS_PATH = "actors.operations:OperationsActor"
OPS_CONFIG_PATH = "actors.operations:OperationsActorConfig"
BYBIT_HTTP = {  # Bybit's REST hosts, for the venue clock (/v5/market/time) when the config overrides none
    "mainnet": "https://api.bybit.com",
    "testnet": "https://api-testnet.bybit.com",
    "demo": "https://api-demo.bybit.com",
}
JOURNAL_PATH = "qa_engine.live.journal:OrderJournalActor"
JOURNAL_CONFIG_PATH = "qa_engine.live.journal:OrderJournalConfig"
PAPER_CLIENT = "BYBIT"


@dataclass
class LivePlan:
    """Everything needed to start the node, and what it is about to trade (for the start banner)."""

    config: LiveConfig
    run_dir: Path
    node_config: TradingNodeConfig
    data_factories: dict[str, type] = field(default_factory=dict)
    exec_factories: dict[str, type] = field(default_factory=dict)
    banner: dict[str, Any] = field(default_factory=dict)


def traded_instruments(config: LiveConfig) -> list[str]:
    """The Bybit instruments the strategies trade (their `instrument_id` parameters, else the bars')."""
    ids = [str(s.params["instrument_id"]) for s in config.strategies if "instrument_id" in s.params]
    if not ids:
        ids = [bars.instrument_id for bars in config.bars]
    for instrument_id in ids:
        if not instrument_id.endswith(".BYBIT"):
            raise ConfigError(
                f"strategy instrument {instrument_id}: live execution trades BYBIT instruments only"
            )
    return list(dict.fromkeys(ids))


def _paper_exec_config(config: LiveConfig, instrument_ids: list[str]):
    from qa_engine.config.build import FundingPlan
    from qa_engine.live.paper import PaperExecClientConfig

    venue = config.venues[0]
    # The backtest venue config of the same venue: slippage, fees, margin model, liquidation module.
    stand_in = BacktestConfig.model_validate(
        {
            "id": config.id,
            "venues": [venue.model_dump()],
            "data": {
                "bars": [b.model_dump() for b in config.bars],
                "start": "2000-01-01",
                "end": "2000-01-02",
            },
            "strategies": [s.model_dump() for s in config.strategies],
        }
    )
    venue_config = build_venue_configs(stand_in, FundingPlan({}, {}))[0]
    return PaperExecClientConfig(
        venue=venue.name,
        starting_balances=[f"{venue.starting_balance} {venue.currency}"],
        base_currency=venue.currency,
        oms_type=venue.oms_type,
        account_type=venue.account_type,
        default_leverage=Decimal(str(venue.leverage)),
        venue_config=venue_config,
        funding_instrument_ids=instrument_ids if venue.simulate_funding else None,
    )


def plan_live_run(
    config: LiveConfig,
    run_dir: Path,
    *,
    credentials: Credentials | None = None,
) -> LivePlan:
    """Validate and build; nothing connects. Keys: `credentials`, else the environment's variables."""
    live = config.live
    paper = live.execution == "paper"
    if credentials is None:
        credentials = credentials_from_environment(live.environment, required=not paper)
    strategies = [resolve_component(c, "strategy", i) for i, c in enumerate(config.strategies)]
    actors = [resolve_component(c, "actor", i) for i, c in enumerate(config.actors)]
    instrument_ids = traded_instruments(config)
    venue = config.venues[0]
    leverages = {i.rsplit(".", 1)[0]: max(1, int(venue.leverage)) for i in instrument_ids}

    data_factories: dict[str, type] = {}
    exec_factories: dict[str, type] = {}
    data_clients: dict[str, Any] = {}
    exec_clients: dict[str, Any] = {}

    bybit_endpoints = live.bybit.model_dump()
    bybit: LiveClients = load_live_clients("bybit")(
        LiveClientSpec(
            environment=live.environment,
            instrument_ids=tuple(instrument_ids),
            endpoints=bybit_endpoints,
            credentials=credentials,
            leverages=leverages,
            want_data=live.data_source == "bybit" or paper,
            want_execution=not paper,
            reconciliation=live.reconcile,
        )
    )
    if bybit.data_config is not None:
        data_clients[bybit.name] = bybit.data_config
        data_factories[bybit.name] = bybit.data_factory
    if bybit.exec_config is not None:
        exec_clients[bybit.name] = bybit.exec_config
        exec_factories[bybit.name] = bybit.exec_factory
    if live.data_source == "binance":
        binance = load_live_clients("binance")(
            LiveClientSpec(
                environment=live.environment,
                instrument_ids=tuple(dict.fromkeys(b.instrument_id for b in config.bars)),
                endpoints=live.binance.model_dump(),
                want_execution=False,
            )
        )
        data_clients[binance.name] = binance.data_config
        data_factories[binance.name] = binance.data_factory
    if paper:
        from qa_engine.live.paper import PaperExecClientFactory

        exec_clients[PAPER_CLIENT] = _paper_exec_config(config, instrument_ids)
        exec_factories[PAPER_CLIENT] = PaperExecClientFactory

    manage_stop = {"manage_stop": True} if live.flatten_on_stop else {}
    journal = ImportableActorConfig(
        actor_path=JOURNAL_PATH,
        config_path=JOURNAL_CONFIG_PATH,
        config={
            "component_id": "OrderJournal",
            "path": str(run_dir / JOURNAL_FILE),
            "bar_types": [bars.bar_type for bars in config.bars],
        },
    )
    feeds = []
    if paper and venue.simulate_funding:
        feeds.append(
            ImportableActorConfig(
                actor_path="qa_engine.live.paper:FundingFeedActor",
                config_path="qa_engine.live.paper:FundingFeedConfig",
                config={"component_id": "FundingFeed", "instrument_ids": instrument_ids},
            )
        )
    operations = operations_actor(config, run_dir)
    guard_state = guard_state_file(config)
    guard = risk_guard_actor(config, [b.bar_type for b in config.bars], guard_state, persist_every_bar=True)
    node_config = TradingNodeConfig(
        trader_id=config.engine.trader_id,
        risk_engine=risk_engine_config(config, live=True),
        logging=LoggingConfig(
            log_level=config.engine.log_level,
            log_level_file="INFO",
            log_directory=str(run_dir),
            log_file_name="nautilus",
            log_colors=False,
        ),
        exec_engine=LiveExecEngineConfig(
            reconciliation=live.reconcile and not paper,
            reconciliation_lookback_mins=live.reconciliation_lookback_mins,
            reconciliation_startup_delay_secs=1.0,
            open_check_interval_secs=None if paper else 10.0,  # polls the venue for orders a drop hid
            # a node runs for weeks: closed orders and positions older than an hour leave the cache
            purge_closed_orders_interval_mins=10,
            purge_closed_orders_buffer_mins=60,
            purge_closed_positions_interval_mins=10,
            purge_closed_positions_buffer_mins=60,
            purge_account_events_interval_mins=10,
            purge_account_events_lookback_mins=60,
        ),
        data_clients=data_clients,
        exec_clients=exec_clients,
        strategies=[
            ImportableStrategyConfig(
                strategy_path=s.component_path, config_path=s.config_path, config={**s.params, **manage_stop}
            )
            for s in strategies
        ],
        actors=[journal, operations, *feeds, *([guard] if guard else [])]
        + [
            ImportableActorConfig(actor_path=a.component_path, config_path=a.config_path, config=a.params)
            for a in actors
        ],
        timeout_connection=30.0,
        timeout_reconciliation=15.0,
        timeout_portfolio=10.0,
        timeout_disconnection=5.0,
        timeout_post_stop=3.0,
    )
    # No node_config.validate(): its msgspec round trip types adapter client configs as the base classes
    # and rejects their fields; every part was built from a validated model or a Nautilus config class.
    banner = {
        "environment": live.environment,
        "execution": "paper (sandbox, backtest rules)" if paper else f"Bybit {live.environment}",
        "market data": "Binance USD-M futures"
        if live.data_source == "binance"
        else f"Bybit {live.environment}",
        "instruments": ", ".join(instrument_ids),
        "bars": ", ".join(b.bar_type for b in config.bars),
        "strategies": ", ".join(s.name for s in config.strategies),
        "leverage": f"{venue.leverage:g}x",
        "on stop": "cancel open orders, close positions" if live.flatten_on_stop else "cancel open orders",
        "kill switches": ", ".join(config.risk.rules()) or "none",
        "alerts": _alert_channels(config) or "none",
        "metrics": f"http://{config.ops.metrics.host}:{config.ops.metrics.port or '<any free port>'}/metrics"
        if config.ops.metrics
        else "none",
        "endpoints": "overridden" if live.bybit.overridden() else "the environment's own",
        "api key": "from the environment" if credentials else "none (public data only)",
    }
    return LivePlan(config, run_dir, node_config, data_factories, exec_factories, banner)


def operations_actor(config: LiveConfig, run_dir: Path) -> ImportableActorConfig:
    """Logs, metrics and alerts of the run (actors/operations.py); alert secrets are checked here, read
    from the environment by the actor itself (they never enter a config)."""
    from qa_engine.live.clients import KEY_VARIABLES
    from qa_engine.ops.alerts import missing_variables
    from qa_engine.ops.alerts import secret_variables

    ops, live = config.ops, config.live
    alerts = ops.alerts.model_dump(mode="json") if ops.alerts else None
    if alerts is not None:
        missing = missing_variables(alerts)
        if missing:
            raise ConfigError(
                f"ops.alerts: set the environment variable {missing[0]} (or remove the channel)"
            )
    secret_env = [name for pair in KEY_VARIABLES.values() for name in pair]
    secret_env += secret_variables(alerts) if alerts else []
    rest = live.bybit.http or BYBIT_HTTP[live.environment]
    return ImportableActorConfig(
        actor_path=OPS_PATH,
        config_path=OPS_CONFIG_PATH,
        config={
            "component_id": "Operations",
            "run_id": run_dir.name,
            "run_dir": str(run_dir),
            "environment": live.environment,
            "execution": live.execution,
            "venue": config.venues[0].name,
            "currency": config.venues[0].currency,
            "bar_types": [bars.bar_type for bars in config.bars],
            "json_logs": ops.json_logs,
            "metrics_host": ops.metrics.host if ops.metrics else None,
            "metrics_port": ops.metrics.port if ops.metrics else 0,
            "alerts": json.dumps(alerts) if alerts else None,
            "secret_env": secret_env,
            "venue_time_url": f"{rest.rstrip('/')}/v5/market/time",
        },
    )


def _alert_channels(config: LiveConfig) -> str:
    alerts = config.ops.alerts
    if alerts is None:
        return ""
    names = [name for name in ("telegram", "discord", "email") if getattr(alerts, name) is not None]
    return f"{', '.join(names)} ({', '.join(alerts.events)})"


def guard_state_file(config: LiveConfig) -> Path:
    """The kill switches' state of a live config: beside the run folders, so that a restarted node (a new
    run folder) finds it; `qa live resume` writes its resume request next to it."""
    return config.output.directory / f"{config.id}.risk_guard.json"


def run_live_node(plan: LivePlan) -> dict[str, Any]:
    """Build and run the node until a signal or `max_runtime_secs`; returns the summary it writes."""
    from nautilus_trader.live.node import TradingNode

    plan.run_dir.mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()  # the node runs on the loop it is given (its clients' tasks live there)
    asyncio.set_event_loop(loop)
    node = TradingNode(config=plan.node_config, loop=loop)
    for name, factory in plan.data_factories.items():
        node.add_data_client_factory(name, factory)
    for name, factory in plan.exec_factories.items():
        node.add_exec_client_factory(name, factory)
    node.build()
    attach_risk_engine(node.trader, node.kernel.risk_engine)
    max_runtime = plan.config.live.max_runtime_secs
    if max_runtime is not None:
        loop.call_later(max_runtime, node.stop)
    started = time.monotonic()
    try:
        node.run()
    finally:
        summary = _summary(node, plan, time.monotonic() - started)
        (plan.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        # End the tasks still pending (the actor executor's worker) before dispose() closes the loop;
        # left pending, their coroutines are finalised later on a closed loop ("Event loop is closed").
        node.kernel.cancel_all_tasks()
        node.dispose()
    return summary


def _summary(node, plan: LivePlan, runtime_secs: float) -> dict[str, Any]:
    cache = node.kernel.cache
    accounts = {}
    for account in cache.accounts():
        accounts[str(account.id)] = {
            str(currency): str(account.balance_total(currency)) for currency in account.currencies()
        }
    # net per instrument: after a restart the venue's position comes back as an EXTERNAL strategy's, beside
    # the strategies' own positions on the same instrument (Nautilus keeps one position per strategy)
    net: dict[str, Decimal] = {}
    by_strategy: dict[str, str] = {}
    for position in cache.positions_open():
        instrument = str(position.instrument_id)
        net[instrument] = net.get(instrument, Decimal(0)) + position.signed_decimal_qty()
        by_strategy[f"{instrument} {position.strategy_id}"] = str(position.signed_decimal_qty())
    positions = {instrument: str(qty) for instrument, qty in net.items() if qty != 0}
    return {
        "equity": str(_equity(cache, plan)),
        "config_id": plan.config.id,
        "environment": plan.config.live.environment,
        "execution": plan.config.live.execution,
        "runtime_secs": round(runtime_secs, 3),
        "orders": len(cache.orders()),
        "orders_open": len(cache.orders_open()),
        "fills": sum(len(order.trade_ids) for order in cache.orders()),
        "positions_open": positions,
        "positions_by_strategy": by_strategy,
        "accounts": accounts,
    }


def _equity(cache, plan: LivePlan) -> Decimal:
    """Account balance + unrealised pnl of the open positions at their last bar close."""
    from nautilus_trader.model.data import BarType

    venue = plan.config.venues[0]
    total = Decimal(0)
    for account in cache.accounts():
        for currency in account.currencies():
            if currency.code == venue.currency:
                total += account.balance_total(currency).as_decimal()
    closes = {}
    for bars in plan.config.bars:
        bar = cache.bar(BarType.from_str(bars.bar_type))
        if bar is not None:
            closes[bars.instrument_id] = bar.close.as_decimal()
    total += open_pnl(cache.positions_open(), closes)
    return total.quantize(Decimal("1e-8"))  # avg_px_open is a float: keep the account's 8 decimals
