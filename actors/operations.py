"""`OperationsActor`: what a live or paper node tells the people watching it (the pure parts, alerts,
metrics, logs and summaries, are in qa_engine/ops/).

The live node adds it to every run (qa_engine/live/node.py); it reads the bus and never trades:
- structured logs: one JSON line per order lifecycle event (and per kill-switch event, websocket drop,
  start and stop) in `events.jsonl` of the run folder, with the run id, strategy and instrument bound and
  every secret value redacted (qa_engine/ops/logs.py);
- Prometheus metrics (`[ops.metrics]`, qa_engine/ops/metrics.py) on http://host:port/metrics; the URL is
  written to `metrics.json` in the run folder (useful with port 0);
- alerts (`[ops.alerts]`, qa_engine/ops/alerts.py): fills, kill-switch triggers and resumes, websocket
  drops and reconnections, order errors, a daily summary (00:00 UTC) and one when the node stops.

Everything it does on the trading loop is a counter update, a dict lookup or a queue put; sending happens on
the alert dispatcher's thread, serving metrics on prometheus-client's thread, the venue clock poll on a
thread of its own. An exception in any handler is logged once per kind and swallowed: operations must never
stop trading.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import order_side_to_str
from nautilus_trader.model.enums import order_type_to_str
from nautilus_trader.model.events import OrderCancelRejected
from nautilus_trader.model.events import OrderDenied
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.events import OrderInitialized
from nautilus_trader.model.events import OrderModifyRejected
from nautilus_trader.model.events import OrderRejected
from nautilus_trader.model.events import OrderUpdated
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Currency

from qa_engine.backtest.funding import FUNDING_TOPIC
from qa_engine.live.clients import CONNECTION_TOPIC
from qa_engine.ops.logs import event_logger
from qa_engine.ops.logs import secret_values
from qa_engine.ops.metrics import GUARD_MODE_VALUES
from qa_engine.ops.summary import event_name
from qa_engine.ops.summary import next_summary_ns
from qa_engine.ops.summary import summary_text
from qa_engine.risk.equity import open_pnl
from qa_engine.risk.kill_switches import EVENT_TOPIC
from qa_engine.risk.kill_switches import STATE_TOPIC
from qa_engine.signals import INFERENCE_TOPIC

NANOS = 1_000_000_000
ERROR_EVENTS = (OrderRejected, OrderDenied, OrderCancelRejected, OrderModifyRejected)
METRICS_FILE = "metrics.json"
EVENTS_FILE = "events.jsonl"


class OperationsActorConfig(ActorConfig, frozen=True):
    run_id: str
    run_dir: str
    environment: str = "testnet"
    execution: str = "bybit"
    venue: str = "BYBIT"
    currency: str = "USDT"
    bar_types: tuple[str, ...] = ()
    json_logs: bool = True
    metrics_host: str | None = None  # None: no metrics endpoint
    metrics_port: int = 0
    alerts: str | None = None  # qa_engine.config.models.AlertsConfig as JSON; None: no alerts
    secret_env: tuple[str, ...] = ()  # environment variables whose values never appear in a log or alert
    venue_time_url: str | None = None  # Bybit GET /v5/market/time, for the venue clock
    venue_time_every_secs: float = 30.0
    daily_summary_utc_hour: int = 0


class OperationsActor(Actor):
    def __init__(self, config: OperationsActorConfig) -> None:
        super().__init__(config)
        self.metrics = None
        self.dispatcher = None
        self._alert_kinds: set[str] = set()
        self._events = None
        self._events_stream = None
        self._server = None
        self._venue = Venue(config.venue)
        self._currency = Currency.from_str(config.currency)
        self._bar_types = [BarType.from_str(text) for text in config.bar_types]
        self._last_bar: dict[BarType, Bar] = {}
        self._bar_received_ns: dict[str, int] = {}  # instrument -> node clock when its last bar arrived
        self._closes: dict[str, Decimal] = {}
        self._venue_offset_ns: int | None = None if config.venue_time_url else 0
        self._poll_stop = threading.Event()
        self._errors_reported: set[str] = set()
        self._subscribed = False
        self._balance_at_start: Decimal | None = None
        self._funding = Decimal(0)
        self._guard = {"mode": "active", "fired": []}
        self._counts = {"orders": 0, "fills": 0, "errors": 0, "reconnects": 0}
        self._period_start: dict[str, Any] | None = None
        self._alert_stats_seen: dict[tuple[str, str], int] = {}
        self._handlers: list = []

    # --- lifecycle -----------------------------------------------------------------------------------

    def on_start(self) -> None:
        if self._subscribed:  # started again after a stop: still subscribed
            return
        config = self.config
        run_dir = Path(config.run_dir)
        secrets = secret_values(config.secret_env)
        if config.json_logs:
            self._events, self._events_stream = event_logger(
                run_dir / EVENTS_FILE, secrets, run_id=config.run_id
            )
        if config.metrics_host is not None:
            self._start_metrics(run_dir)
        if config.alerts is not None:
            self._start_alerts(json.loads(config.alerts))
        # Subscribed on the bus directly, until dispose (as the order journal): a strategy's on-stop cancels
        # and flatten fills come after the actors have stopped.
        self._handlers = [
            ("events.order.*", self._guarded(self._on_order_event)),
            ("events.position.*", self._guarded(self._on_position_event)),
            ("events.account.*", self._guarded(self._on_account_event)),
            (EVENT_TOPIC, self._guarded(self._on_guard_event)),
            (STATE_TOPIC, self._guarded(self._on_guard_state)),
            (CONNECTION_TOPIC, self._guarded(self._on_connection)),
            (INFERENCE_TOPIC, self._guarded(self._on_inference)),
            (f"{FUNDING_TOPIC}.*", self._guarded(self._on_funding)),
        ]
        for topic, handler in self._handlers:
            self.msgbus.subscribe(topic=topic, handler=handler)
        self._subscribed = True
        for bar_type in self._bar_types:
            self.subscribe_bars(bar_type)
        self.clock.set_timer("qa-ops-tick", timedelta(seconds=1), callback=self._guarded(self._tick))
        self._arm_daily_summary()
        if config.venue_time_url:
            threading.Thread(target=self._poll_venue_clock, name="qa-venue-clock", daemon=True).start()
        self._update_account()
        self._period_start = self._snapshot()
        self._log("node.start", environment=config.environment, execution=config.execution)

    def on_stop(self) -> None:
        for name in ("qa-ops-tick", "qa-ops-daily"):
            if name in self.clock.timer_names:
                self.clock.cancel_timer(name)
        self._tick(None)
        state = self._snapshot()
        self._log("node.stop", **{k: v for k, v in state.items() if k not in ("since",)})
        if "daily_summary" in self._alert_kinds:
            self._alert("daily_summary", f"{self.config.run_id} stopped", summary_text(state), key="stop")

    def on_dispose(self) -> None:
        self._poll_stop.set()
        if self._subscribed:
            for topic, handler in self._handlers:
                self.msgbus.unsubscribe(topic=topic, handler=handler)
            self._subscribed = False
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self._count_alerts()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._events_stream is not None:
            self._events_stream.close()
            self._events_stream = None

    # --- set-up --------------------------------------------------------------------------------------

    def _start_metrics(self, run_dir: Path) -> None:
        from prometheus_client import start_http_server

        from qa_engine.ops.metrics import NodeMetrics

        self.metrics = NodeMetrics()
        config = self.config
        self._server, _thread = start_http_server(
            config.metrics_port, config.metrics_host, self.metrics.registry
        )
        port = self._server.server_port
        url = f"http://{config.metrics_host}:{port}/metrics"
        (run_dir / METRICS_FILE).write_text(json.dumps({"url": url, "port": port}) + "\n")
        self.metrics.info.labels(config.run_id, config.environment, config.execution).set(1)
        self.metrics.guard_mode.set(0)
        self.metrics.funding.labels(config.currency).set(0)
        self.log.info(f"metrics on {url}")

    def _start_alerts(self, settings: dict[str, Any]) -> None:
        from qa_engine.ops.alerts import dispatcher_from_settings

        self.dispatcher = dispatcher_from_settings(settings)
        self._alert_kinds = set(settings.get("events", []))
        self.dispatcher.start()

    def _guarded(self, handler):
        """The handler, with any exception logged once per handler and swallowed."""

        def safe(*args):
            try:
                handler(*args)
            except Exception as error:
                name = getattr(handler, "__name__", "handler")
                if name not in self._errors_reported:
                    self._errors_reported.add(name)
                    self.log.error(f"operations {name} failed (reported once, trading goes on): {error!r}")

        safe.__name__ = getattr(handler, "__name__", "handler")
        return safe

    # --- events --------------------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> None:
        instrument = bar.bar_type.instrument_id.value
        self._last_bar[bar.bar_type] = bar
        self._closes[instrument] = bar.close.as_decimal()
        self._bar_received_ns[instrument] = self.clock.timestamp_ns()
        if self.metrics is not None:
            self.metrics.bars.labels(str(bar.bar_type)).inc()
            self._update_equity()

    def _on_order_event(self, event) -> None:
        kind = event_name(event)
        self._counts["orders"] += kind == "initialized"
        if self.metrics is not None:
            self.metrics.orders.labels(kind).inc()
        details: dict[str, Any] = {}
        if isinstance(event, OrderInitialized):
            details = {
                "side": order_side_to_str(event.side),
                "type": order_type_to_str(event.order_type),
                "quantity": str(event.quantity),
                "price": event.options.get("price"),
                "reduce_only": event.reduce_only,
                "tags": event.tags,
            }
            self._observe_latency(event)
        elif isinstance(event, OrderFilled):
            details = {
                "side": order_side_to_str(event.order_side),
                "quantity": str(event.last_qty),
                "price": str(event.last_px),
                "commission": str(event.commission),
                "trade_id": event.trade_id.value,
            }
            self._on_fill(event)
        elif isinstance(event, ERROR_EVENTS):
            details = {"reason": event.reason}
            self._on_order_error(event, kind)
        elif isinstance(event, OrderUpdated):
            details = {"quantity": str(event.quantity), "price": str(event.price) if event.price else None}
        venue_order_id = getattr(event, "venue_order_id", None)
        self._log(
            f"order.{kind}",
            strategy_id=event.strategy_id.value,
            instrument_id=event.instrument_id.value,
            client_order_id=event.client_order_id.value,
            venue_order_id=venue_order_id.value if venue_order_id is not None else None,
            ts_event=event.ts_event,
            **details,
        )

    def _observe_latency(self, event: OrderInitialized) -> None:
        received = self._bar_received_ns.get(event.instrument_id.value)
        if self.metrics is None or received is None or event.ts_init < received:
            return
        self.metrics.latency.observe((event.ts_init - received) / NANOS)

    def _on_fill(self, event: OrderFilled) -> None:
        self._counts["fills"] += 1
        if self.metrics is not None:
            side = order_side_to_str(event.order_side)
            self.metrics.fills.labels(event.instrument_id.value, side).inc()
        if "fills" in self._alert_kinds:
            what = f"{order_side_to_str(event.order_side)} {event.last_qty} {event.instrument_id}"
            text = f"{what} @ {event.last_px}, fee {event.commission} ({event.strategy_id})"
            self._alert("fills", f"fill: {what} @ {event.last_px}", text, key=f"fill:{event.trade_id}")

    def _on_order_error(self, event, kind: str) -> None:
        self._counts["errors"] += 1
        if "errors" in self._alert_kinds:
            self._alert(
                "errors",
                f"order {kind.replace('_', ' ')}: {event.reason}",
                f"{event.client_order_id} {event.instrument_id} ({event.strategy_id})",
                key=f"error:{kind}:{event.reason}",
                severity="warning",
            )

    def _on_position_event(self, event) -> None:
        if self.metrics is None:
            return
        instrument = event.instrument_id
        net = sum(
            (p.signed_decimal_qty() for p in self.cache.positions_open(instrument_id=instrument)), Decimal(0)
        )
        self.metrics.position.labels(instrument.value).set(float(net))
        self._update_equity()

    def _on_account_event(self, event) -> None:
        self._update_account()

    def _on_guard_event(self, event) -> None:
        self._log(
            f"risk.{event.kind}",
            rule=event.rule,
            action=event.action,
            value=event.value,
            threshold=event.threshold,
            message=event.message,
        )
        if self.metrics is not None and event.kind == "trigger":
            self.metrics.guard_triggers.labels(event.rule).inc()
        if "risk" in self._alert_kinds:
            severe = event.kind == "trigger" and event.action in ("halt", "flatten")
            self._alert(
                "risk",
                f"kill switch {event.rule}: {event.kind} ({event.action})",
                event.message,
                key=f"risk:{event.rule}:{event.kind}:{event.ts_ns}",
                severity="critical" if severe else "warning",
            )

    def _on_guard_state(self, message: dict[str, Any]) -> None:
        self._guard = {"mode": message.get("mode", "active"), "fired": list(message.get("fired", []))}
        if self.metrics is not None:
            self.metrics.guard_mode.set(GUARD_MODE_VALUES.get(self._guard["mode"], -1))
            for rule in self._guard["fired"]:
                self.metrics.guard_fired.labels(rule).set(1)
            for labels in list(self.metrics.guard_fired._metrics):  # rules that fired earlier
                if labels[0] not in self._guard["fired"]:
                    self.metrics.guard_fired.labels(*labels).set(0)

    def _on_connection(self, event) -> None:
        up = event.state == "up"
        if up:
            self._counts["reconnects"] += 1
        self._log(
            f"websocket.{event.state}", client=event.client, stream=event.stream, down_secs=event.down_secs
        )
        if self.metrics is not None:
            self.metrics.ws_up.labels(event.client, event.stream).set(1 if up else 0)
            if up:
                self.metrics.reconnects.labels(event.client, event.stream).inc()
        if "connection" in self._alert_kinds:
            title = f"{event.client} {event.stream} websocket " + ("back" if up else "down")
            text = f"reconnected after {event.down_secs:.1f} s" if up else "reconnecting (Nautilus retries)"
            self._alert("connection", title, text, severity="info" if up else "warning")

    def _on_inference(self, timing) -> None:
        if self.metrics is not None:
            self.metrics.inference.labels(timing.model_id).observe(timing.secs)

    def _on_funding(self, payment) -> None:
        self._funding += payment.amount
        self._log(
            "funding", instrument_id=payment.instrument_id, amount=str(payment.amount), rate=str(payment.rate)
        )
        if self.metrics is not None:
            self.metrics.funding.labels(self.config.currency).set(float(self._funding))

    # --- state ---------------------------------------------------------------------------------------

    def _balances(self) -> tuple[Decimal | None, Decimal | None]:
        account = self.portfolio.account(self._venue)
        if account is None:
            return None, None
        total, free = account.balance_total(self._currency), account.balance_free(self._currency)
        return (
            total.as_decimal() if total is not None else None,
            free.as_decimal() if free is not None else None,
        )

    def _unrealized(self) -> Decimal:
        return open_pnl(self.cache.positions_open(venue=self._venue), self._closes)

    def equity(self) -> Decimal:
        total, _free = self._balances()
        return ((total or Decimal(0)) + self._unrealized()).quantize(Decimal("1e-8"))

    def realized(self) -> Decimal:
        """Balance change since start, less funding: realised PnL after fees (on Bybit execution 1.231 sends
        no funding events, so funding stays in this figure there; paper runs separate it)."""
        total, _free = self._balances()
        if total is None or self._balance_at_start is None:
            return Decimal(0)
        return total - self._balance_at_start - self._funding

    def _update_account(self) -> None:
        total, free = self._balances()
        if total is not None and self._balance_at_start is None:
            self._balance_at_start = total
        if self.metrics is None or total is None:
            return
        currency = self.config.currency
        self.metrics.balance.labels(currency, "total").set(float(total))
        if free is not None:
            self.metrics.balance.labels(currency, "free").set(float(free))
        self.metrics.realized_pnl.labels(currency).set(float(self.realized()))
        self._update_equity()

    def _update_equity(self) -> None:
        currency = self.config.currency
        self.metrics.equity.labels(currency).set(float(self.equity()))
        self.metrics.unrealized_pnl.labels(currency).set(float(self._unrealized()))

    def _snapshot(self) -> dict[str, Any]:
        positions: dict[str, Decimal] = {}
        for position in self.cache.positions_open(venue=self._venue):
            key = position.instrument_id.value
            positions[key] = positions.get(key, Decimal(0)) + position.signed_decimal_qty()
        start = self._period_start or {}
        equity = float(self.equity())
        return {
            "since": start.get(
                "at", datetime.fromtimestamp(self.clock.timestamp(), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
            ),
            "at": datetime.fromtimestamp(self.clock.timestamp(), tz=UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "currency": self.config.currency,
            "equity": equity,
            "equity_at_start": start.get("equity", equity),
            "realized": float(self.realized()),
            "funding": float(self._funding),
            "positions": {k: str(v) for k, v in positions.items() if v != 0},
            "guard_mode": self._guard["mode"],
            "fired": self._guard["fired"],
            **{k: v - start.get(k, 0) for k, v in self._counts.items()},
        }

    # --- periodic ------------------------------------------------------------------------------------

    def _tick(self, _event) -> None:
        if self.metrics is None:
            return
        offset = self._venue_offset_ns
        if offset is not None:
            venue_now = self.clock.timestamp_ns() + offset
            for bar_type, bar in self._last_bar.items():
                interval = bar_type.spec.timedelta.total_seconds() * NANOS
                behind = max(0, int((venue_now - bar.ts_event) // interval)) if interval else 0
                self.metrics.bars_behind.labels(str(bar_type)).set(behind)
        self._count_alerts()

    def _count_alerts(self) -> None:
        if self.metrics is None or self.dispatcher is None:
            return
        for channel, stats in self.dispatcher.stats.items():
            for outcome in ("sent", "failed", "rate_limited", "overflow", "retries"):
                value = getattr(stats, outcome)
                seen = self._alert_stats_seen.get((channel, outcome), 0)
                if value > seen:
                    self.metrics.alerts.labels(channel, outcome).inc(value - seen)
                    self._alert_stats_seen[(channel, outcome)] = value
                elif (channel, outcome) not in self._alert_stats_seen:
                    self.metrics.alerts.labels(channel, outcome).inc(0)
                    self._alert_stats_seen[(channel, outcome)] = 0

    def _arm_daily_summary(self) -> None:
        at = next_summary_ns(self.clock.timestamp_ns(), self.config.daily_summary_utc_hour)
        self.clock.set_time_alert_ns("qa-ops-daily", at, callback=self._guarded(self._daily_summary))

    def _daily_summary(self, _event) -> None:
        state = self._snapshot()
        self._log("summary.daily", **state)
        if "daily_summary" in self._alert_kinds:
            self._alert(
                "daily_summary",
                f"{self.config.run_id} daily summary {state['at'][:10]}",
                summary_text(state),
                key=f"daily:{state['at']}",
            )
        self._period_start = {**state, "at": state["at"], "equity": state["equity"], **self._counts}
        self._arm_daily_summary()

    def _poll_venue_clock(self) -> None:
        import httpx

        url = self.config.venue_time_url
        with httpx.Client(timeout=5.0) as client:
            while not self._poll_stop.is_set():
                try:
                    before = time.time_ns()
                    body = client.get(url).json()
                    after = time.time_ns()
                    server_ns = int(body["result"]["timeNano"])
                    self._venue_offset_ns = server_ns - (before + after) // 2
                    if self.metrics is not None:
                        self.metrics.venue_clock_offset.set(self._venue_offset_ns / NANOS)
                except Exception as error:  # keep the last offset; say so once
                    if "venue_clock" not in self._errors_reported:
                        self._errors_reported.add("venue_clock")
                        self.log.warning(
                            f"venue clock poll failed ({type(error).__name__}); keeping the last offset"
                        )
                self._poll_stop.wait(self.config.venue_time_every_secs)

    # --- output --------------------------------------------------------------------------------------

    def _log(self, event: str, **fields: Any) -> None:
        if self._events is not None:
            self._events.info(event, **fields)

    def _alert(
        self, kind: str, title: str, text: str, key: str | None = None, severity: str = "info"
    ) -> None:
        from qa_engine.ops.alerts import Alert

        if self.dispatcher is not None:
            self.dispatcher.submit(Alert(kind, f"{self.config.run_id}: {title}", text, key, severity))
