"""The one place where a validated run config becomes Nautilus configs, `.validate()`d at once.

Everything a run needs is checked here, before the engine starts: plug-ins resolve, their
parameters validate against their own config classes, and the catalog holds every instrument and
bar series over the requested time range.
"""

from __future__ import annotations

import difflib
import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
from nautilus_trader.backtest.config import BacktestDataConfig
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.config import BacktestRunConfig
from nautilus_trader.backtest.config import BacktestVenueConfig
from nautilus_trader.backtest.config import ImportableFeeModelConfig
from nautilus_trader.backtest.config import ImportableFillModelConfig
from nautilus_trader.backtest.config import ImportableLatencyModelConfig
from nautilus_trader.backtest.config import MarginModelConfig
from nautilus_trader.config import ImportableActorConfig
from nautilus_trader.config import ImportableStrategyConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import RiskEngineConfig
from nautilus_trader.model.data import Bar
from nautilus_trader.model.instruments import CryptoPerpetual

from qa_engine.config.models import BacktestConfig
from qa_engine.config.models import ComponentConfig
from qa_engine.data import location
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.logging import get_logger
from qa_engine.plugins import import_object
from qa_engine.plugins import resolve_component_path

log = get_logger(__name__)

RECORDER_PATH = "qa_engine.backtest.recorder:RunRecorderActor"
RECORDER_CONFIG_PATH = "qa_engine.backtest.recorder:RunRecorderConfig"
NANOS_PER_MS = 1_000_000


@dataclass(frozen=True)
class ResolvedComponent:
    name: str
    component_path: str
    config_path: str
    params: dict[str, Any]


def config_class_of(component_class: type) -> type:
    """A component's config class, read from the type of its `__init__(config)` parameter."""
    hints = typing.get_type_hints(component_class.__init__)
    config_class = hints.get("config")
    if config_class is None:
        raise ConfigError(f"{component_class.__qualname__}.__init__ has no typed `config` parameter")
    return config_class


def resolve_component(component: ComponentConfig, kind: str, index: int) -> ResolvedComponent:
    """Resolve a plug-in and validate its parameters against its own config class now."""
    section = "strategies" if kind == "strategy" else "actors"
    where = f"{section}.{index} ({component.name})"
    component_path = resolve_component_path(component.name, kind)
    component_class = import_object(component_path)
    config_class = config_class_of(component_class)
    try:
        config_class.parse(json.dumps(component.params))
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: invalid params: {exc}{_nearest_field_hint(exc, config_class)}") from None
    config_path = f"{config_class.__module__}:{config_class.__qualname__}"
    return ResolvedComponent(component.name, component_path, config_path, dict(component.params))


def _nearest_field_hint(error: Exception, config_class: type) -> str:
    """'; did you mean `fast_ema_period`?' for msgspec's "unknown field `fast_ema_perod`", else ''."""
    match = re.search(r"unknown field `([^`]+)`", str(error))
    fields = getattr(config_class, "__struct_fields__", ())
    if match is None or not fields:
        return ""
    close = difflib.get_close_matches(match.group(1), fields, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else f"; valid parameters: {', '.join(fields)}"


def check_catalog(config: BacktestConfig) -> None:
    """The catalog holds every instrument and bar series, overlapping the requested range. A remote
    catalog (s3://...) is checked the same way, through fsspec (qa_engine.data.location)."""
    catalog_path = config.data.catalog
    if not location.exists(catalog_path):
        raise ConfigError(
            f"data.catalog: no catalog at '{catalog_path}' (build one with `qa catalog ingest`)"
        )
    catalog = location.open_catalog(catalog_path)
    known_instruments = {str(instrument.id) for instrument in catalog.instruments()}
    start_ns = pd.Timestamp(config.data.start).value
    end_ns = pd.Timestamp(config.data.end).value
    for index, bars in enumerate(config.data.bars):
        where = f"data.bars.{index}"
        if bars.instrument_id not in known_instruments:
            raise ConfigError(
                f"{where}: instrument {bars.instrument_id} is not in the catalog '{catalog_path}' "
                f"(it holds: {', '.join(sorted(known_instruments)) or 'nothing'})",
            )
        intervals = catalog.get_intervals(Bar, bars.bar_type)
        if not intervals:
            raise ConfigError(f"{where}: no {bars.interval} bars of {bars.instrument_id} in '{catalog_path}'")
        first_ns, last_ns = min(i[0] for i in intervals), max(i[1] for i in intervals)
        if end_ns < first_ns or start_ns > last_ns:
            first, last = pd.Timestamp(first_ns, tz="UTC"), pd.Timestamp(last_ns, tz="UTC")
            raise ConfigError(
                f"{where}: the range {config.data.start:%Y-%m-%d %H:%M} -> {config.data.end:%Y-%m-%d %H:%M} "
                f"has no {bars.interval} bars of {bars.instrument_id}; the catalog holds "
                f"{first:%Y-%m-%d %H:%M} -> {last:%Y-%m-%d %H:%M}",
            )
        if not config.data.allow_partial_range:
            _check_range_covered(config, bars, first_ns, last_ns, start_ns, end_ns, where)
        _check_bar_files_readable(catalog_path, bars.bar_type, where)


def _check_bar_files_readable(catalog_path, bar_type: str, where: str) -> None:
    """Every bar file the run would load has a readable Parquet footer: a damaged file is named now
    (DataError, exit 2) instead of failing inside the engine after the run folder was written."""
    from qa_engine.data.catalog import bar_directory_of

    for path in location.list_parquet(bar_directory_of(catalog_path, bar_type)):
        try:
            location.read_parquet_metadata(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(
                f"{where}: {path}: not a readable Parquet file ({type(exc).__name__}); restore it or "
                "re-ingest the bars"
            ) from None


# Seconds of each kline interval: the catalog's first bar CLOSES one interval after the range may start.
INTERVAL_SECS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}


def _check_range_covered(config, bars, first_ns, last_ns, start_ns, end_ns, where) -> None:
    """A run range that reaches outside the catalog's bars is refused, naming the missing span(s),
    instead of silently running on less data (data.allow_partial_range opts in to truncation)."""
    earliest_start_ns = first_ns - INTERVAL_SECS[bars.interval] * 1_000_000_000  # the first bar's open
    missing = []
    if start_ns < earliest_start_ns:
        missing.append(f"{_stamp(start_ns)} -> {_stamp(earliest_start_ns)} (before the first bar)")
    if end_ns > last_ns:
        missing.append(f"{_stamp(last_ns)} -> {_stamp(end_ns)} (after the last bar)")
    if missing:
        raise ConfigError(
            f"{where}: the catalog '{config.data.catalog}' has no {bars.interval} bars of "
            f"{bars.instrument_id} for {' and '.join(missing)}; it holds bar closes "
            f"{_stamp(first_ns)} -> {_stamp(last_ns)}. Narrow data.start / data.end, add the bars "
            "(qa data download / qa catalog ingest), or set data.allow_partial_range = true to run on "
            "what is there"
        )


def _stamp(nanos: int) -> str:
    return f"{pd.Timestamp(nanos, tz='UTC'):%Y-%m-%d %H:%M}"


FUNDING_INTERVAL_NS = 8 * 3_600 * 1_000_000_000  # the venues' funding period (Bybit, Binance: 8 h)


@dataclass(frozen=True)
class FundingPlan:
    """Which perpetuals of the run have their funding settled, and why the others have not."""

    settled: dict[str, str]  # instrument id -> the span of funding times in the run (text)
    not_settled: dict[str, str]  # instrument id -> why

    def to_dict(self) -> dict[str, Any]:
        return {"settled": self.settled, "not_settled": self.not_settled}


def funding_plan(config: BacktestConfig) -> FundingPlan:
    """Per perpetual of the run's bar series: are there funding rates in the catalog over the run range?

    A series that covers only part of the range is settled where it exists; the gap is named."""
    from qa_engine.data.funding import read_funding_table

    catalog = location.open_catalog(config.data.catalog)
    venues = {venue.name: venue for venue in config.venues}
    start_ns, end_ns = pd.Timestamp(config.data.start).value, pd.Timestamp(config.data.end).value
    settled, not_settled = {}, {}
    for instrument_id in dict.fromkeys(bars.instrument_id for bars in config.data.bars):
        instruments = catalog.instruments(instrument_ids=[instrument_id])
        if not instruments or not isinstance(instruments[0], CryptoPerpetual):
            continue  # funding is a perpetual's
        if not venues[instrument_id.rsplit(".", 1)[1]].simulate_funding:
            not_settled[instrument_id] = "off in the run config (simulate_funding = false)"
            continue
        table = read_funding_table(config.data.catalog, instrument_id)
        ts = [] if table is None else table.column("ts_event").to_pylist()
        inside = [t for t in ts if start_ns <= t <= end_ns]
        if not inside:
            held = f"it holds {_stamp(ts[0])} -> {_stamp(ts[-1])}" if ts else "it holds none"
            not_settled[instrument_id] = (
                f"no funding rates in the catalog for {_stamp(start_ns)} -> {_stamp(end_ns)} ({held}; "
                "add them with `qa data download-funding` or `qa catalog ingest-funding`)"
            )
            continue
        span = f"{_stamp(inside[0])} -> {_stamp(inside[-1])} ({len(inside)} funding times)"
        gaps = []
        if inside[0] - start_ns > FUNDING_INTERVAL_NS:
            gaps.append(f"none before {_stamp(inside[0])}")
        if end_ns - inside[-1] > FUNDING_INTERVAL_NS:
            gaps.append(f"none after {_stamp(inside[-1])}")
        settled[instrument_id] = span + (f"; {' and '.join(gaps)}" if gaps else "")
    return FundingPlan(settled=settled, not_settled=not_settled)


def build_venue_configs(config: BacktestConfig, plan: FundingPlan | None = None) -> list[BacktestVenueConfig]:
    from qa_engine.risk.margin import maintenance_margin_rate

    plan = plan or FundingPlan({}, {})
    venues = []
    for venue in config.venues:
        configured = venue.configured_fee_rates()
        if venue.fee_model == "maker_taker" and configured is not None:
            maker, taker, _ = configured
            fee_model = ImportableFeeModelConfig(
                fee_model_path="qa_engine.backtest.fees:VenueRateFeeModel",
                config_path="qa_engine.backtest.fees:VenueRateFeeModelConfig",
                config={"maker_fee_rate": str(maker), "taker_fee_rate": str(taker)},
            )
        elif venue.fee_model == "maker_taker":
            fee_model = ImportableFeeModelConfig(
                fee_model_path="nautilus_trader.backtest.models:MakerTakerFeeModel",
                config_path="nautilus_trader.backtest.config:MakerTakerFeeModelConfig",
                config={},
            )
        else:
            fee_model = ImportableFeeModelConfig(
                fee_model_path="nautilus_trader.backtest.models:FixedFeeModel",
                config_path="nautilus_trader.backtest.config:FixedFeeModelConfig",
                config={"commission": f"0 {venue.currency}"},
            )
        instrument_ids = [b.instrument_id for b in config.data.bars if b.venue == venue.name]
        instrument_ids = list(dict.fromkeys(instrument_ids))
        modules = []
        funded = [i for i in instrument_ids if i in plan.settled]
        if funded:
            modules.append(
                ImportableActorConfig(
                    actor_path="qa_engine.backtest.funding:FundingSettlementModule",
                    config_path="qa_engine.backtest.funding:FundingSettlementConfig",
                    config={"instrument_ids": funded},
                )
            )
        margin = venue.account_type == "MARGIN"
        if margin and venue.liquidation and instrument_ids:
            rates = {i: maintenance_margin_rate(i, venue.maintenance_margin_rate)[0] for i in instrument_ids}
            fees = {
                i: venue.liquidation_fee_rate if venue.liquidation_fee_rate is not None else rates[i]
                for i in rates
            }
            if venue.fee_model == "none":
                takers = dict.fromkeys(rates, "0")
            elif configured is not None:
                takers = dict.fromkeys(rates, str(configured[1]))
            else:
                takers = {}  # the instruments' own taker rates
            modules.append(
                ImportableActorConfig(
                    actor_path="qa_engine.backtest.liquidation:LiquidationModule",
                    config_path="qa_engine.backtest.liquidation:LiquidationConfig",
                    config={
                        "maintenance_rates": {i: str(r) for i, r in rates.items()},
                        "fee_rates": {i: str(r) for i, r in fees.items()},
                        "taker_fee_rates": takers,
                    },
                )
            )
        venues.append(
            BacktestVenueConfig(
                name=venue.name,
                oms_type=venue.oms_type,
                account_type=venue.account_type,
                base_currency=venue.currency,
                starting_balances=[f"{venue.starting_balance} {venue.currency}"],
                default_leverage=venue.leverage,
                margin_model=MarginModelConfig(model_type="qa_engine.risk.margin:VenueMarginModel")
                if margin
                else None,
                modules=modules or None,
                fee_model=fee_model,
                latency_model=ImportableLatencyModelConfig(
                    latency_model_path="nautilus_trader.backtest.models:LatencyModel",
                    config_path="nautilus_trader.backtest.config:LatencyModelConfig",
                    config={"base_latency_nanos": int(venue.latency_ms * NANOS_PER_MS)},
                ),
                fill_model=ImportableFillModelConfig(
                    fill_model_path="qa_engine.backtest.slippage:BpsSlippageFillModel",
                    config_path="qa_engine.backtest.slippage:BpsSlippageFillModelConfig",
                    config={
                        "prob_slippage": venue.slippage_probability,
                        "random_seed": venue.fill_seed,
                        "slippage_bps": venue.slippage_bps,
                    },
                ),
                bar_adaptive_high_low_ordering=venue.bar_adaptive_high_low_ordering,
            ),
        )
    return venues


SIGNALS_CLIENT_ID = "SIGNALS"  # the backtest data client that carries replayed signal records


def signal_data_configs(config: BacktestConfig) -> list[BacktestDataConfig]:
    """One BacktestDataConfig per `data.signals` entry, checked against the catalog now.

    Nautilus 1.231 (backtest/node.py, persistence/catalog/parquet.py) queries custom data with the
    config's `filter_expr`, wraps every record as CustomData(DataType(cls, metadata=<the config's
    metadata>)) and adds it to the engine under `client_id`; the data engine then publishes the record
    on `data.<DataType.topic>`, the topic the actors publish on: DataType(cls, metadata=
    {"instrument_id": <id>}). These configs come after the bars': the engine sorts its stream by
    ts_init stably, so a bar is processed (matching engine first) before the records of its close.
    """
    from qa_engine.replay import store

    start_ns, end_ns = pd.Timestamp(config.data.start).value, pd.Timestamp(config.data.end).value
    data = []
    for index, signal in enumerate(config.data.signals):
        where = f"data.signals.{index} ({signal.type} of {signal.instrument_id})"
        held = store.summarise_keys(config.data.catalog, signal.type, signal.instrument_id)
        key_name = store.KEY_FIELD[signal.type]
        keys = [item.key for item in held]
        build_hint = "build them with `qa signals build` (see `qa signals list`)"
        if not held:
            raise ConfigError(f"{where}: the catalog '{config.data.catalog}' holds none; {build_hint}")
        key = signal.key
        if key is None:
            if len(keys) > 1:
                raise ConfigError(f"{where}: the catalog holds several, choose one with {key_name}: {keys}")
            key = keys[0]
        if key not in keys:
            raise ConfigError(f"{where}: no records of {key_name} '{key}'; the catalog holds {keys}")
        if not store.count_records(
            config.data.catalog, signal.type, signal.instrument_id, key, start_ns, end_ns
        ):
            raise ConfigError(
                f"{where}: no records of '{key}' between {config.data.start:%Y-%m-%d %H:%M} and "
                f"{config.data.end:%Y-%m-%d %H:%M}; {build_hint}"
            )
        data.append(
            BacktestDataConfig(
                **location.backtest_data_catalog(config.data.catalog),
                data_cls=f"qa_engine.signals:{signal.type}",
                instrument_id=signal.instrument_id,
                start_time=config.data.start.isoformat(),
                end_time=config.data.end.isoformat(),
                filter_expr=f'field("{key_name}") == "{key}"',
                client_id=SIGNALS_CLIENT_ID,
                metadata={"instrument_id": signal.instrument_id},
            )
        )
    return data


RISK_GUARD = "risk_guard"  # actors.REGISTRY name of the RiskGuardActor, added from the [risk] section


def risk_guard_actor(
    config, bar_types: list[str], state_path: Path | None = None, persist_every_bar: bool = False
) -> ImportableActorConfig | None:
    """The RiskGuardActor of a run config's [risk] section (None: no rule and no position limit).
    `config` is a BacktestConfig or a LiveConfig (the same risk, venues and actors sections)."""
    risk = config.risk
    rules = risk.rules()
    limits = risk.limits
    if (
        not rules
        and not limits.max_position
        and limits.risk_per_trade_pct is None
        and not limits.max_notional_per_order
    ):
        return None
    for index, actor in enumerate(config.actors):
        if actor.name == RISK_GUARD or actor.name.endswith(":RiskGuardActor"):
            raise ConfigError(f"actors.{index} ({actor.name}): the risk guard comes from the [risk] section")
    params = {
        "component_id": "RiskGuard",
        "bar_types": bar_types,
        "venue": config.venues[0].name,
        "currency": config.venues[0].currency,
        "rules": rules,
        "max_position": {key: str(value) for key, value in limits.max_position.items()},
        "risk_per_trade_pct": limits.risk_per_trade_pct,
        "max_notional_per_order": {key: str(value) for key, value in limits.max_notional_per_order.items()},
        "state_path": str(state_path) if state_path else None,
        "persist_every_bar": persist_every_bar,
    }
    guard = resolve_component(ComponentConfig(name=RISK_GUARD, params=params), "actor", len(config.actors))
    return ImportableActorConfig(
        actor_path=guard.component_path, config_path=guard.config_path, config=params
    )


def risk_engine_config(config, live: bool = False) -> RiskEngineConfig:
    """Nautilus' own order-level limits from the [risk.limits] section (a live node needs the Live class).
    1.231's RiskEngine skips its notional checks for margin accounts ("TODO: Determine risk controls for
    margin"), so TargetPositionStrategy also denies an order over max_notional_per_order itself."""
    from nautilus_trader.config import LiveRiskEngineConfig

    limits = config.risk.limits
    return (LiveRiskEngineConfig if live else RiskEngineConfig)(
        max_order_submit_rate=limits.max_order_submit_rate,
        max_notional_per_order={key: value for key, value in limits.max_notional_per_order.items()},
    )


def build_backtest_run_config(config: BacktestConfig, run_dir: Path | None = None) -> BacktestRunConfig:
    """Translate and validate. Raises ConfigError with one readable message."""
    return build_backtest_run(config, run_dir)[0]


def build_backtest_run(
    config: BacktestConfig, run_dir: Path | None = None
) -> tuple[BacktestRunConfig, FundingPlan]:
    """The validated Nautilus run config, and the funding plan it was built with (for the report)."""
    currencies = {venue.currency for venue in config.venues}
    if len(currencies) > 1:
        raise ConfigError(
            f"all venues must hold accounts in one currency for one equity curve, got {currencies}"
        )
    check_catalog(config)
    strategies = [resolve_component(c, "strategy", i) for i, c in enumerate(config.strategies)]
    actors = [resolve_component(c, "actor", i) for i, c in enumerate(config.actors)]
    recorder = ImportableActorConfig(
        actor_path=RECORDER_PATH,
        config_path=RECORDER_CONFIG_PATH,
        config={
            "component_id": "RunRecorder",
            "bar_types": [bars.bar_type for bars in config.data.bars],
            "venues": [venue.name for venue in config.venues],
            "purge_closed_orders_every_bars": config.engine.purge_closed_orders_every_bars,
        },
    )
    logging = LoggingConfig(
        log_level=config.engine.log_level,
        log_level_file="INFO" if run_dir else None,
        log_directory=str(run_dir) if run_dir else None,
        log_file_name="nautilus" if run_dir else None,
        log_colors=False,
    )
    guard = risk_guard_actor(config, [bars.bar_type for bars in config.data.bars])
    engine = BacktestEngineConfig(
        trader_id=config.engine.trader_id,
        logging=logging,
        risk_engine=risk_engine_config(config),
        strategies=[
            ImportableStrategyConfig(
                strategy_path=s.component_path, config_path=s.config_path, config=s.params
            )
            for s in strategies
        ],
        actors=[recorder, *([guard] if guard else [])]
        + [
            ImportableActorConfig(actor_path=a.component_path, config_path=a.config_path, config=a.params)
            for a in actors
        ],
        run_analysis=False,  # statistics are ours (qa_engine.reporting): 365-day, per round trip
    )
    plan = funding_plan(config)
    for instrument_id, why in plan.not_settled.items():
        log.warning("funding_not_simulated", instrument_id=instrument_id, reason=why)
    # Funding before the bars: the engine's sort by ts_init is stable, so a funding update stamped T is
    # processed before the bar that closes at T (qa_engine.backtest.funding settles on that bar).
    data = [
        BacktestDataConfig(
            **location.backtest_data_catalog(config.data.catalog),
            data_cls="nautilus_trader.model.data:FundingRateUpdate",
            instrument_id=instrument_id,
            start_time=config.data.start.isoformat(),
            end_time=config.data.end.isoformat(),
        )
        for instrument_id in plan.settled
    ]
    data += [
        BacktestDataConfig(
            **location.backtest_data_catalog(config.data.catalog),
            data_cls="nautilus_trader.model.data:Bar",
            instrument_id=bars.instrument_id,
            bar_types=[bars.bar_type],
            start_time=config.data.start.isoformat(),
            end_time=config.data.end.isoformat(),
        )
        for bars in config.data.bars
    ]
    data += signal_data_configs(config)  # after the bars: see signal_data_configs
    run_config = BacktestRunConfig(
        engine=engine,
        venues=build_venue_configs(config, plan),
        data=data,
        raise_exception=True,
        dispose_on_completion=False,  # the runner reads the recorder, then disposes
    )
    try:
        run_config.validate()
    except Exception as exc:
        raise ConfigError(f"Nautilus rejected the built config: {exc}") from exc
    return run_config, plan
