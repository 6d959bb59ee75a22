"""A live node (`qa live run` child, Nautilus' Rust Bybit adapter) against the loopback Bybit venue for a
long stretch of catalog bars, with websocket drops and venue errors, measured from the outside.

Used by bench/bench_live_loopback.py (latency, reconnect time, memory) and by the slow soak test
(tests/integration/test_live_soak.py: no lost or duplicated order, the node's positions equal the venue's).

The measurements are taken in this harness, not in the venue: the running LoopbackBybit instance gets
thin wrappers (instance attributes, the class is untouched) around its connection close, auth, subscribe,
trade-op and order paths, so the venue records
- the wall time of every websocket drop and of each stream's first re-subscription / re-authentication
  after it (reconnect time = drop -> the node holds all three streams again: public kline subscribed,
  private order+execution subscribed, trade authenticated);
- every order request it received (orderLinkId, op, outcome code), rate-limited trade ops included.

Pacing: lockstep (the next bar waits until `quiet_ms` without order traffic) plus a reconnect gate: after a
drop the next bar waits until the node holds every stream again (a live 5-minute bar gap dwarfs a
reconnect), so a drop never makes the node miss bars; the gate gives up after `reconnect_gate_secs`.
Venue errors: every `error_every_bars` bars a one-shot fault is armed, alternating a rate limit (10006 on
the next signed request) and a forced rejection (110007 on the next order).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import statistics
import time
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from qa_engine.config.build import funding_plan
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.config.models import BybitEndpointsConfig
from qa_engine.config.models import LiveConfig
from qa_engine.config.models import LiveSettings
from qa_engine.config.models import OpsConfig
from qa_engine.errors import QAError
from qa_engine.live.child import live_child
from qa_engine.live.journal import JOURNAL_FILE
from qa_engine.live.journal import read_journal
from qa_engine.live.parity import venue_books

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "configs" / "backtest" / "default.toml"
START = datetime(2025, 1, 1, tzinfo=UTC)
BAR_MINUTES = 5
NODE_STOP_SECS = 30.0


@dataclass
class SoakSettings:
    bars: int = 2000
    catalog: Path = ROOT / "catalog"
    fast_ema: int = 3
    slow_ema: int = 8
    speed: str = "lockstep"
    quiet_ms: int = 20
    drop_every_bars: int | None = None  # websocket drops, all streams, after every N-th bar
    error_every_bars: int | None = (
        None  # one-shot venue error armed every N bars (10006 / 110007 alternating)
    )
    reconnect_gate_secs: float = 30.0
    rss_every_bars: int = 500
    timeout_secs: float = 3600.0
    stall_secs: float = 90.0  # fail when no bar is published for this long (a hung node or venue)
    log_level: str = "WARNING"
    ops: dict | None = None  # the live config's [ops] section (metrics, alerts), e.g. for bench_alerts.py
    env: dict | None = None  # more environment variables for the node (alert secrets)


@dataclass
class SoakReport:
    bars: int
    wall_secs: float
    latencies_ms: list[float]  # place_order requests: bar published -> order received (venue, wall)
    reconnects_ms: list[float]  # drop -> all three streams held again
    reconnect_first_ms: dict[str, list[float]]  # per stream: drop -> its first resubscription / auth
    reconnect_gate_timeouts: int
    drops: int
    rss_kib: list[tuple[int, int]]  # (bars published, child VmRSS KiB)
    venue_state: dict[str, Any]
    received: list[dict[str, Any]]  # every order request the venue got: {op, link, code, msg}
    journal: list[dict[str, Any]]
    summary: dict[str, Any]
    node_rc: int | None
    run_dir: Path
    faults: dict[str, int] = field(default_factory=dict)

    # --- derived figures ---------------------------------------------------------------------------

    def sent_orders(self) -> list[str]:
        return [
            r["client_order_id"] for r in self.journal if r["event"] == "order" and not r["reconciliation"]
        ]

    def order_accounting(self) -> dict[str, Any]:
        """Each journal order: reached the venue / rejected (reason) / denied by the node / lost."""
        reached = {r["link"] for r in self.received if r["op"] == "place_order"}
        rejected = {r["client_order_id"]: r["reason"] for r in self.journal if r["event"] == "rejected"}
        denied = {r["client_order_id"]: r["reason"] for r in self.journal if r["event"] == "denied"}
        out: dict[str, list[str]] = {"reached": [], "rejected_locally": [], "denied": [], "lost": []}
        for coid in self.sent_orders():
            if coid in reached:
                out["reached"].append(coid)
            elif rejected.get(coid):
                out["rejected_locally"].append(coid)
            elif denied.get(coid):
                out["denied"].append(coid)
            else:
                out["lost"].append(coid)
        return out

    def duplicated_links(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.received:
            if r["op"] == "place_order" and r["link"]:
                counts[r["link"]] = counts.get(r["link"], 0) + 1
        return {link: n for link, n in counts.items() if n > 1}

    def venue_errors(self) -> dict[str, int]:
        codes: dict[str, int] = {}
        for r in self.received:
            if r["code"] not in (0, None):
                codes[str(r["code"])] = codes.get(str(r["code"]), 0) + 1
        return codes

    def node_positions(self) -> dict[str, Decimal]:
        out = {}
        for instrument, qty in (self.summary.get("positions_open") or {}).items():
            if Decimal(qty) != 0:
                out[instrument.split("-")[0]] = Decimal(qty)
        return out

    def venue_positions(self) -> dict[str, Decimal]:
        return {
            symbol: Decimal(str(qty))
            for symbol, (qty, _entry) in self.venue_state["books"]["positions"].items()
            if Decimal(str(qty)) != 0
        }

    def rss_slope_kib_per_1000_bars(self) -> float | None:
        """Least-squares slope of VmRSS over the second half of the samples."""
        half = [s for s in self.rss_kib if s[0] >= self.bars / 2]
        if len(half) < 2:
            return None
        xs, ys = [s[0] for s in half], [s[1] for s in half]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        den = sum((x - mx) ** 2 for x in xs)
        return 1000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"n": len(ordered), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": ordered[-1]}


def soak_config(settings: SoakSettings) -> BacktestConfig:
    """configs/backtest/default.toml with short EMAs, over the first `bars` bars of January 2025."""
    end = START + timedelta(minutes=BAR_MINUTES * settings.bars)
    return load_config(
        BacktestConfig,
        DEFAULT_CONFIG,
        [
            f'data.catalog="{settings.catalog}"',
            f'data.end="{end.strftime("%Y-%m-%dT%H:%M:%SZ")}"',
            f"strategies.0.params.fast_ema_period={settings.fast_ema}",
            f"strategies.0.params.slow_ema_period={settings.slow_ema}",
            f'engine.log_level="{settings.log_level}"',
        ],
    )


def vm_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class _Probe:
    """Wrappers installed on the running LoopbackBybit (in its loop) that record what the brief measures."""

    def __init__(self, venue: Any, settings: SoakSettings) -> None:
        self.venue = venue
        self.settings = settings
        self.received: list[dict[str, Any]] = []
        self.drop_at: float | None = None  # perf_counter of the pending drop
        self.first_after: dict[str, float] = {}
        self.reconnects_ms: list[float] = []
        self.reconnect_first_ms: dict[str, list[float]] = {"public": [], "private": [], "trade": []}
        self.gate_timeouts = 0
        self.drops = 0
        self.bars_seen = 0
        self._install()

    def held(self) -> bool:
        public = private = trade = False
        for c in list(self.venue._connections):
            if c.socket.closed:
                continue
            if c.stream == "public" and any(t.startswith("kline.") for t in c.topics):
                public = True
            elif c.stream == "private" and c.authenticated and {"order", "execution"} <= c.topics:
                private = True
            elif c.stream == "trade" and c.authenticated:
                trade = True
        return public and private and trade

    def _after_connection_event(self, stream: str) -> None:
        if self.drop_at is None:
            return
        now = time.perf_counter()
        if stream not in self.first_after:
            self.first_after[stream] = now
            self.reconnect_first_ms[stream].append((now - self.drop_at) * 1e3)
        if self.held():
            self.reconnects_ms.append((now - self.drop_at) * 1e3)
            self.drop_at = None
            self.first_after = {}

    def _install(self) -> None:
        v = self.venue
        close, on_auth, on_sub = v._close_connections, v._on_auth, v._on_subscribe
        on_trade, order_request, wait_for_turn = v._on_trade_op, v.order_request, v._wait_for_turn
        publish = v._publish_group
        probe = self

        async def close_connections(stream, code=1006):
            closed = await close(stream, code)
            if stream == "all" and code == 1006 and closed:
                probe.drops += 1
                if probe.drop_at is None:
                    probe.drop_at = time.perf_counter()
                    probe.first_after = {}
            return closed

        async def auth(connection, args):
            await on_auth(connection, args)
            if connection.authenticated:
                probe._after_connection_event(connection.stream)

        async def subscribe(connection, op, body):
            await on_sub(connection, op, body)
            if op == "subscribe":
                probe._after_connection_event(connection.stream)

        async def trade_op(connection, op, body):
            args = body.get("args") or [{}]
            items = args[0].get("request", []) if op.endswith("-batch") else [args[0]]
            before = len(probe.received)
            for params in items:
                action = op.replace("order.", "").replace("-batch", "")
                probe.received.append(
                    {
                        "op": {"create": "place_order", "amend": "amend_order", "cancel": "cancel_order"}[
                            action
                        ],
                        "link": str(params.get("orderLinkId") or ""),
                        "code": None,
                        "msg": "",
                        "source": "ws",
                    }
                )
            rate_limited_before = v.faults.counts.get("rate_limit", 0)
            await on_trade(connection, op, body)
            if v.faults.counts.get("rate_limit", 0) > rate_limited_before:
                for record in probe.received[before : before + len(items)]:
                    if record["code"] is None:
                        record["code"], record["msg"] = 10006, "Too many visits!"

        async def order(action, params, source):
            code, msg, result = await order_request(action, params, source)
            link = str(params.get("orderLinkId") or "")
            for record in reversed(probe.received):
                if record["op"] == action and record["link"] == link and record["code"] is None:
                    record["code"], record["msg"] = code, msg
                    break
            else:  # REST order requests
                probe.received.append(
                    {"op": action, "link": link, "code": code, "msg": msg, "source": source}
                )
            return code, msg, result

        async def turn(previous_end_ms, end_ms):
            if probe.drop_at is not None:
                deadline = time.monotonic() + probe.settings.reconnect_gate_secs
                while probe.drop_at is not None and time.monotonic() < deadline:
                    await asyncio.sleep(0.002)
                if probe.drop_at is not None:
                    probe.gate_timeouts += 1
                    probe.drop_at = None
            await wait_for_turn(previous_end_ms, end_ms)

        async def publish_group(group):
            await publish(group)
            probe.bars_seen += 1
            every = probe.settings.error_every_bars
            if every and probe.bars_seen % every == 0:
                if (probe.bars_seen // every) % 2:
                    v.inject(_injection(rate_limit=1))
                else:
                    v.inject(_injection(insufficient_balance=1))

        v._close_connections = close_connections
        v._on_auth = auth
        v._on_subscribe = subscribe
        v._on_trade_op = trade_op
        v.order_request = order
        v._wait_for_turn = turn
        v._publish_group = publish_group


def _injection(**fields: int) -> Any:
    from qa_engine.live.venue.faults import FaultInjection

    return FaultInjection(**fields)


def _p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _task_state(task: Any) -> str:
    if task is None:
        return "missing"
    if not task.done():
        return "running"
    if task.cancelled():
        return "cancelled"
    return f"failed: {task.exception()!r}" if task.exception() else "finished"


def run_soak(settings: SoakSettings, run_dir: Path, *, progress: bool = False) -> SoakReport:
    from qa_engine.live.venue.faults import FaultConfig
    from qa_engine.live.venue.server import LoopbackBybitThread
    from qa_engine.live.venue.server import VenueConfig
    from qa_engine.live.venue.source import load_venue_data

    config = soak_config(settings)
    run_dir.mkdir(parents=True, exist_ok=True)
    live_dir = run_dir / "live"
    start_ns = int(config.data.start.timestamp() * 1e9)
    end_ns = int(config.data.end.timestamp() * 1e9)
    data = load_venue_data(config.data.catalog, ["BTCUSDT-LINEAR.BYBIT"], "5m", start_ns + 1, end_ns)
    bars = sum(len(rows) for rows in data.bars.values())
    books = venue_books(config, data, set(funding_plan(config).settled))
    api_key, api_secret = f"soak-{secrets.token_hex(4)}", secrets.token_hex(16)
    faults = FaultConfig(drop_every_bars=settings.drop_every_bars, drop_stream="all")
    venue_config = VenueConfig(
        api_key=api_key,
        api_secret=api_secret,
        speed=settings.speed,
        quiet_ms=settings.quiet_ms,
        faults=faults,
    )
    rss: list[tuple[int, int]] = []
    with LoopbackBybitThread(venue_config, data, books) as venue:
        running = venue.venue

        async def install() -> _Probe:
            return _Probe(running, settings)

        probe: _Probe = venue._call(install())
        live = LiveConfig.from_backtest(
            config,
            LiveSettings(
                environment="testnet",
                bybit=BybitEndpointsConfig(
                    http=venue.http_url,
                    ws_public=venue.ws_public_url,
                    ws_private=venue.ws_private_url,
                    ws_trade=venue.ws_trade_url,
                ),
                reconciliation_lookback_mins=None,
            ),
        )
        if settings.ops is not None:
            live = live.model_copy(update={"ops": OpsConfig.model_validate(settings.ops)})
        started = time.monotonic()
        last_published, last_progress = -1, time.monotonic()
        next_rss = 1  # first sample once the node runs (first bar published), then every rss_every_bars
        with live_child(live, run_dir, live_dir, api_key, api_secret, settings.env) as node:
            try:
                while not venue.done.wait(0.05):
                    published = running.counts.get("bars_published", 0)
                    if published >= next_rss:
                        kib = vm_rss_kib(node.pid)
                        if kib is not None:
                            rss.append((published, kib))
                            if progress:
                                print(
                                    f"  bars {published:5d}/{bars}  rss {kib / 1024:7.1f} MiB  "
                                    f"drops {probe.drops}  orders {len(probe.received)}  "
                                    f"reconnect p50 {_p50(probe.reconnects_ms):.0f} ms  "
                                    f"{time.monotonic() - started:6.1f}s",
                                    flush=True,
                                )
                        next_rss = (published // settings.rss_every_bars + 1) * settings.rss_every_bars
                    if published != last_published:
                        last_published, last_progress = published, time.monotonic()
                    elif time.monotonic() - last_progress > settings.stall_secs:
                        raise QAError(
                            f"stalled: no bar published for {settings.stall_secs:.0f} s at bar {published}; "
                            f"venue replay task {_task_state(running._replay)}, "
                            f"counts {dict(running.counts)}; "
                            f"see {run_dir}/live/nautilus.log"
                        )
                    if node.poll() is not None:
                        raise QAError(
                            f"the live node exited early (rc {node.returncode}); see {run_dir}/live.stdout"
                        )
                    if time.monotonic() - started > settings.timeout_secs:
                        raise QAError(f"the venue did not replay every bar in {settings.timeout_secs:.0f} s")
                time.sleep(max(1.0, 4 * settings.quiet_ms / 1000))  # the last bar's orders reach the venue
                kib = vm_rss_kib(node.pid)
                if kib is not None:
                    rss.append((bars, kib))
                wall = time.monotonic() - started
                # settle: the node's open-order check (10 s) catches up on anything a drop hid
                time.sleep(12.0)
                node.send_signal(signal.SIGTERM)
                node.wait(NODE_STOP_SECS)
            finally:
                if node.poll() is None:
                    node.kill()
                    node.wait()
        time.sleep(0.5)
        state = venue.state()
        latencies = [
            s.latency_ms for s in venue.latencies_ms() if s.op == "place_order" and s.latency_ms is not None
        ]

        async def harvest() -> tuple:
            return (
                list(probe.received),
                list(probe.reconnects_ms),
                dict(probe.reconnect_first_ms),
                probe.gate_timeouts,
                probe.drops,
            )

        received, reconnects, firsts, gate_timeouts, drops = venue._call(harvest())
    summary_path = live_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return SoakReport(
        bars=bars,
        wall_secs=wall,
        latencies_ms=latencies,
        reconnects_ms=reconnects,
        reconnect_first_ms=firsts,
        reconnect_gate_timeouts=gate_timeouts,
        drops=drops,
        rss_kib=rss,
        venue_state=state,
        received=received,
        journal=read_journal(live_dir / JOURNAL_FILE),
        summary=summary,
        node_rc=node.returncode,
        run_dir=run_dir,
        faults=dict(state["faults"]),
    )


def print_report(report: SoakReport) -> None:
    lat = percentiles(report.latencies_ms)
    rec = percentiles(report.reconnects_ms)
    accounting = report.order_accounting()
    counts = report.venue_state["counts"]
    print(
        f"bars replayed                 {report.bars:,} in {report.wall_secs:.1f} s wall "
        f"({report.bars / report.wall_secs:,.0f} bars/s)"
    )
    print(f"node exit code                {report.node_rc}")
    if lat:
        print(
            f"bar close -> order at venue   n={lat['n']} p50={lat['p50']:.2f} p90={lat['p90']:.2f} "
            f"p99={lat['p99']:.2f} max={lat['max']:.2f} ms (target p99 < 10 ms)"
        )
    print(
        f"websocket drops (all streams) {report.drops}  "
        f"reconnect gate timeouts {report.reconnect_gate_timeouts}"
    )
    if rec:
        print(
            f"reconnect, drop -> all held   n={rec['n']} p50={rec['p50']:.0f} p90={rec['p90']:.0f} "
            f"p99={rec['p99']:.0f} max={rec['max']:.0f} ms"
        )
    for stream, values in report.reconnect_first_ms.items():
        p = percentiles(values)
        if p:
            print(
                f"  first {stream:8s} re-sub/auth  n={p['n']} p50={p['p50']:.0f} p99={p['p99']:.0f} "
                f"max={p['max']:.0f} ms"
            )
    print(f"venue faults                  {report.faults}")
    print(f"venue error replies by code   {report.venue_errors()}")
    print(
        f"order requests at venue       place={counts.get('place_order_requests', 0)} "
        f"placed={counts.get('orders_placed', 0)} rejected={counts.get('orders_rejected', 0)} "
        f"fills={counts.get('fills', 0)}  (harness saw {len(report.received)} trade/order requests)"
    )
    print(
        f"journal orders sent           {len(report.sent_orders())}: reached venue "
        f"{len(accounting['reached'])}, rejected locally {len(accounting['rejected_locally'])}, "
        f"denied {len(accounting['denied'])}, lost {len(accounting['lost'])}"
    )
    print(f"duplicated orderLinkIds       {len(report.duplicated_links())}")
    print(f"positions node / venue        {report.node_positions()} / {report.venue_positions()}")
    if report.rss_kib:
        slope = report.rss_slope_kib_per_1000_bars()
        first, last = report.rss_kib[0], report.rss_kib[-1]
        print(
            f"node RSS                      start {first[1] / 1024:.1f} MiB (bar {first[0]}), "
            f"end {last[1] / 1024:.1f} MiB (bar {last[0]}); slope over 2nd half "
            f"{'n/a' if slope is None else f'{slope:+.1f}'} KiB / 1000 bars"
        )
        print("  samples (bars: MiB)         " + ", ".join(f"{b}: {k / 1024:.1f}" for b, k in report.rss_kib))
