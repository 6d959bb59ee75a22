"""Operations of a live node end to end: `qa live run` (child process) on the loopback Bybit venue with
metrics and alerts on; the alert endpoints are real loopback receivers (tests/ops_receivers.py).

- the Prometheus endpoint, scraped while the node runs, agrees with the run's own state (order journal,
  the venue's books, summary.json), and every query of the Grafana dashboard names an exported metric;
- Telegram, Discord and e-mail receive the fills, the kill-switch trigger, the websocket drops and the
  stop summary; events.jsonl has one line per order event with run, strategy and instrument;
- with every alert endpoint dead (black holes, a closed SMTP port) the node trades exactly as it does
  without alerts.
"""

from __future__ import annotations

import json
import signal
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from qa_engine.config.models import OpsConfig
from qa_engine.live.venue.faults import FaultConfig
from qa_engine.ops.metrics import METRICS
from tests.live_node_harness import INSTRUMENT_ID
from tests.live_node_harness import LiveNode
from tests.live_node_harness import assert_no_secrets
from tests.live_node_harness import live_config
from tests.live_node_harness import venue_for
from tests.live_node_harness import venue_position
from tests.live_node_harness import wait_for_venue
from tests.ops_receivers import BOT_TOKEN
from tests.ops_receivers import CHAT_ID
from tests.ops_receivers import SMTP_PASSWORD
from tests.ops_receivers import SMTP_USER
from tests.ops_receivers import WEBHOOK_PATH
from tests.ops_receivers import HttpReceiver
from tests.ops_receivers import SmtpReceiver
from tests.ops_receivers import black_hole
from tests.ops_receivers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERT_ENV = {
    "QA_TELEGRAM_BOT_TOKEN": BOT_TOKEN,
    "QA_TELEGRAM_CHAT_ID": CHAT_ID,
    "QA_DISCORD_WEBHOOK_URL": f"https://discord.com{WEBHOOK_PATH}",
    "QA_SMTP_USERNAME": SMTP_USER,
    "QA_SMTP_PASSWORD": SMTP_PASSWORD,
}


def ops_config(http_url: str, smtp_port: int, ca_file: Path | None, timeout_secs: float = 10.0) -> OpsConfig:
    return OpsConfig.model_validate(
        {
            "metrics": {"host": "127.0.0.1", "port": 0},
            "alerts": {
                "telegram": {"base_url": http_url},
                "discord": {"base_url": http_url},
                "email": {
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "sender": "node@quantum-alpha.test",
                    "recipients": ["desk@quantum-alpha.test"],
                    "ca_file": str(ca_file) if ca_file else None,
                },
                "rate_per_minute": 600,
                "dedup_secs": 0,
                "timeout_secs": timeout_secs,
            },
        }
    )


def scrape(node: LiveNode, families: set[str] | None = None) -> dict[tuple[str, tuple], float]:
    """Samples of the node's endpoint; `families` gets every declared metric (with or without samples)."""
    url = json.loads((node.run_dir / "metrics.json").read_text())["url"]
    text = httpx.get(url, timeout=5).text
    samples = {}
    for family in text_string_to_metric_families(text):
        if families is not None:
            families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def family_of(name: str) -> str:
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def total(samples, name: str, **labels) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and all((k, v) in sample_labels for k, v in labels.items())
    )


def dashboard_metric_names() -> set[str]:
    import re

    dashboard = json.loads((REPO_ROOT / "ops" / "grafana" / "quantum-alpha.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return {name for expr in exprs for name in re.findall(r"\bqa_[a-z_]+\b", expr)}


@pytest.mark.timeout(180)
def test_metrics_match_the_run_and_alerts_reach_every_channel(tmp_path):
    risk = {"daily_loss": {"limit_pct": 0.1, "confirm_evaluations": 1}}  # fees alone reach it: a halt
    # the private socket only: a public drop loses the bars published meanwhile (1.231 does not backfill)
    faults = FaultConfig(drop_every_bars=25, drop_stream="private")
    with (
        HttpReceiver() as http,
        SmtpReceiver(tmp_path) as smtp,
        venue_for(bars=80, quiet_ms=150, faults=faults) as venue,
    ):
        config = live_config(venue, risk=risk, output_dir=tmp_path / "runs")
        config = config.model_copy(update={"ops": ops_config(http.url, smtp.port, smtp.ca_file)})
        node = LiveNode.start(venue, tmp_path / "run", config, env=ALERT_ENV)
        wait_for_venue(venue, node)
        books = venue.state()["books"]
        node.wait_for(lambda: len(node.fills()) == books["fills_count"], 25, "every fill at the node")
        node.wait_for(lambda: (node.run_dir / "metrics.json").exists(), 5, "metrics.json")
        node.wait_for(
            lambda: total(scrape(node), "qa_fills_total") == books["fills_count"], 10, "fill metrics"
        )
        families: set[str] = set()
        samples = scrape(node, families)
        held = venue_position(venue)
        bars_published = venue.state()["counts"]["bars_published"]
        assert node.stop(signal.SIGTERM) == 0, node.output()[-3000:]
        received = {
            "telegram": list(http.telegram),
            "discord": list(http.discord),
            "email": list(smtp.messages),
        }

    summary = node.summary()
    journal_orders = [r for r in node.events("order") if not r["reconciliation"]]
    # the endpoint against the run's own state
    assert total(samples, "qa_fills_total") == len(node.fills()) >= 2
    assert total(samples, "qa_orders_total", event="initialized") == len(journal_orders)
    assert total(samples, "qa_position_quantity", instrument=INSTRUMENT_ID) == float(held)
    assert total(samples, "qa_balance", kind="total") == pytest.approx(float(books["balance"]), abs=0.01)
    assert total(samples, "qa_equity") == pytest.approx(float(Decimal(summary["equity"])), abs=1e-6)
    assert total(samples, "qa_bars_total") == bars_published == 80
    assert total(samples, "qa_bars_behind_venue_clock") == 0  # lockstep: the venue waits for the node
    assert total(samples, "qa_bar_to_order_latency_seconds_count") == len(journal_orders)
    assert total(samples, "qa_kill_switch_fired", rule="daily_loss") == 1
    assert total(samples, "qa_kill_switch_triggers_total", rule="daily_loss") == 1
    assert total(samples, "qa_kill_switch_mode") in (2, 3)  # reducing or halted
    events = [json.loads(line) for line in (node.run_dir / "events.jsonl").read_text().splitlines()]
    reconnections = [e for e in events if e["event"] == "websocket.up"]
    assert reconnections and total(samples, "qa_ws_reconnects_total") == len(reconnections)
    assert dashboard_metric_names() <= set(METRICS)
    assert {family_of(name) for name in dashboard_metric_names()} <= families
    # events.jsonl: one line per order event, with the run, strategy and instrument bound
    order_events = [e for e in events if e["event"].startswith("order.")]
    assert sum(e["event"] == "order.filled" for e in order_events) == len(node.fills())
    assert all(e["run_id"] == "run" and e["strategy_id"] and e["instrument_id"] for e in order_events)
    # alerts: the same texts on the three channels
    fills_alerted = [m for m in received["telegram"] if "fill: " in m["text"]]
    assert len(fills_alerted) == len(node.fills())
    texts = "\n".join(m["text"] for m in received["telegram"])
    assert "[CRITICAL] run: kill switch daily_loss: trigger (halt)" in texts
    assert "websocket down" in texts and "websocket back" in texts
    assert "run stopped" in texts and "equity" in texts
    assert [m["content"] for m in received["discord"]] == [m["text"] for m in received["telegram"]]
    assert len(received["email"]) == len(received["telegram"])
    assert_no_secrets(node.run_dir, node.stdout_path)
    for secret in (BOT_TOKEN, WEBHOOK_PATH, SMTP_PASSWORD):
        for file in [*node.run_dir.rglob("*"), node.stdout_path]:
            if file.is_file():
                assert secret.encode() not in file.read_bytes(), f"an alert secret is written in {file}"


def _orders(node: LiveNode) -> list[tuple]:
    return [(r["side"], r["quantity"], r["bar_ts"]) for r in node.events("order") if not r["reconciliation"]]


@pytest.mark.timeout(240)
def test_dead_alert_endpoints_change_nothing_in_the_trading(tmp_path):
    """Telegram and Discord point at black holes (connections accepted, never answered: each request waits
    its 10 s timeout, three attempts), e-mail at a closed port. The node places the same orders at the same
    bars and ends with the same fills as without alerts, and still stops cleanly."""
    runs = {}
    with black_hole() as silent_port:
        for name in ("without alerts", "dead endpoints"):
            with venue_for(bars=60, quiet_ms=150) as venue:
                config = live_config(venue, output_dir=tmp_path / "runs")
                if name == "dead endpoints":
                    ops = ops_config(f"http://127.0.0.1:{silent_port}", free_port(), None)
                    config = config.model_copy(update={"ops": ops})
                node = LiveNode.start(venue, tmp_path / name.replace(" ", "-"), config, env=ALERT_ENV)
                wait_for_venue(venue, node)
                fills_at_venue = venue.state()["books"]["fills_count"]
                node.wait_for(lambda n=node, f=fills_at_venue: len(n.fills()) == f, 25, "every fill")
                assert node.stop(signal.SIGTERM) == 0, node.output()[-3000:]
                runs[name] = node
    quiet, dead = runs["without alerts"], runs["dead endpoints"]
    assert len(_orders(quiet)) >= 4 and _orders(dead) == _orders(quiet)
    assert [(f["side"], f["quantity"], f["price"]) for f in dead.fills()] == [
        (f["side"], f["quantity"], f["price"]) for f in quiet.fills()
    ]
    assert dead.summary()["equity"] == quiet.summary()["equity"]
