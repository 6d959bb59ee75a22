"""What alerts cost the trading loop, with healthy and with dead endpoints.

1. `AlertDispatcher.submit` per call (the only alert work on the trading loop), against a bare
   `queue.SimpleQueue.put` measured in the same run: no channel, a healthy loopback Telegram receiver,
   and a black hole (connections accepted, never answered).
2. A live node (`qa live run`, child process) on the loopback venue, lockstep, EMA 3/8 on real BTCUSDT 5m
   bars: bar close at the venue -> order received by the venue, without alerts and with every alert
   endpoint dead (Telegram and Discord black holes, e-mail to a closed port; every fill alerted).

    .venv/bin/python bench/bench_alerts.py [--bars 600] [--submits 20000]
"""

from __future__ import annotations

import argparse
import queue
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa_engine.live.soak import SoakSettings
from qa_engine.live.soak import percentiles
from qa_engine.live.soak import run_soak
from qa_engine.ops.alerts import Alert
from qa_engine.ops.alerts import AlertDispatcher
from qa_engine.ops.alerts import DispatchSettings
from qa_engine.ops.alerts import TelegramChannel
from tests.ops_receivers import BOT_TOKEN
from tests.ops_receivers import CHAT_ID
from tests.ops_receivers import HttpReceiver
from tests.ops_receivers import black_hole
from tests.ops_receivers import free_port


def submit_us(dispatcher: AlertDispatcher | None, count: int) -> float:
    alerts = [Alert("fills", f"fill {i}", key=f"fill:{i}") for i in range(count)]
    plain: queue.SimpleQueue = queue.SimpleQueue()
    started = time.perf_counter()
    for alert in alerts:
        if dispatcher is None:
            plain.put(alert)
        else:
            dispatcher.submit(alert)
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=600)
    parser.add_argument("--submits", type=int, default=20_000)
    args = parser.parse_args()
    settings = DispatchSettings(rate_per_minute=60_000, burst=1000, dedup_secs=0, stop_timeout_secs=0.5)

    print(f"1. submit() per call, {args.submits:,} alerts")
    baseline = submit_us(None, args.submits)
    print(f"   SimpleQueue.put (baseline)       {baseline:6.2f} us")
    with HttpReceiver() as receiver:
        dispatcher = AlertDispatcher([TelegramChannel(receiver.url, BOT_TOKEN, CHAT_ID)], settings)
        dispatcher.start()
        healthy = submit_us(dispatcher, args.submits)
        dispatcher.stop()
    print(f"   healthy receiver                 {healthy:6.2f} us  ({healthy / baseline:.1f}x baseline)")
    with black_hole() as port:
        dispatcher = AlertDispatcher(
            [TelegramChannel(f"http://127.0.0.1:{port}", BOT_TOKEN, CHAT_ID)], settings
        )
        dispatcher.start()
        dead = submit_us(dispatcher, args.submits)
        dispatcher.stop()
    print(f"   black-hole receiver              {dead:6.2f} us  ({dead / baseline:.1f}x baseline)")

    print(f"2. live node on the loopback venue, {args.bars} bars, lockstep")
    with black_hole() as silent:
        ops = {
            "alerts": {
                "telegram": {"base_url": f"http://127.0.0.1:{silent}"},
                "discord": {"base_url": f"http://127.0.0.1:{silent}"},
                "email": {
                    "host": "127.0.0.1",
                    "port": free_port(),
                    "sender": "a@b.test",
                    "recipients": ["c@d.test"],
                },
                "rate_per_minute": 600,
                "dedup_secs": 0,
            }
        }
        env = {
            "QA_TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "QA_TELEGRAM_CHAT_ID": CHAT_ID,
            "QA_DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/abc",
            "QA_SMTP_USERNAME": "u",
            "QA_SMTP_PASSWORD": "p" * 12,
        }
        rows = []
        for label, extra in (("no alerts", {}), ("dead alert endpoints", {"ops": ops, "env": env})):
            with tempfile.TemporaryDirectory() as tmp:
                report = run_soak(SoakSettings(bars=args.bars, **extra), Path(tmp))
            p = percentiles(report.latencies_ms)
            rows.append((label, len(report.latencies_ms), p))
            print(
                f"   {label:22s} orders {len(report.latencies_ms):4d}  bar->order p50 {p['p50']:.2f}"
                f"  p90 {p['p90']:.2f}  p99 {p['p99']:.2f}  max {p['max']:.2f} ms"
            )
    (_, _, quiet), (_, _, dead_p) = rows
    p50, p99 = dead_p["p50"] / quiet["p50"], dead_p["p99"] / quiet["p99"]
    print(f"   ratio dead / none: p50 {p50:.2f}x, p99 {p99:.2f}x")


if __name__ == "__main__":
    main()
