"""`ConnectionWatch`: notices a Bybit websocket going down and coming back, and says so on the bus.

Written here because 1.231's Rust websocket clients reconnect by themselves (with back-off) and tell Python
nothing: no callback, no event; only `is_active()`. The watch polls `is_active()` of each socket every
`interval_secs` once the client is connected and publishes a `ConnectionEvent` (qa_engine.live.clients) on
`CONNECTION_TOPIC` at each transition: "down" when an active socket stops being active, "up" with the
outage's length when it is active again. A drop shorter than the interval can go unseen (the default 0.25 s
is far below the client's own reconnection time, about 1.5 s at the least on the loopback venue).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from qa_engine.live.clients import CONNECTION_TOPIC
from qa_engine.live.clients import ConnectionEvent

DEFAULT_INTERVAL_SECS = 0.25


class ConnectionWatch:
    def __init__(
        self,
        client: Any,  # the Nautilus live client: its msgbus, clock, logger and create_task
        name: str,
        sockets: Callable[[], dict[str, Any]],  # stream name -> websocket client (asked at each poll)
        interval_secs: float = DEFAULT_INTERVAL_SECS,
    ) -> None:
        self._client = client
        self._name = name
        self._sockets = sockets
        self._interval = interval_secs
        self._task: asyncio.Task | None = None
        self._down_since: dict[str, float] = {}
        self._seen_active: set[str] = set()
        self.transitions: list[ConnectionEvent] = []

    def start(self) -> None:
        if self._task is None:
            self._task = self._client.create_task(self._run(), log_msg=f"{self._name} connection watch")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.poll()

    def poll(self) -> None:
        for stream, socket in self._sockets().items():
            try:
                active = bool(socket.is_active())
            except Exception:  # a socket being replaced or closed: next poll
                continue
            if active:
                if stream in self._down_since:
                    down = time.monotonic() - self._down_since.pop(stream)
                    self._publish(stream, "up", down)
                self._seen_active.add(stream)
            elif stream in self._seen_active and stream not in self._down_since:
                self._down_since[stream] = time.monotonic()
                self._publish(stream, "down", None)

    def _publish(self, stream: str, state: str, down_secs: float | None) -> None:
        event = ConnectionEvent(self._name, stream, state, self._client._clock.timestamp_ns(), down_secs)
        self.transitions.append(event)
        if len(self.transitions) > 1000:
            del self.transitions[:500]
        if state == "down":
            self._client._log.warning(f"{self._name} {stream} websocket down")
        else:
            self._client._log.info(f"{self._name} {stream} websocket back after {down_secs:.2f}s")
        self._client._msgbus.publish(topic=CONNECTION_TOPIC, msg=event)
