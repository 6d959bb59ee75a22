"""End-to-end: `qa live run` (a real TradingNode, Nautilus' Rust Bybit adapter, the project's client
factories) in a child process against the loopback Bybit v5 venue (qa_engine.live.venue), replaying the
committed sample catalog's real BTCUSDT 5m bars. EMA cross 3/8 trades every few bars.

The venue runs in lockstep (a bar is published once the order traffic of the last one has been quiet for
`quiet_ms`), except in the kill -9 test, which paces bars at a fixed wall rate (see there).
"""

from __future__ import annotations

import signal
import time
from decimal import Decimal

import pytest

from tests.live_node_harness import INSTRUMENT_ID
from tests.live_node_harness import LiveNode
from tests.live_node_harness import assert_no_secrets
from tests.live_node_harness import live_config
from tests.live_node_harness import node_position
from tests.live_node_harness import venue_for
from tests.live_node_harness import venue_position
from tests.live_node_harness import wait_for_venue



def _fills_match(node_fills: list[dict], venue_fills: list[tuple]) -> None:
    assert len(node_fills) == len(venue_fills)
    for mine, theirs in zip(node_fills, venue_fills, strict=True):
        _symbol, side, qty, price, _fee, _maker = theirs
        assert mine["side"] == side.upper()
        assert Decimal(mine["quantity"]) == Decimal(str(qty))
        assert Decimal(mine["price"]) == Decimal(str(price))


@pytest.mark.timeout(120)
def test_node_trades_and_ends_with_the_venues_books(tmp_path):
    with venue_for(bars=80) as venue:
        node = LiveNode.start(venue, tmp_path / "run", live_config(venue))
        wait_for_venue(venue, node)
        assert node.stop(signal.SIGTERM) == 0, node.output()[-3000:]
        books = venue.state()["books"]
        held = venue_position(venue)

    summary = node.summary()
    fills = node.fills()
    assert len(fills) >= 4, "EMA 3/8 over 80 bars trades several times"
    _fills_match(fills, books["fills"])
    assert node_position(summary) == held != 0
    balance = Decimal(summary["accounts"]["BYBIT-UNIFIED"]["USDT"].split()[0])  # "9980.61 USDT"
    assert balance == Decimal(str(books["balance"])).quantize(balance)
    assert_no_secrets(node.run_dir, node.stdout_path)
