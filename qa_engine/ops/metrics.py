"""Prometheus metrics of a live or paper node (prometheus-client), on their own registry.

`NodeMetrics` owns the metric objects; the operations actor (actors/operations.py) sets them from the
node's events. `METRICS` is the list the Grafana dashboard (ops/grafana/quantum-alpha.json) may use: a test
checks that every query there names one of them and that the endpoint exports each.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram

# bar close (as received) -> order created; most orders follow a bar within milliseconds
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
INFERENCE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
GUARD_MODE_VALUES = {"active": 0, "reduced": 1, "reducing": 2, "halted": 3}


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.info = Gauge(
            "qa_node_info", "the run (value 1)", ["run_id", "environment", "execution"], registry=r
        )
        self.equity = Gauge(
            "qa_equity", "balance + unrealised PnL at the last bar closes", ["currency"], registry=r
        )
        self.balance = Gauge(
            "qa_balance",
            "account balance: total, free (not locked as margin)",
            ["currency", "kind"],
            registry=r,
        )
        self.position = Gauge(
            "qa_position_quantity", "net position (base units, < 0 short)", ["instrument"], registry=r
        )
        self.realized_pnl = Gauge(
            "qa_realized_pnl", "realised PnL of the run's positions, after fees", ["currency"], registry=r
        )
        self.unrealized_pnl = Gauge(
            "qa_unrealized_pnl", "unrealised PnL at the last bar closes", ["currency"], registry=r
        )
        self.funding = Gauge(
            "qa_funding", "funding settled during the run (> 0: received)", ["currency"], registry=r
        )
        self.orders = Counter("qa_orders", "order events by kind", ["event"], registry=r)
        self.fills = Counter("qa_fills", "fills", ["instrument", "side"], registry=r)
        self.latency = Histogram(
            "qa_bar_to_order_latency_seconds",
            "bar received -> order created (the strategy's reaction time)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reconnects = Counter(
            "qa_ws_reconnects", "websocket reconnections", ["client", "stream"], registry=r
        )
        self.ws_up = Gauge("qa_ws_connected", "1: the websocket is up", ["client", "stream"], registry=r)
        self.guard_mode = Gauge(
            "qa_kill_switch_mode", "risk guard: 0 active, 1 reduced, 2 reducing, 3 halted", registry=r
        )
        self.guard_fired = Gauge("qa_kill_switch_fired", "1: the rule has fired", ["rule"], registry=r)
        self.guard_triggers = Counter("qa_kill_switch_triggers", "kill-switch triggers", ["rule"], registry=r)
        self.inference = Histogram(
            "qa_model_inference_seconds",
            "one model call",
            ["model"],
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.bars = Counter("qa_bars", "bars received", ["bar_type"], registry=r)
        self.bars_behind = Gauge(
            "qa_bars_behind_venue_clock",
            "whole bar intervals between the venue clock and the last bar's close, less the bar being formed",
            ["bar_type"],
            registry=r,
        )
        self.venue_clock_offset = Gauge(
            "qa_venue_clock_offset_seconds", "venue server time - this machine's clock", registry=r
        )
        self.alerts = Counter(
            "qa_alerts", "alerts by channel and outcome", ["channel", "outcome"], registry=r
        )


# The series the endpoint exports (counters with their _total suffix, histograms with their parts).
METRICS: tuple[str, ...] = (
    "qa_node_info",
    "qa_equity",
    "qa_balance",
    "qa_position_quantity",
    "qa_realized_pnl",
    "qa_unrealized_pnl",
    "qa_funding",
    "qa_orders_total",
    "qa_fills_total",
    "qa_bar_to_order_latency_seconds_bucket",
    "qa_bar_to_order_latency_seconds_sum",
    "qa_bar_to_order_latency_seconds_count",
    "qa_ws_reconnects_total",
    "qa_ws_connected",
    "qa_kill_switch_mode",
    "qa_kill_switch_fired",
    "qa_kill_switch_triggers_total",
    "qa_model_inference_seconds_bucket",
    "qa_model_inference_seconds_sum",
    "qa_model_inference_seconds_count",
    "qa_bars_total",
    "qa_bars_behind_venue_clock",
    "qa_venue_clock_offset_seconds",
    "qa_alerts_total",
)
