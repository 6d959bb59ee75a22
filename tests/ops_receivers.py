"""Loopback stand-ins for the alert endpoints, real servers on 127.0.0.1 (no mocks of the senders):

- `HttpReceiver`: the Telegram Bot API (`POST /bot<token>/sendMessage`) and Discord webhooks
  (`POST /api/webhooks/<id>/<token>`) on one aiohttp server in a thread; `fail_next(n, status)` answers the
  next n requests with an error (429 carries a retry-after), `hang = True` never answers;
- `SmtpReceiver`: aiosmtpd with STARTTLS (or implicit TLS) on a certificate from a throw-away CA (trustme)
  and a login, collecting the messages;
- `black_hole()`: a listening socket that never accepts a byte of conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

from aiohttp import web

BOT_TOKEN = "7391520648:AAGq8Wm3Zt-Rk5vLpX2nYc9HdJ4sFeUbT0o"  # shaped like a real bot token, not one
CHAT_ID = "-1001234567890"
WEBHOOK_PATH = "/api/webhooks/1187326549012345678/Xk9pQ2rT7vW1yZ3bN5mC8dF0gH4jL6sA-uE2iO7qR9tY1wU3"
SMTP_USER = "alerts@quantum-alpha.test"
SMTP_PASSWORD = "smtp-Pa55w0rd-9f8e7d6c"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class HttpReceiver:
    def __init__(self) -> None:
        self.telegram: list[dict[str, Any]] = []
        self.discord: list[dict[str, Any]] = []
        self.requests = 0
        self.hang = False
        self._failures: list[int] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, count: int, status: int = 500) -> None:
        self._failures.extend([status] * count)

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._release.set)
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/bot{token}/sendMessage", self._telegram)
        app.router.add_post("/api/webhooks/{id}/{token}", self._discord)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _gate(self) -> web.Response | None:
        self.requests += 1
        if self.hang:  # until the receiver closes
            await self._release.wait()
            return web.Response(status=503)
        if self._failures:
            status = self._failures.pop(0)
            headers = {"Retry-After": "0.2"} if status == 429 else {}
            return web.json_response(
                {"ok": False, "description": "try later"}, status=status, headers=headers
            )
        return None

    async def _telegram(self, request: web.Request) -> web.Response:
        refused = await self._gate()
        if refused is not None:
            return refused
        if request.match_info["token"] != BOT_TOKEN:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        body = await request.json()
        self.telegram.append(body)
        return web.json_response(
            {"ok": True, "result": {"message_id": len(self.telegram), "text": body["text"]}}
        )

    async def _discord(self, request: web.Request) -> web.Response:
        refused = await self._gate()
        if refused is not None:
            return refused
        if request.path != WEBHOOK_PATH:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        self.discord.append(await request.json())
        return web.Response(status=204)


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1 with a trustme certificate; `ca_file` is what a client must trust."""

    def __init__(self, folder: Path, security: str = "starttls") -> None:
        import trustme

        self.messages: list[Any] = []
        self.security = security
        self.port = free_port()
        ca = trustme.CA()
        certificate = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = folder / "smtp-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(self._context)
        self._controller = None

    def __enter__(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult
        from aiosmtpd.smtp import LoginPassword

        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
                receiver.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, data):
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                SMTP_USER.encode(),
                SMTP_PASSWORD.encode(),
            )
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

        options: dict[str, Any] = {"authenticator": authenticator}
        if self.security == "starttls":
            options.update(tls_context=self._context, require_starttls=True, auth_require_tls=True)
            self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **options)
        else:  # implicit TLS (aiosmtpd counts only STARTTLS as TLS for AUTH: the whole session is TLS here)
            options["auth_require_tls"] = False
            self._controller = Controller(
                Handler(), hostname="127.0.0.1", port=self.port, ssl_context=self._context, **options
            )
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._controller is not None:
            self._controller.stop()


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]
