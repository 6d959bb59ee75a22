"""A loopback Bybit v5 exchange on 127.0.0.1: REST, public/private/trade websockets, a bar clock that
replays catalog bars, and fault injection. Nautilus' own Bybit adapter connects to it unmodified.

Use it from asyncio (`await LoopbackBybit(...).start()` / `.stop()`) or from plain code / tests:

    with LoopbackBybitThread(VenueConfig(api_key=..., api_secret=...), data, books) as venue:
        venue.http_url, venue.ws_public_url, venue.ws_private_url, venue.ws_trade_url
        venue.begin()             # or the first kline subscription starts the replay (start_on)
        venue.done.wait(60)       # every bar replayed
        venue.state(); venue.inject(rate_limit=1); venue.latencies_ms()

At each bar group (every symbol's bar closing at the same time): books.on_bar(bar) for each bar first
(fills of resting orders, funding, liquidations happen AT the bar, before the strategy sees it, as in
the backtest), the resulting private events are pushed, then the confirmed klines are published. An order
arriving after bar T was published trades at T's close. For each order request the venue records the
wall time (perf_counter_ns) the bar it followed was published and the time the request arrived:
`latencies_ms()` is "bar close at the venue -> order received by the venue".

Admin (no auth; loopback only): POST /admin/faults (FaultInjection JSON), GET /admin/state,
POST /admin/drop?stream=public|private|trade|all, POST /admin/restart?refuse_ms=N, POST /admin/begin.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

import structlog
from aiohttp import WSMsgType
from aiohttp import web
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import SecretStr
from pydantic import field_validator

from qa_engine.live.venue.auth import check_ws_auth
from qa_engine.live.venue.auth import wall_ms
from qa_engine.live.venue.clock import BarGroup
from qa_engine.live.venue.clock import bar_groups
from qa_engine.live.venue.clock import parse_pacing
from qa_engine.live.venue.faults import RATE_LIMIT
from qa_engine.live.venue.faults import FaultConfig
from qa_engine.live.venue.faults import FaultInjection
from qa_engine.live.venue.faults import FaultSchedule
from qa_engine.live.venue.faults import Stream
from qa_engine.live.venue.rest import RestRoutes
from qa_engine.live.venue.source import VenueData

log = structlog.get_logger(__name__)

StreamName = Literal["public", "private", "trade"]
PATHS: dict[StreamName, str] = {"public": "/v5/public/linear", "private": "/v5/private", "trade": "/v5/trade"}
TRADE_OPS = {"order.create": "place_order", "order.amend": "amend_order", "order.cancel": "cancel_order"}
BATCH_OPS = {
    "order.create-batch": "place_order",
    "order.amend-batch": "amend_order",
    "order.cancel-batch": "cancel_order",
}
SHUTDOWN_SECS = 1.5


class VenueConfig(BaseModel):
    """How one loopback venue runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: str = Field(min_length=1, description="the only API key the venue accepts")
    api_secret: SecretStr = Field(description="its secret (HMAC key)")
    host: str = Field(default="127.0.0.1", description="listen address")
    port: int = Field(default=0, ge=0, le=65_535, description="listen port; 0 = any free port")
    speed: str = Field(
        default="max", description="bar pacing: '<N>x' (simulated secs per real sec), max, lockstep"
    )
    quiet_ms: int = Field(
        default=30, ge=0, description="lockstep: publish after this long without order traffic"
    )
    start_on: Literal["subscribe", "immediately", "manual"] = Field(
        default="subscribe",
        description="start the replay at the first kline subscription, at start(), or at begin() only",
    )
    faults: FaultConfig = Field(default_factory=FaultConfig, description="standing faults")

    @field_validator("speed")
    @classmethod
    def _speed_parses(cls, value: str) -> str:
        parse_pacing(value)
        return value


@dataclass(eq=False)
class Connection:
    stream: StreamName
    socket: web.WebSocketResponse
    conn_id: str
    authenticated: bool = False
    topics: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class LatencySample:
    op: str
    source: str  # "rest" or "ws"
    symbol: str
    bar_end_ms: int | None  # close time of the last bar published before the request (None: before any)
    latency_ms: float | None  # bar published -> request received, wall clock


class LoopbackBybit:
    """The running venue (asyncio). `books` is a VenueBooks (qa_engine.live.venue.books)."""

    def __init__(self, config: VenueConfig, data: VenueData, books: Any) -> None:
        self.config = config
        self.api_key = config.api_key
        self.api_secret = config.api_secret.get_secret_value()
        self.books = books
        self.instruments = data.instruments
        self.funding_rates = data.funding_rates
        self.interval = data.interval
        self.pacing = parse_pacing(config.speed)
        self.faults = FaultSchedule(config.faults)
        self.counts: Counter[str] = Counter()
        self.simulated_ms: int | None = None  # close time of the last published bar group
        self.simulated_at = 0.0  # ... published at this time.monotonic()
        self._groups = bar_groups(data.bars)
        self._published: dict[str, list[Any]] = {entry["symbol"]: [] for entry in data.instruments}
        self._published_ns: dict[str, tuple[int, int]] = {}  # symbol -> (bar end ms, perf_counter_ns)
        self._latencies: list[LatencySample] = []
        self._connections: set[Connection] = set()
        self._conn_ids = itertools.count(1)
        self._refuse_until = 0.0
        self._inflight = 0
        self._last_activity = time.monotonic()
        self._begin = asyncio.Event()
        self.done = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._replay: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def ws_url(self, stream: StreamName) -> str:
        return f"ws://{self.config.host}:{self.port}{PATHS[stream]}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._refuse_middleware])
        RestRoutes(self).add_to(app)
        for stream, path in PATHS.items():
            app.router.add_get(path, self._ws_handler(stream))
        app.router.add_post("/admin/faults", self._admin_faults)
        app.router.add_get("/admin/state", self._admin_state)
        app.router.add_post("/admin/drop", self._admin_drop)
        app.router.add_post("/admin/restart", self._admin_restart)
        app.router.add_post("/admin/begin", self._admin_begin)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._replay = asyncio.create_task(self._replay_bars())
        if self.config.start_on == "immediately":
            self.begin()
        log.info("venue_started", http_url=self.http_url, bars=sum(len(g.bars) for g in self._groups))

    def begin(self) -> None:
        """Start the replay (no-op when it runs)."""
        self._begin.set()

    async def stop(self) -> None:
        """Close every connection and the server; bounded (about SHUTDOWN_SECS)."""
        if self._replay is not None:
            self._replay.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self._close_connections("all", code=1001)
        if self._runner is not None:
            try:
                await asyncio.wait_for(self._runner.cleanup(), SHUTDOWN_SECS)
            except TimeoutError:
                log.warning("venue_shutdown_timeout", secs=SHUTDOWN_SECS)
            self._runner = None

    # --- bar replay -------------------------------------------------------------------------------

    async def _replay_bars(self) -> None:
        await self._begin.wait()
        previous: int | None = None
        for index, group in enumerate(self._groups, start=1):
            await self._wait_for_turn(previous, group.end_ms)
            await self._publish_group(group)
            previous = group.end_ms
            bar_faults = self.faults.after_bar(index)
            if bar_faults.restart:
                await self.restart(self.config.faults.restart_refuse_ms)
            elif bar_faults.drop is not None:
                await self._close_connections(bar_faults.drop)
        self.done.set()
        log.info("venue_replay_done", bar_groups=len(self._groups))

    async def _wait_for_turn(self, previous_end_ms: int | None, end_ms: int) -> None:
        if self.pacing.mode == "lockstep":
            quiet = self.config.quiet_ms / 1_000
            while self._inflight or time.monotonic() - self._last_activity < quiet:
                await asyncio.sleep(0.002)
        else:
            await asyncio.sleep(self.pacing.delay_secs(previous_end_ms, end_ms))

    async def _publish_group(self, group: BarGroup) -> None:
        events = []
        for bar in group.bars:
            events.extend(self.books.on_bar(bar))
        self.simulated_ms = group.end_ms
        self.simulated_at = time.monotonic()
        await self.push_events(events)
        for bar in group.bars:
            self._published.setdefault(bar.symbol, []).append(bar)
            await self._broadcast("public", f"kline.{self.interval}.{bar.symbol}", self._kline_message(bar))
            self._published_ns[bar.symbol] = (bar.end_ms, time.perf_counter_ns())
            await self._broadcast("public", f"tickers.{bar.symbol}", self._ticker_message(bar))
        self.counts["bars_published"] += len(group.bars)
        self._last_activity = time.monotonic()

    def _kline_message(self, bar: Any) -> dict[str, Any]:
        kline = {
            "start": bar.start_ms,
            "end": bar.end_ms - 1,  # Bybit: start + interval - 1 ms
            "interval": self.interval,
            "open": str(bar.open),
            "close": str(bar.close),
            "high": str(bar.high),
            "low": str(bar.low),
            "volume": str(bar.volume),
            "turnover": str(bar.turnover),
            "confirm": True,
            "timestamp": bar.end_ms,
        }
        return {
            "topic": f"kline.{self.interval}.{bar.symbol}",
            "data": [kline],
            "ts": bar.end_ms,
            "type": "snapshot",
        }

    def _ticker_message(self, bar: Any) -> dict[str, Any]:
        """A linear ticker snapshot (shape of the real ws_ticker_linear sample) at the bar's close: last /
        mark / index = the close; fundingRate / nextFundingTime = the catalog's rate of the next funding
        time after the close, so a subscriber knows the rate due at the bar that closes then."""
        rates = self.funding_rates.get(bar.symbol) or {}
        upcoming = [ts for ts in rates if ts > bar.end_ms]
        next_ms = min(upcoming) if upcoming else 0
        price = str(bar.close)
        data = {
            "symbol": bar.symbol,
            "tickDirection": "ZeroPlusTick",
            "price24hPcnt": "0",
            "lastPrice": price,
            "prevPrice24h": price,
            "highPrice24h": str(bar.high),
            "lowPrice24h": str(bar.low),
            "prevPrice1h": price,
            "markPrice": price,
            "indexPrice": price,
            "openInterest": "0",
            "openInterestValue": "0",
            "turnover24h": str(bar.turnover),
            "volume24h": str(bar.volume),
            "nextFundingTime": str(next_ms),
            "fundingRate": str(rates[next_ms]) if next_ms else "0",
            "bid1Price": price,
            "bid1Size": "1",
            "ask1Price": price,
            "ask1Size": "1",
            "fundingIntervalHour": "8",
        }
        return {"topic": f"tickers.{bar.symbol}", "type": "snapshot", "data": data, "cs": 0, "ts": bar.end_ms}

    def clock_ms(self) -> int | None:
        """The replay's clock: the last published close, running on at `speed` when paced; None before."""
        if self.simulated_ms is None:
            return None
        if self.pacing.mode != "speed":
            return self.simulated_ms
        return self.simulated_ms + int((time.monotonic() - self.simulated_at) * 1_000 * self.pacing.speed)

    def published_bars(self, symbol: str) -> list[Any]:
        return self._published.get(symbol, [])

    # --- orders (REST and trade ws) ---------------------------------------------------------------

    def _record_latency(self, op: str, source: str, params: dict[str, Any]) -> None:
        received = time.perf_counter_ns()
        symbol = str(params.get("symbol", ""))
        published = self._published_ns.get(symbol)
        self._latencies.append(
            LatencySample(
                op=op,
                source=source,
                symbol=symbol,
                bar_end_ms=published[0] if published else None,
                latency_ms=(received - published[1]) / 1e6 if published else None,
            )
        )

    async def order_request(
        self, action: str, params: dict[str, Any], source: str
    ) -> tuple[int, str, dict[str, Any]]:
        """Run one order request through the faults and the books; push its events. (code, msg, result)."""
        self._record_latency(action, source, params)
        self._last_activity = time.monotonic()
        self.counts[f"{action}_requests"] += 1
        now_ms = self.simulated_ms or 0
        if action == "place_order" and (forced := self.faults.order_rejection()) is not None:
            self.counts["orders_rejected"] += 1
            return forced[0], forced[1], {}
        reply = getattr(self.books, action)(params, now_ms)
        if reply.ret_code != 0:
            self.counts["orders_rejected" if action == "place_order" else f"{action}_rejected"] += 1
        elif action == "place_order":
            self.counts["orders_placed"] += 1
        self.spawn_events(reply.events)
        return reply.ret_code, reply.ret_msg, reply.result

    def spawn_events(self, events: list[Any]) -> None:
        """Push the events of a request in the background (ack_delay_ms applies), after its reply is built."""
        if events:
            self._spawn(self.push_events(events, delay=True))

    async def push_events(self, events: Iterable[Any], delay: bool = False) -> None:
        """Send VenueEvents to the private subscribers of their topic; same-topic runs share a message."""
        self._inflight += 1
        try:
            ack_delay_ms = self.config_faults().ack_delay_ms
            if delay and ack_delay_ms:
                self.faults.note("ack_delay")
                await asyncio.sleep(ack_delay_ms / 1_000)
            for topic, run in itertools.groupby(events, key=lambda event: event.topic):
                records = [event.data for event in run]
                if topic == "execution":
                    self.counts["fills"] += len(records)
                message = {"id": uuid.uuid4().hex, "topic": topic, "creationTime": wall_ms(), "data": records}
                copies = 2 if self.config_faults().duplicate_acks and topic in ("order", "execution") else 1
                for _ in range(copies):
                    await self._broadcast("private", topic, message)
                if copies == 2:
                    self.faults.note("duplicate_ack")
        finally:
            self._inflight -= 1
            self._last_activity = time.monotonic()

    def config_faults(self) -> FaultConfig:
        return self.faults.config

    # --- websockets -------------------------------------------------------------------------------

    def _ws_handler(self, stream: StreamName) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            socket = web.WebSocketResponse(autoping=True, heartbeat=None)
            await socket.prepare(request)
            connection = Connection(stream, socket, f"qa-{stream}-{next(self._conn_ids)}")
            self._connections.add(connection)
            self.counts[f"ws_connections_{stream}"] += 1
            try:
                async for message in socket:
                    if message.type != WSMsgType.TEXT:
                        continue
                    try:
                        request_body = json.loads(message.data)
                    except json.JSONDecodeError:
                        continue
                    await self._on_ws_message(connection, request_body)
            finally:
                self._connections.discard(connection)
            return socket

        return handler

    async def _send(self, connection: Connection, message: dict[str, Any]) -> None:
        if connection.socket.closed:
            return
        try:
            await connection.socket.send_str(json.dumps(message))
        except (ConnectionError, RuntimeError):
            self._connections.discard(connection)

    async def _broadcast(self, stream: StreamName, topic: str, message: dict[str, Any]) -> None:
        for connection in list(self._connections):
            if connection.stream == stream and topic in connection.topics:
                await self._send(connection, message)

    async def _on_ws_message(self, connection: Connection, body: dict[str, Any]) -> None:
        op = body.get("op", "")
        if op == "ping":
            await self._send(
                connection, {"op": "pong", "args": [str(wall_ms())], "conn_id": connection.conn_id}
            )
        elif op == "auth":
            await self._on_auth(connection, body.get("args", []))
        elif op in ("subscribe", "unsubscribe"):
            await self._on_subscribe(connection, op, body)
        elif connection.stream == "trade" and (op in TRADE_OPS or op in BATCH_OPS):
            self._last_activity = time.monotonic()
            self._inflight += 1
            self._spawn(self._on_trade_op(connection, op, body), inflight=True)
        else:
            await self._send(
                connection,
                {"success": False, "ret_msg": f"unknown op {op}", "op": op, "conn_id": connection.conn_id},
            )

    async def _on_auth(self, connection: Connection, args: list[Any]) -> None:
        problem = check_ws_auth(args, self.api_key, self.api_secret)
        connection.authenticated = problem is None
        if problem is not None:
            self.counts["auth_failures"] += 1
        code, message = problem or (0, "")
        reply = {
            "op": "auth",
            "success": problem is None,
            "retCode": code,
            "retMsg": message,
            "connId": connection.conn_id,
        }
        await self._send(connection, reply)

    async def _on_subscribe(self, connection: Connection, op: str, body: dict[str, Any]) -> None:
        topics = [str(topic) for topic in body.get("args", [])]
        reply = {
            "success": True,
            "ret_msg": "",
            "conn_id": connection.conn_id,
            "req_id": body.get("req_id", ""),
            "op": op,
        }
        if connection.stream != "public" and not connection.authenticated:
            reply |= {"success": False, "ret_msg": "Request not authorized"}
        elif op == "subscribe":
            connection.topics.update(topics)
        else:
            connection.topics.difference_update(topics)
        await self._send(connection, reply)
        kline = op == "subscribe" and reply["success"] and any(t.startswith("kline.") for t in topics)
        if kline and self.config.start_on == "subscribe":
            self.begin()

    async def _on_trade_op(self, connection: Connection, op: str, body: dict[str, Any]) -> None:
        reply: dict[str, Any] = {
            "reqId": body.get("reqId"),
            "op": op,
            "connId": connection.conn_id,
            "header": {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "9", "Timenow": str(wall_ms())},
        }
        args = body.get("args") or [{}]
        if not connection.authenticated:
            reply |= {"retCode": 10003, "retMsg": "Request not authorized", "data": {}}
        elif self.faults.rate_limited():
            reply |= {"retCode": RATE_LIMIT[0], "retMsg": RATE_LIMIT[1], "data": {}}
            reply["header"]["X-Bapi-Limit-Status"] = "0"
        elif op in TRADE_OPS:
            code, message, result = await self.order_request(TRADE_OPS[op], args[0], source="ws")
            link = {"orderLinkId": args[0].get("orderLinkId", ""), "orderId": args[0].get("orderId", "")}
            reply |= {"retCode": code, "retMsg": "OK" if code == 0 else message, "data": result or link}
        else:
            results, errors = [], []
            for params in args[0].get("request", []):
                code, message, result = await self.order_request(BATCH_OPS[op], params, source="ws")
                results.append(result or {"orderLinkId": params.get("orderLinkId", "")})
                errors.append({"code": code, "msg": "OK" if code == 0 else message})
            reply |= {"retCode": 0, "retMsg": "OK", "data": {"list": results}, "retExtInfo": {"list": errors}}
        delay_ms = self.config_faults().ack_delay_ms
        if delay_ms:
            await asyncio.sleep(delay_ms / 1_000)
        await self._send(connection, reply)

    def _spawn(self, coroutine: Any, inflight: bool = False) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)

        def finished(done: asyncio.Task[Any]) -> None:
            self._tasks.discard(done)
            if inflight:
                self._inflight -= 1
                self._last_activity = time.monotonic()
            if not done.cancelled() and done.exception() is not None:
                log.error("venue_task_failed", error=repr(done.exception()))

        task.add_done_callback(finished)

    # --- faults, restart, admin -------------------------------------------------------------------

    async def _close_connections(self, stream: Stream, code: int = 1006) -> int:
        chosen = [c for c in list(self._connections) if stream == "all" or c.stream == stream]
        for connection in chosen:
            self._connections.discard(connection)
            with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
                await asyncio.wait_for(connection.socket.close(code=code, message=b"dropped"), 0.5)
        return len(chosen)

    async def drop(self, stream: Stream) -> int:
        """Close the websockets of `stream` (clients reconnect by themselves); counted as a fault."""
        self.faults.note(f"drop_{stream}")
        return await self._close_connections(stream)

    async def restart(self, refuse_ms: int) -> None:
        """Drop every connection and refuse new ones (HTTP 503) for `refuse_ms`; books are kept."""
        self._refuse_until = time.monotonic() + refuse_ms / 1_000
        await self._close_connections("all")

    @web.middleware
    async def _refuse_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if time.monotonic() < self._refuse_until and not request.path.startswith("/admin/"):
            self.counts["refused_during_restart"] += 1
            return web.Response(status=503, text="venue restarting")
        return await handler(request)

    def inject(self, injection: FaultInjection) -> None:
        self.faults.arm(injection)

    def latencies_ms(self) -> list[LatencySample]:
        return list(self._latencies)

    def state(self) -> dict[str, Any]:
        return {
            "books": self.books.snapshot(),
            "counts": dict(self.counts),
            "faults": dict(self.faults.counts),
            "simulated_ms": self.simulated_ms,
            "bar_groups_total": len(self._groups),
            "done": self.done.is_set(),
            "connections": Counter(c.stream for c in self._connections),
            "latencies": [sample.__dict__ for sample in self._latencies],
        }

    async def _admin_faults(self, request: web.Request) -> web.Response:
        self.inject(FaultInjection.model_validate(await request.json()))
        return web.json_response({"ok": True, "faults": dict(self.faults.counts)})

    async def _admin_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state(), dumps=lambda value: json.dumps(value, default=str))

    async def _admin_drop(self, request: web.Request) -> web.Response:
        stream = request.query.get("stream", "all")
        if stream not in ("public", "private", "trade", "all"):
            return web.json_response({"ok": False, "error": f"unknown stream {stream}"}, status=400)
        return web.json_response({"ok": True, "closed": await self.drop(stream)})  # type: ignore[arg-type]

    async def _admin_restart(self, request: web.Request) -> web.Response:
        self.faults.note("restart")
        await self.restart(int(request.query.get("refuse_ms", self.config.faults.restart_refuse_ms)))
        return web.json_response({"ok": True})

    async def _admin_begin(self, request: web.Request) -> web.Response:
        self.begin()
        return web.json_response({"ok": True})


class LoopbackBybitThread:
    """A LoopbackBybit on its own event loop in a daemon thread; a context manager."""

    def __init__(self, config: VenueConfig, data: VenueData, books: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="loopback-bybit", daemon=True)
        self._config, self._data, self._books = config, data, books
        self.venue: LoopbackBybit | None = None
        self._mirror: asyncio.Task[None] | None = None
        self.done = threading.Event()

    def _call(self, coroutine: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self) -> LoopbackBybitThread:
        self._thread.start()

        async def create() -> LoopbackBybit:
            venue = LoopbackBybit(self._config, self._data, self._books)
            await venue.start()
            self._mirror = asyncio.get_running_loop().create_task(self._mirror_done(venue))
            return venue

        self.venue = self._call(create())
        return self

    async def _mirror_done(self, venue: LoopbackBybit) -> None:
        await venue.done.wait()
        self.done.set()

    def stop(self) -> None:
        if self.venue is not None:
            try:
                self._call(self.venue.stop(), timeout=SHUTDOWN_SECS + 0.5)
            except TimeoutError:
                log.warning("venue_stop_timeout")
        if self._mirror is not None:
            self._loop.call_soon_threadsafe(self._mirror.cancel)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=0.5)

    def __enter__(self) -> LoopbackBybitThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _running(self) -> LoopbackBybit:
        assert self.venue is not None, "start() the venue first"
        return self.venue

    @property
    def http_url(self) -> str:
        return self._running.http_url

    @property
    def ws_public_url(self) -> str:
        return self._running.ws_url("public")

    @property
    def ws_private_url(self) -> str:
        return self._running.ws_url("private")

    @property
    def ws_trade_url(self) -> str:
        return self._running.ws_url("trade")

    def begin(self) -> None:
        self._loop.call_soon_threadsafe(self._running.begin)

    def state(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            return self._running.state()

        return self._call(read())

    def inject(self, **faults: Any) -> None:
        """Arm one-shot faults (FaultInjection fields): inject(rate_limit=1), inject(insufficient_balance=1),
        inject(reject=1, reject_code=110017)."""
        injection = FaultInjection(**faults)

        async def arm() -> None:
            self._running.inject(injection)

        self._call(arm())

    def drop(self, stream: Stream = "all") -> int:
        return self._call(self._running.drop(stream))

    def restart(self, refuse_ms: int = 1_000) -> None:
        async def go() -> None:
            self._running.faults.note("restart")
            await self._running.restart(refuse_ms)

        self._call(go())

    def latencies_ms(self) -> list[LatencySample]:
        async def read() -> list[LatencySample]:
            return self._running.latencies_ms()

        return self._call(read())
