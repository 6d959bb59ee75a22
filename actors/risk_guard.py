"""RiskGuardActor: the account's kill switches, the same in backtests and live.

It feeds qa_engine.risk.kill_switches.RiskGuard with what the account lives through - the equity of the
guarded venue's account at every bar close (balance + unrealised pnl at the closes), every closed round
trip (PositionClosed realised pnl), every order the venue rejected, and, for the model-disagreement rule,
the Oracle's forecast direction against the Strategist's raw proposal (Proposal, published by the
Trinity strategy before its gates) - and carries out its answers:

- the guard's mode and size scale are published on the bus (topic `risk.guard`) and kept in the Cache
  (key `qa.risk.state`), where TargetPositionStrategy reads them: new orders at `size_scale`; in
  `reducing` / `halted` mode each strategy closes its position and cancels its orders;
- Nautilus' TradingState follows the mode: ACTIVE, REDUCING for flatten, and for halt REDUCING until
  every position on the venue is closed, then HALTED. The runner (backtest and live) hands the actor its
  kernel's RiskEngine (`attach_risk_engine`): Nautilus has no bus message that sets the trading state.

Every trigger and resume is logged, kept in `events` (the report's table and equity-plot marks) and, with
`state_path`, the guard's whole state is written there (atomically) after every change and at stop, and
read back at start: a halted node that is killed and restarted stays halted until its resume rule says
otherwise. Fail safe: an exception while evaluating halts trading instead of stopping the node (a backtest
then fails with the error).
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import DataType
from nautilus_trader.model.enums import TradingState
from nautilus_trader.model.events import OrderCancelRejected
from nautilus_trader.model.events import OrderModifyRejected
from nautilus_trader.model.events import OrderRejected
from nautilus_trader.model.events import PositionClosed
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Currency

from qa_engine.lifecycle import stop_after_start
from qa_engine.risk.equity import open_pnl
from qa_engine.risk.kill_switches import EVENT_TOPIC
from qa_engine.risk.kill_switches import LIMITS_CACHE_KEY
from qa_engine.risk.kill_switches import RESUME_REQUEST_SUFFIX
from qa_engine.risk.kill_switches import STATE_CACHE_KEY
from qa_engine.risk.kill_switches import STATE_TOPIC
from qa_engine.risk.kill_switches import GuardEvent
from qa_engine.risk.kill_switches import Mode
from qa_engine.risk.kill_switches import RiskGuard
from qa_engine.risk.kill_switches import guard_from_rules
from qa_engine.signals import Forecast
from qa_engine.signals import Proposal
from qa_engine.signals import subscribe_bus

TRADING_STATES = {
    Mode.ACTIVE: TradingState.ACTIVE,
    Mode.REDUCED: TradingState.ACTIVE,
    Mode.REDUCING: TradingState.REDUCING,
    Mode.HALTED: TradingState.HALTED,
}


class RiskGuardActorConfig(ActorConfig, frozen=True):
    bar_types: list[str]  # evaluated once per close time, on the first of them that arrives
    venue: str = "BYBIT"  # the account whose equity is guarded ...
    currency: str = "USDT"  # ... in this currency (a Bybit unified account holds several)
    rules: dict[str, dict] | None = None  # name -> fields (the run config's [risk.<rule>] sections)
    max_position: dict[str, str] | None = None  # instrument id -> largest absolute position
    risk_per_trade_pct: float | None = None  # largest notional of one order, % of equity
    max_notional_per_order: dict[str, str] | None = None  # instrument id -> largest notional of one order
    state_path: str | None = None  # JSON file of the guard's state (live: kept across restarts)
    persist_every_bar: bool = False  # live: True (the rules' windows survive a kill -9), backtest: False


def state_message(guard: RiskGuard) -> dict:
    return {"mode": guard.mode.value, "size_scale": guard.size_scale, "fired": guard.fired_rules}


class RiskGuardActor(Actor):
    def __init__(self, config: RiskGuardActorConfig) -> None:
        super().__init__(config)
        self.guard: RiskGuard | None = None
        self.events: list[GuardEvent] = []
        self.config_errors: list[str] = []  # the backtest runner fails with these (ConfigError)
        self.plugin_errors: list[str] = []  # ... and with these (PluginError)
        self._risk_engine = None
        self._venue = Venue(config.venue)
        self._currency = Currency.from_str(config.currency)
        self._last_close: dict[str, Decimal] = {}
        self._last_ts = -1
        self._oracle_direction: dict[str, int] = {}
        self._published_mode: Mode | None = None

    @property
    def risk_guard_events(self) -> list[GuardEvent]:
        """What the backtest runner puts in the report."""
        return self.events

    def attach_risk_engine(self, risk_engine) -> None:
        """The kernel's RiskEngine, whose TradingState the guard sets (called by the runner)."""
        self._risk_engine = risk_engine

    # --- lifecycle -----------------------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            self.guard = guard_from_rules(self.config.rules or {})
        except ValueError as error:
            self._refuse(f"risk guard: {error}")
            return
        path = Path(self.config.state_path) if self.config.state_path else None
        if path is not None and path.exists():
            try:
                self.guard.restore(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, TypeError, KeyError) as error:
                self._refuse(f"risk guard state {path} is unreadable ({error}): fix or delete it")
                return
            self.log.warning(f"risk guard state restored from {path}: mode {self.guard.mode.value}")
        for bar_type in self.config.bar_types:
            self.subscribe_bars(BarType.from_str(bar_type))
        self.msgbus.subscribe(topic="events.position.*", handler=self._on_position_event)
        self.msgbus.subscribe(topic="events.order.*", handler=self._on_order_event)
        if "model_disagreement" in self.guard.rules:
            for bar_type in self.config.bar_types:
                instrument = BarType.from_str(bar_type).instrument_id
                subscribe_bus(self, DataType(Forecast, metadata={"instrument_id": instrument}))
                subscribe_bus(self, DataType(Proposal, metadata={"instrument_id": instrument}))
        limits = {
            "max_position": self.config.max_position or {},
            "risk_per_trade_pct": self.config.risk_per_trade_pct,
            "max_notional_per_order": self.config.max_notional_per_order or {},
        }
        self.cache.add(LIMITS_CACHE_KEY, json.dumps(limits).encode())
        self._take_resume_request(self.clock.timestamp_ns())  # asked for while the node was down
        self._apply(force=True)

    def on_stop(self) -> None:
        self._save()

    # --- observations --------------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> None:
        self._safely(self._on_bar, bar)

    def _on_bar(self, bar: Bar) -> None:
        if self.guard is None:
            return
        self._last_close[bar.bar_type.instrument_id.value] = bar.close.as_decimal()
        if bar.ts_event == self._last_ts:  # several bar series at one close: evaluate once
            return
        self._last_ts = bar.ts_event
        self._take_resume_request(bar.ts_event)
        self._handle(self.guard.on_bar(bar.ts_event, self.equity(), bar.close.as_double()))
        if self._published_mode is Mode.REDUCING and self.guard.mode is Mode.HALTED:
            self._apply()  # halt waits in REDUCING until the positions are closed
        if self.config.persist_every_bar:
            self._save()

    def on_data(self, data) -> None:
        self._safely(self._on_data, data)

    def _on_data(self, data) -> None:
        if self.guard is None:
            return
        instrument = data.instrument_id.value
        if isinstance(data, Forecast):
            values = data.values  # (horizon, quantiles)
            median = float(values[-1, values.shape[1] // 2])
            self._oracle_direction[instrument] = (median > 0) - (median < 0)
        elif isinstance(data, Proposal) and instrument in self._oracle_direction:
            proposal = (data.target_position > 0) - (data.target_position < 0)
            oracle = self._oracle_direction[instrument]
            self._handle(self.guard.on_proposal(data.ts_event, oracle, proposal))

    def _on_position_event(self, event) -> None:
        self._safely(self._position_event, event)

    def _position_event(self, event) -> None:
        if self.guard is not None and isinstance(event, PositionClosed):
            self._handle(self.guard.on_round_trip(event.ts_event, event.realized_pnl.as_decimal()))
        if (
            self._published_mode is Mode.REDUCING
            and self.guard is not None
            and self.guard.mode is Mode.HALTED
        ):
            self._apply()

    def _on_order_event(self, event) -> None:
        self._safely(self._order_event, event)

    def _order_event(self, event) -> None:
        if self.guard is not None and isinstance(
            event, OrderRejected | OrderCancelRejected | OrderModifyRejected
        ):
            self._handle(self.guard.on_order_error(event.ts_event))

    # --- actions -------------------------------------------------------------------------------------

    def equity(self) -> Decimal:
        """Balance of the guarded account + unrealised pnl of its open positions at the last closes."""
        account = self.portfolio.account(self._venue)
        total = Decimal(0)
        if account is not None:
            balance = account.balance_total(self._currency)
            total = balance.as_decimal() if balance is not None else Decimal(0)
        total += open_pnl(self.cache.positions_open(venue=self._venue), self._last_close)
        return total

    def _handle(self, events: list[GuardEvent]) -> None:
        if not events:
            return
        for event in events:
            self.events.append(event)
            self.log.warning(f"risk guard {event.kind}: {event.message}")
            self.msgbus.publish(topic=EVENT_TOPIC, msg=event)
        self._apply()
        self._save()

    def _apply(self, force: bool = False) -> None:
        """Publish the guard's mode and set Nautilus' trading state to match."""
        mode = self.guard.mode
        message = state_message(self.guard)
        self.cache.add(STATE_CACHE_KEY, json.dumps(message).encode())
        effective = mode
        if mode is Mode.HALTED and self.cache.positions_open_count(venue=self._venue) > 0:
            effective = Mode.REDUCING  # the strategies close their positions first
        if effective is self._published_mode and not force:
            return
        self._published_mode = effective
        self.msgbus.publish(topic=STATE_TOPIC, msg=message)
        if self._risk_engine is not None and self._risk_engine.trading_state != TRADING_STATES[effective]:
            self._risk_engine.set_trading_state(TRADING_STATES[effective])

    def _take_resume_request(self, ts_ns: int) -> None:
        """An operator's `qa live resume` (a request file beside the state): resume, then delete it."""
        if not self.config.state_path:
            return
        request = Path(self.config.state_path + RESUME_REQUEST_SUFFIX)
        if not request.exists():
            return
        try:
            rules = json.loads(request.read_text(encoding="utf-8")).get("rules")
        except ValueError as error:
            self.log.error(f"resume request {request} is unreadable ({error}): ignored")
            request.unlink(missing_ok=True)
            return
        events = []
        for name in rules or [None]:
            if name is None or name in self.guard.rules:
                events += self.guard.resume_manually(ts_ns, name)
            else:
                self.log.error(f"resume request names no rule of this guard: {name!r}")
        request.unlink(missing_ok=True)
        self._handle(events)

    def _save(self) -> None:
        if self.guard is None or not self.config.state_path:
            return
        path = Path(self.config.state_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_text(json.dumps(self.guard.to_dict()), encoding="utf-8")
        os.replace(partial, path)  # atomic: a kill -9 leaves the old state or the new one

    def _safely(self, handler, *args) -> None:
        """Fail safe: a guard that cannot evaluate leaves the account unprotected, so an exception here
        halts trading (and is logged) instead of stopping the node."""
        try:
            handler(*args)
        except Exception as error:
            self.log.error(f"risk guard failed ({error!r}): halting trading")
            message = f"risk guard failed: {error!r}"
            if message not in self.plugin_errors:  # once per distinct error: it repeats every bar
                self.plugin_errors.append(message)
            if self._risk_engine is not None:
                self._risk_engine.set_trading_state(TradingState.HALTED)

    def _refuse(self, message: str) -> None:
        self.config_errors.append(message)
        self.log.error(message)
        stop_after_start(self, "config")
