"""Structured logs redact secrets wherever they hide; the metrics endpoint exports what the dashboard
queries; the operations actor's pure parts (event names, the daily summary)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families

from qa_engine.logging import configure_logging
from qa_engine.logging import get_logger
from qa_engine.ops.logs import event_logger
from qa_engine.ops.logs import secret_values
from qa_engine.ops.metrics import METRICS
from qa_engine.ops.metrics import NodeMetrics
from qa_engine.ops.summary import event_name
from qa_engine.ops.summary import next_summary_ns
from qa_engine.ops.summary import summary_text

REPO_ROOT = Path(__file__).resolve().parents[3]
# shaped like a real Bybit API secret (36 characters), not one
SECRET = "hT8kQ2wLp9XvN4mZrB6cY1dF3gJ7sA0eUiOq"


def test_event_log_redacts_a_secret_in_values_nested_structures_and_exceptions(tmp_path, monkeypatch):
    monkeypatch.setenv("BYBIT_TESTNET_API_SECRET", SECRET)
    monkeypatch.setenv("SHORT_ONE", "42")
    secrets = secret_values(["BYBIT_TESTNET_API_SECRET", "SHORT_ONE", "UNSET_VARIABLE"])
    assert secrets == (SECRET,)  # short values would redact ordinary numbers
    log, stream = event_logger(tmp_path / "events.jsonl", secrets, run_id="r1")
    log.info("order.rejected", strategy_id="S-1", reason=f"signature {SECRET} refused", chat="42")
    log.info("nested", payload={"headers": {"X-BAPI-SIGN": SECRET}, "list": [SECRET, 1]})
    try:
        raise RuntimeError(f"request with secret={SECRET} failed")
    except RuntimeError:
        log.exception("boom")
    stream.close()
    text = (tmp_path / "events.jsonl").read_text()
    assert SECRET not in text and text.count("***") == 4
    first = json.loads(text.splitlines()[0])
    assert first["run_id"] == "r1" and first["strategy_id"] == "S-1" and first["chat"] == "42"


def test_console_and_json_logs_of_the_cli_redact_too(capsys):
    for json_logs in (False, True):
        configure_logging(json_logs=json_logs, redact=[SECRET])
        get_logger("t").warning("connect_failed", url=f"wss://x/?key={SECRET}")
        err = capsys.readouterr().err
        assert SECRET not in err and "***" in err
    configure_logging()


def test_the_endpoint_exports_every_metric_the_dashboard_queries():
    metrics = NodeMetrics()
    server, _thread = start_http_server(0, "127.0.0.1", metrics.registry)
    try:
        text = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).text
    finally:
        server.shutdown()
    declared = {family.name for family in text_string_to_metric_families(text)}
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in METRICS}
    assert families <= declared
    dashboard = json.loads((REPO_ROOT / "ops" / "grafana" / "quantum-alpha.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bqa_[a-z_]+\b", expr)}
    assert used <= set(METRICS), used - set(METRICS)
    assert families <= {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}, (
        "a metric no panel shows"
    )


def test_event_names_and_the_next_summary_time():
    from nautilus_trader.test_kit.stubs.events import TestEventStubs
    from nautilus_trader.test_kit.stubs.execution import TestExecStubs

    order = TestExecStubs.limit_order()
    assert event_name(TestEventStubs.order_submitted(order)) == "submitted"
    assert event_name(TestEventStubs.order_pending_update(order)) == "pending_update"
    day = 1_735_689_600 * 10**9  # 2025-01-01T00:00:00Z
    assert next_summary_ns(day, 0) == day + 86_400 * 10**9  # strictly after
    assert next_summary_ns(day + 1, 6) == day + 6 * 3_600 * 10**9


def test_summary_text():
    state = {
        "equity": 9_900.0,
        "equity_at_start": 10_000.0,
        "currency": "USDT",
        "since": "2025-01-01 00:00 UTC",
        "realized": -95.5,
        "funding": -4.5,
        "orders": 12,
        "fills": 11,
        "errors": 1,
        "positions": {"BTCUSDT-LINEAR.BYBIT": "-0.050"},
        "guard_mode": "halted",
        "fired": ["daily_loss"],
        "reconnects": 2,
    }
    assert summary_text(state).splitlines() == [
        "equity 9,900.00 USDT (-100.00, -1.00% since 2025-01-01 00:00 UTC)",
        "realised PnL -95.50 (after fees), funding -4.50",
        "orders 12, fills 11, errors 1",
        "positions: BTCUSDT-LINEAR.BYBIT -0.050",
        "kill switches: halted (daily_loss)",
        "websocket reconnections: 2",
    ]
