"""Alerts against real loopback receivers (tests/ops_receivers.py): what arrives, de-duplication, rate
limits, retries, and that a dead or hanging receiver never holds up the caller."""

from __future__ import annotations

import time

import pytest

from qa_engine.ops.alerts import Alert
from qa_engine.ops.alerts import AlertDispatcher
from qa_engine.ops.alerts import DiscordChannel
from qa_engine.ops.alerts import DispatchSettings
from qa_engine.ops.alerts import EmailChannel
from qa_engine.ops.alerts import TelegramChannel
from qa_engine.ops.alerts import dispatcher_from_settings
from qa_engine.ops.alerts import missing_variables
from qa_engine.ops.alerts import with_base_url
from tests.ops_receivers import BOT_TOKEN
from tests.ops_receivers import CHAT_ID
from tests.ops_receivers import SMTP_PASSWORD
from tests.ops_receivers import SMTP_USER
from tests.ops_receivers import WEBHOOK_PATH
from tests.ops_receivers import HttpReceiver
from tests.ops_receivers import SmtpReceiver
from tests.ops_receivers import black_hole

pytestmark = pytest.mark.timeout(60)
FAST = DispatchSettings(rate_per_minute=600, burst=50, dedup_secs=60, retries=3, backoff_max_secs=0.3)


def wait_until(predicate, timeout_secs: float = 30.0) -> None:  # generous: CI machines are loaded
    deadline = time.monotonic() + timeout_secs
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def telegram(receiver: HttpReceiver, timeout_secs: float = 5.0) -> TelegramChannel:
    return TelegramChannel(receiver.url, BOT_TOKEN, CHAT_ID, timeout_secs)


def discord(receiver: HttpReceiver) -> DiscordChannel:
    return DiscordChannel(f"https://discord.com{WEBHOOK_PATH}", base_url=receiver.url, timeout_secs=5.0)


def test_telegram_and_discord_receive_the_alert():
    with HttpReceiver() as receiver:
        dispatcher = AlertDispatcher([telegram(receiver), discord(receiver)], FAST)
        dispatcher.start()
        assert dispatcher.submit(
            Alert("risk", "kill switch daily_loss", "equity -5.2 %", severity="critical")
        )
        wait_until(lambda: receiver.telegram and receiver.discord)
        dispatcher.stop()
    [message] = receiver.telegram
    assert message["chat_id"] == CHAT_ID
    assert message["text"] == "[CRITICAL] kill switch daily_loss\nequity -5.2 %"
    assert receiver.discord == [{"content": message["text"], "username": "QUANTUM ALPHA"}]
    assert dispatcher.stats["telegram"].sent == dispatcher.stats["discord"].sent == 1


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_over_starttls_or_tls_with_a_login(tmp_path, security):
    with SmtpReceiver(tmp_path, security) as smtp:
        channel = EmailChannel(
            host="127.0.0.1",
            port=smtp.port,
            security=security,
            sender="bot@quantum-alpha.test",
            recipients=["desk@quantum-alpha.test", "ops@quantum-alpha.test"],
            username=SMTP_USER,
            password=SMTP_PASSWORD,
            ca_file=str(smtp.ca_file),
        )
        dispatcher = AlertDispatcher([channel], FAST)
        dispatcher.start()
        dispatcher.submit(Alert("fills", "fill: BUY 0.05 BTCUSDT-LINEAR.BYBIT @ 93,818.5", "fee 2.58 USDT"))
        wait_until(lambda: smtp.messages)
        dispatcher.stop()
    [message] = smtp.messages
    assert message["Subject"] == "[QUANTUM ALPHA] fill: BUY 0.05 BTCUSDT-LINEAR.BYBIT @ 93,818.5"
    assert message["To"] == "desk@quantum-alpha.test, ops@quantum-alpha.test"
    assert "fee 2.58 USDT" in message.get_payload()


def test_a_wrong_smtp_password_fails_the_channel_without_leaking_it(tmp_path):
    with SmtpReceiver(tmp_path) as smtp:
        channel = EmailChannel(
            host="127.0.0.1",
            port=smtp.port,
            security="starttls",
            sender="bot@quantum-alpha.test",
            recipients=["desk@quantum-alpha.test"],
            username=SMTP_USER,
            password="wrong-password-123456",
            ca_file=str(smtp.ca_file),
        )
        dispatcher = AlertDispatcher([channel], FAST)
        dispatcher.start()
        dispatcher.submit(Alert("errors", "order rejected"))
        wait_until(lambda: dispatcher.stats["email"].failed == 1)
        dispatcher.stop()
    assert smtp.messages == []
    assert "wrong-password-123456" not in dispatcher.stats["email"].last_error


def test_the_same_alert_is_folded_and_the_next_one_says_how_often():
    settings = DispatchSettings(rate_per_minute=600, burst=50, dedup_secs=0.5, retries=1)
    with HttpReceiver() as receiver:
        dispatcher = AlertDispatcher([telegram(receiver)], settings)
        dispatcher.start()
        alert = Alert("connection", "BYBIT-exec trade websocket down")
        results = [dispatcher.submit(alert) for _ in range(4)]
        wait_until(lambda: len(receiver.telegram) == 1)
        time.sleep(0.6)  # the de-duplication window is over
        assert dispatcher.submit(alert)
        wait_until(lambda: len(receiver.telegram) == 2)
        dispatcher.stop()
    assert results == [True, False, False, False] and dispatcher.deduplicated == 3
    assert "(repeated 3 more times)" in receiver.telegram[1]["text"]


def test_over_the_rate_alerts_are_dropped_and_counted():
    settings = DispatchSettings(rate_per_minute=1, burst=3, dedup_secs=0, retries=1)
    with HttpReceiver() as receiver:
        dispatcher = AlertDispatcher([telegram(receiver)], settings)
        dispatcher.start()
        for number in range(10):
            dispatcher.submit(Alert("fills", f"fill {number}"))
        wait_until(
            lambda: dispatcher.stats["telegram"].sent + dispatcher.stats["telegram"].rate_limited == 10
        )
        dispatcher.stop()
    assert [m["text"] for m in receiver.telegram] == ["fill 0", "fill 1", "fill 2"]
    assert dispatcher.stats["telegram"].rate_limited == 7


def test_server_errors_and_429_are_retried_until_they_pass():
    with HttpReceiver() as receiver:
        receiver.fail_next(1, 500)
        receiver.fail_next(1, 429)
        dispatcher = AlertDispatcher([telegram(receiver)], FAST)
        dispatcher.start()
        dispatcher.submit(Alert("errors", "order rejected: insufficient balance"))
        wait_until(lambda: receiver.telegram)
        dispatcher.stop()
    assert receiver.requests == 3 and dispatcher.stats["telegram"].retries == 2
    assert dispatcher.stats["telegram"].sent == 1 and dispatcher.stats["telegram"].failed == 0


def test_a_refused_token_is_not_retried_and_never_logged():
    with HttpReceiver() as receiver:
        channel = TelegramChannel(receiver.url, "1111111111:WRONG-token-abcdefghijk", CHAT_ID, 5.0)
        dispatcher = AlertDispatcher([channel], FAST)
        dispatcher.start()
        dispatcher.submit(Alert("errors", "x"))
        wait_until(lambda: dispatcher.stats["telegram"].failed == 1)
        dispatcher.stop()
    assert receiver.requests == 1
    assert "WRONG-token" not in dispatcher.stats["telegram"].last_error


def test_a_hanging_receiver_holds_up_neither_the_caller_nor_the_other_channel():
    """Telegram's endpoint accepts the request and never answers; `submit` has returned long before (the
    receiver is still holding the request when the caller goes on), and Discord, on its own worker, gets
    every alert meanwhile."""
    with HttpReceiver() as hanging, HttpReceiver() as healthy:
        hanging.hang = True
        dispatcher = AlertDispatcher([telegram(hanging, timeout_secs=30), discord(healthy)], FAST)
        dispatcher.start()
        for number in range(20):
            dispatcher.submit(Alert("fills", f"fill {number}"))
        wait_until(lambda: len(healthy.discord) == 20)
        assert hanging.requests == 1 and dispatcher.stats["telegram"].sent == 0  # still waiting on it
        dispatcher.settings = DispatchSettings(stop_timeout_secs=0.5)
        dispatcher.stop()


def test_a_dead_port_fails_fast_and_is_counted():
    with black_hole() as port:
        channel = TelegramChannel(f"http://127.0.0.1:{port}", BOT_TOKEN, CHAT_ID, timeout_secs=0.3)
        dispatcher = AlertDispatcher([channel], FAST)
        dispatcher.start()
        assert dispatcher.submit(Alert("errors", "x"))
        wait_until(lambda: dispatcher.stats["telegram"].failed == 1)
        dispatcher.stop()
    stats = dispatcher.stats["telegram"]
    assert stats.retries == 2 and BOT_TOKEN not in stats.last_error and "Timeout" in stats.last_error


def test_channels_from_the_run_config_read_their_secrets_from_the_environment(tmp_path):
    settings = {
        "telegram": {"base_url": "http://x", "token_env": "T_TOKEN", "chat_id_env": "T_CHAT"},
        "discord": {"webhook_env": "D_HOOK", "base_url": None},
        "email": {
            "host": "127.0.0.1",
            "port": 587,
            "security": "starttls",
            "sender": "a@b.test",
            "recipients": ["c@d.test"],
            "username_env": "S_USER",
            "password_env": "S_PASS",
            "ca_file": None,
        },
    }
    assert missing_variables(settings, {"T_TOKEN": "t"}) == ["D_HOOK", "S_PASS", "T_CHAT", "S_USER"]
    environ = {
        "T_TOKEN": "t" * 10,
        "T_CHAT": "1",
        "D_HOOK": "https://discord.com/api/webhooks/1/abc",
        "S_USER": "u",
        "S_PASS": "p" * 8,
    }
    dispatcher = dispatcher_from_settings(settings, environ)
    assert [c.name for c in dispatcher.channels] == ["telegram", "discord", "email"]


def test_a_base_url_keeps_the_webhooks_path():
    url = with_base_url("https://discord.com/api/webhooks/1/abc?wait=true", "http://127.0.0.1:8080/proxy/")
    assert url == "http://127.0.0.1:8080/proxy/api/webhooks/1/abc?wait=true"
