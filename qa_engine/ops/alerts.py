"""Alerts to Telegram, Discord and e-mail, sent off the trading loop.

    dispatcher = AlertDispatcher([TelegramChannel(...), EmailChannel(...)], settings)
    dispatcher.start()
    dispatcher.submit(Alert("risk", "kill switch: daily_loss", "equity -5.1 % of the day's start"))
    dispatcher.stop()                              # sends what is queued, bounded by `stop_timeout_secs`

`submit` never blocks and never raises: it de-duplicates (the same `key` within `dedup_secs` is counted,
not sent; the next one that goes says how many were folded into it) and hands the alert to a daemon thread
that runs its own asyncio loop. There each channel has its own bounded queue and worker: a channel that is
slow or dead (timeouts, refused connections) delays nobody else and never the trading loop. Per channel a
token bucket caps the rate (`rate_per_minute`); alerts over it are dropped and counted, and the next alert
sent names the count. Transient failures (connection errors, timeouts, HTTP 429 and 5xx) are retried with
exponential back-off (tenacity); anything else is logged once and dropped. Secrets (bot token, webhook,
SMTP password) never reach a log line: every error text passes `redact` first.

Written by hand (the senders are a few lines of httpx and aiosmtplib): apprise, the usual multi-channel
library, hard-codes the Telegram and Discord hosts (api.telegram.org, discord.com), so it cannot be pointed
at another base URL, which is how a proxy, a self-hosted Bot API server or the tests' loopback receivers
are reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from tenacity import AsyncRetrying
from tenacity import retry_if_exception_type
from tenacity import stop_after_attempt
from tenacity import wait_exponential

from qa_engine.logging import get_logger

log = get_logger("qa.alerts")

KINDS = ("fills", "risk", "connection", "errors", "daily_summary")
TELEGRAM_LIMIT = 4096  # characters per message (Bot API)
DISCORD_LIMIT = 2000  # characters per message content (webhooks)


@dataclass(frozen=True)
class Alert:
    kind: str  # one of KINDS
    title: str
    text: str = ""
    key: str | None = None  # de-duplication key; default: kind + title
    severity: str = "info"  # info | warning | critical

    @property
    def dedup_key(self) -> str:
        return self.key or f"{self.kind}:{self.title}"

    def render(self, note: str = "") -> str:
        mark = {"critical": "[CRITICAL] ", "warning": "[WARNING] "}.get(self.severity, "")
        body = f"{mark}{self.title}" + (f"\n{self.text}" if self.text else "")
        return body + (f"\n({note})" if note else "")


class TransientError(Exception):
    """Worth another try: a connection problem, a timeout, HTTP 429 or 5xx."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# --- channels -----------------------------------------------------------------------------------------


class Channel:
    name = "channel"

    def secrets(self) -> tuple[str, ...]:
        return ()

    async def send(self, text: str, alert: Alert) -> None:  # raises TransientError or another error
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class _HttpChannel(Channel):
    def __init__(self, timeout_secs: float) -> None:
        self._timeout = timeout_secs
        self._client = None

    def client(self):
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        return self._client

    async def _post(self, url: str, payload: dict[str, Any]) -> Any:
        import httpx

        try:
            response = await self.client().post(url, json=payload)
        except httpx.TransportError as error:  # refused, reset, DNS, timeouts
            raise TransientError(f"{type(error).__name__}: {error}") from None
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = _retry_after(response)
            raise TransientError(f"HTTP {response.status_code}", retry_after)
        if response.status_code >= 400:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        return response

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _retry_after(response) -> float | None:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        if "retry-after" in response.headers:
            return float(response.headers["retry-after"])
        body = response.json()
        # Telegram: {"parameters": {"retry_after": 3}}; Discord: {"retry_after": 0.5}
        return float(body.get("parameters", {}).get("retry_after") or body.get("retry_after"))
    return None


class TelegramChannel(_HttpChannel):
    """Bot API `sendMessage` (https://core.telegram.org/bots/api#sendmessage)."""

    name = "telegram"

    def __init__(self, base_url: str, token: str, chat_id: str, timeout_secs: float = 10.0) -> None:
        super().__init__(timeout_secs)
        self._url = f"{base_url.rstrip('/')}/bot{token}/sendMessage"
        self._token = token
        self._chat_id = chat_id

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    async def send(self, text: str, alert: Alert) -> None:
        payload = {"chat_id": self._chat_id, "text": text[:TELEGRAM_LIMIT], "disable_web_page_preview": True}
        response = await self._post(self._url, payload)
        body = response.json()
        if not body.get("ok", False):
            raise RuntimeError(f"Telegram refused the message: {body.get('description', body)}")


class DiscordChannel(_HttpChannel):
    """An incoming webhook (https://discord.com/developers/docs/resources/webhook#execute-webhook)."""

    name = "discord"

    def __init__(self, webhook_url: str, base_url: str | None = None, timeout_secs: float = 10.0) -> None:
        super().__init__(timeout_secs)
        self._url = with_base_url(webhook_url, base_url) if base_url else webhook_url
        self._secret = urlsplit(webhook_url).path  # /api/webhooks/<id>/<token>

    def secrets(self) -> tuple[str, ...]:
        return (self._secret, self._url)

    async def send(self, text: str, alert: Alert) -> None:
        await self._post(self._url, {"content": text[:DISCORD_LIMIT], "username": "QUANTUM ALPHA"})


def with_base_url(url: str, base_url: str) -> str:
    """`url`'s path and query on `base_url`'s scheme, host and port (and path prefix)."""
    parts, base = urlsplit(url), urlsplit(base_url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


class EmailChannel(Channel):
    """SMTP with STARTTLS (port 587), implicit TLS (465) or plain (only for a local relay)."""

    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: str,
        sender: str,
        recipients: list[str],
        username: str = "",
        password: str = "",
        ca_file: str | None = None,
        timeout_secs: float = 10.0,
    ) -> None:
        self._host, self._port, self._security = host, port, security
        self._sender, self._recipients = sender, recipients
        self._username, self._password = username, password
        self._ca_file, self._timeout = ca_file, timeout_secs

    def secrets(self) -> tuple[str, ...]:
        return (self._password,)

    async def send(self, text: str, alert: Alert) -> None:
        import aiosmtplib

        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = ", ".join(self._recipients)
        message["Subject"] = f"[QUANTUM ALPHA] {alert.title}"
        message.set_content(text)
        options: dict[str, Any] = {
            "hostname": self._host,
            "port": self._port,
            "timeout": self._timeout,
            "use_tls": self._security == "tls",
            "start_tls": self._security == "starttls",
        }
        if self._ca_file:
            options["cert_bundle"] = self._ca_file
        if self._username:
            options.update(username=self._username, password=self._password)
        try:
            await aiosmtplib.send(message, **options)
        except (
            aiosmtplib.SMTPConnectError,
            aiosmtplib.SMTPServerDisconnected,
            TimeoutError,
            OSError,
        ) as error:
            raise TransientError(f"{type(error).__name__}: {error}") from None
        except aiosmtplib.SMTPResponseException as error:
            if 400 <= error.code < 500:  # 4xx: temporary by definition (RFC 5321)
                raise TransientError(f"SMTP {error.code}: {error.message}") from None
            raise


# --- dispatcher ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatchSettings:
    rate_per_minute: float = 20.0  # per channel
    burst: int = 5  # alerts a channel may send at once before the rate applies
    dedup_secs: float = 300.0
    retries: int = 3  # attempts per alert and channel
    backoff_max_secs: float = 30.0
    queue_size: int = 1000  # per channel; when full the oldest waiting alert is dropped
    stop_timeout_secs: float = 5.0


@dataclass
class ChannelStats:
    sent: int = 0
    failed: int = 0  # given up after the retries, or refused
    rate_limited: int = 0  # over the channel's rate: dropped
    overflow: int = 0  # queue full: dropped
    retries: int = 0
    last_error: str = ""


@dataclass
class _Bucket:
    """Token bucket: `burst` at once, then `rate_per_minute`."""

    rate_per_sec: float
    capacity: float
    tokens: float = field(default=0.0)
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_sec)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class AlertDispatcher:
    def __init__(self, channels: list[Channel], settings: DispatchSettings | None = None) -> None:
        self.channels = list(channels)
        self.settings = settings or DispatchSettings()
        self.stats = {channel.name: ChannelStats() for channel in self.channels}
        self.submitted = 0
        self.deduplicated = 0
        self._secrets = tuple(s for channel in self.channels for s in channel.secrets() if s)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._last_sent: dict[str, float] = {}
        self._folded: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()

    # --- the trading side: never blocks, never raises --------------------------------------------------

    def submit(self, alert: Alert) -> bool:
        """Queue `alert` for every channel; False when folded into an earlier one (de-duplicated)."""
        try:
            now = time.monotonic()
            with self._lock:
                key = alert.dedup_key
                last = self._last_sent.get(key)
                if last is not None and now - last < self.settings.dedup_secs:
                    self._folded[key] = self._folded.get(key, 0) + 1
                    self.deduplicated += 1
                    return False
                self._last_sent[key] = now
                folded = self._folded.pop(key, 0)
                self.submitted += 1
            self._inbox.put((alert, folded))
            return True
        except Exception:  # an alert must never take trading down
            return False

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="qa-alerts", daemon=True)
        self._thread.start()
        ready.wait(5.0)

    def stop(self) -> None:
        """Send what is queued (within `stop_timeout_secs`), then end the thread."""
        if self._thread is None:
            return
        self._stopping.set()
        self._inbox.put(None)
        self._thread.join(self.settings.stop_timeout_secs + 2.0)
        self._thread = None

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        s = self.settings
        queues = {c.name: asyncio.Queue(maxsize=s.queue_size) for c in self.channels}
        workers = [asyncio.create_task(self._worker(c, queues[c.name])) for c in self.channels]
        ready.set()
        loop = asyncio.get_running_loop()
        while True:
            item = await loop.run_in_executor(None, self._inbox.get)
            if item is None:
                break
            for channel in self.channels:
                channel_queue = queues[channel.name]
                if channel_queue.full():  # drop the oldest waiting alert, keep the newest
                    channel_queue.get_nowait()
                    channel_queue.task_done()
                    self.stats[channel.name].overflow += 1
                channel_queue.put_nowait(item)
        # stopping: give the channels `stop_timeout_secs` to send what is queued
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(q.join() for q in queues.values())), timeout=s.stop_timeout_secs
            )
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for channel in self.channels:
            with contextlib.suppress(Exception):
                await channel.aclose()

    async def _worker(self, channel: Channel, channel_queue: asyncio.Queue) -> None:
        s = self.settings
        stats = self.stats[channel.name]
        bucket = _Bucket(s.rate_per_minute / 60.0, float(max(1, s.burst)))
        while True:
            alert, folded = await channel_queue.get()
            try:
                if not bucket.take():
                    stats.rate_limited += 1
                    continue
                notes = []
                if folded:
                    notes.append(f"repeated {folded} more time{'s' if folded > 1 else ''}")
                if stats.rate_limited or stats.overflow:
                    notes.append(f"{stats.rate_limited + stats.overflow} alerts dropped by rate limit so far")
                await self._send(channel, alert.render("; ".join(notes)), alert, stats)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                stats.failed += 1
                stats.last_error = redact(f"{type(error).__name__}: {error}", self._secrets)
                log.warning("alert_failed", channel=channel.name, kind=alert.kind, error=stats.last_error)
            finally:
                channel_queue.task_done()

    async def _send(self, channel: Channel, text: str, alert: Alert, stats: ChannelStats) -> None:
        s = self.settings

        def wait(retry_state) -> float:
            error = retry_state.outcome.exception()
            after = getattr(error, "retry_after", None)
            fallback = wait_exponential(multiplier=0.5, max=s.backoff_max_secs)(retry_state)
            return min(float(after), s.backoff_max_secs) if after else fallback

        attempt_number = 0
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(max(1, s.retries)),
            wait=wait,
            retry=retry_if_exception_type(TransientError),
            reraise=True,
        ):
            with attempt:
                attempt_number += 1
                if attempt_number > 1:
                    stats.retries += 1
                await channel.send(text, alert)
        stats.sent += 1


# --- from the run config ------------------------------------------------------------------------------


# the default secret variables of every channel (AlertsConfig); configs may name others
ALERT_SECRET_VARIABLES = ("QA_TELEGRAM_BOT_TOKEN", "QA_DISCORD_WEBHOOK_URL", "QA_SMTP_PASSWORD")


def secret_variables(settings: dict[str, Any]) -> list[str]:
    """The environment variables an `[ops.alerts]` section (AlertsConfig.model_dump) reads secrets from."""
    names = []
    if settings.get("telegram"):
        names.append(settings["telegram"]["token_env"])
    if settings.get("discord"):
        names.append(settings["discord"]["webhook_env"])
    if settings.get("email"):
        names.append(settings["email"]["password_env"])
    return names


def missing_variables(settings: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    """Variables a configured channel needs that the environment lacks (checked before the node starts)."""
    environ = os.environ if environ is None else environ
    needed = list(secret_variables(settings))
    if settings.get("telegram"):
        needed.append(settings["telegram"]["chat_id_env"])
    email = settings.get("email") or {}
    if email.get("username_env"):
        needed.append(email["username_env"])
    return [name for name in needed if not environ.get(name)]


def dispatcher_from_settings(
    settings: dict[str, Any], environ: dict[str, str] | None = None
) -> AlertDispatcher:
    """The channels of an `[ops.alerts]` section, their secrets read from the environment now."""
    env = os.environ if environ is None else environ
    timeout = float(settings.get("timeout_secs", 10.0))
    channels: list[Channel] = []
    if telegram := settings.get("telegram"):
        channels.append(
            TelegramChannel(
                telegram["base_url"], env[telegram["token_env"]], env[telegram["chat_id_env"]], timeout
            )
        )
    if discord := settings.get("discord"):
        channels.append(DiscordChannel(env[discord["webhook_env"]], discord.get("base_url"), timeout))
    if email := settings.get("email"):
        channels.append(
            EmailChannel(
                host=email["host"],
                port=int(email["port"]),
                security=email["security"],
                sender=email["sender"],
                recipients=list(email["recipients"]),
                username=env.get(email["username_env"], "") if email.get("username_env") else "",
                password=env.get(email["password_env"], ""),
                ca_file=str(email["ca_file"]) if email.get("ca_file") else None,
                timeout_secs=timeout,
            )
        )
    dispatch = DispatchSettings(
        rate_per_minute=float(settings.get("rate_per_minute", 20.0)),
        dedup_secs=float(settings.get("dedup_secs", 300.0)),
        retries=int(settings.get("retries", 3)),
    )
    return AlertDispatcher(channels, dispatch)


__all__ = [
    "ALERT_SECRET_VARIABLES",
    "KINDS",
    "Alert",
    "AlertDispatcher",
    "Channel",
    "DiscordChannel",
    "DispatchSettings",
    "EmailChannel",
    "TelegramChannel",
    "TransientError",
    "dispatcher_from_settings",
    "missing_variables",
    "redact",
    "secret_variables",
    "with_base_url",
]
