"""Soak: a live node (`qa live run` child, Nautilus' Rust Bybit adapter, the EMA cross at 3/8 so it trades
often) against the loopback Bybit venue for 30 simulated days - the whole January 2025 sample, 8,928 real
Bybit BTCUSDT 5m bars - on an accelerated clock (lockstep, 60 ms quiet), with every websocket dropped after
every 17th bar (525 drops) and a venue error armed every 30 bars (alternately 10006 on the next signed
request and 110007 on the next order: about 300).

Then: no order the node's journal shows as sent is lost (each reached the venue, and each the venue refused
is journalled as rejected with its reason), no orderLinkId reached the venue twice, and the node's final
positions (summary.json) equal the venue's books. The harness and its measurements: qa_engine.live.soak.

    .venv/bin/python -m pytest -m slow tests/integration/test_live_soak.py -s
"""

from __future__ import annotations

import time

import pytest

from qa_engine.live.soak import SoakSettings
from qa_engine.live.soak import print_report
from qa_engine.live.soak import run_soak
from tests.pristine import pristine_catalog

DAYS = 31  # January 2025: 31 x 288 five-minute bars
DROP_EVERY_BARS = 17
ERROR_EVERY_BARS = 30
# lockstep quiet time: 17 bars x ~60 ms keep each connection up ~1 s between drops (with drops every
# ~0.25 s, Nautilus' reconnect back-off climbs to its 5 s maximum and 525 drops would take ~45 min)
QUIET_MS = 60


@pytest.mark.slow
def test_live_soak_a_month_of_bars_with_drops_and_venue_errors(tmp_path) -> None:
    settings = SoakSettings(
        bars=DAYS * 288,
        catalog=pristine_catalog(),
        speed="lockstep",
        quiet_ms=QUIET_MS,
        drop_every_bars=DROP_EVERY_BARS,
        error_every_bars=ERROR_EVERY_BARS,
        timeout_secs=5400.0,  # ~55 min on a 2-core machine: 525 reconnections at the 5 s back-off
    )
    started = time.monotonic()
    report = run_soak(settings, tmp_path / "soak", progress=True)
    print(f"soak total {time.monotonic() - started:.1f} s")
    print_report(report)

    assert report.bars == DAYS * 288
    assert report.node_rc == 0, f"the node did not stop cleanly; see {report.run_dir}/live.stdout"
    assert report.drops >= 500
    errors = report.faults.get("rate_limit", 0) + report.faults.get("insufficient_balance", 0)
    assert errors >= 100, report.faults

    accounting = report.order_accounting()
    assert report.sent_orders(), "the node sent no order"
    assert accounting["lost"] == [], f"{len(accounting['lost'])} lost orders, first {accounting['lost'][:5]}"
    journal_rejections = {
        r["client_order_id"]: r["reason"] for r in report.journal if r["event"] == "rejected"
    }
    refused = [r for r in report.received if r["op"] == "place_order" and r["code"] not in (0, None)]
    unrecorded = [r for r in refused if not journal_rejections.get(r["link"])]
    assert unrecorded == [], f"{len(unrecorded)} venue refusals not journalled as rejected: {unrecorded[:5]}"
    assert report.duplicated_links() == {}

    assert report.node_positions() == report.venue_positions()
