"""Shared set-up of the loopback-venue tests: real sample-catalog bars, real books, the venue in a thread."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from qa_engine.live.venue.books import AccountSpec
from qa_engine.live.venue.books import InstrumentSpec
from qa_engine.live.venue.books import VenueBooks
from qa_engine.live.venue.server import LoopbackBybitThread
from qa_engine.live.venue.server import VenueConfig
from qa_engine.live.venue.source import VenueData
from qa_engine.live.venue.source import load_venue_data
from tests.pristine import pristine_catalog

API_KEY = "qa-test-key"
API_SECRET = "qa-test-secret"
INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"


def sample_data(bars: int = 12, instrument_ids: tuple[str, ...] = (INSTRUMENT_ID,)) -> VenueData:
    """The first `bars` 5-minute bars of the committed sample catalog (real Bybit bars of January 2025)."""
    start_ns = 1_735_689_600_000_000_000  # 2025-01-01T00:00Z
    end_ns = start_ns + bars * 300_000_000_000
    return load_venue_data(pristine_catalog(), list(instrument_ids), "5m", start_ns + 1, end_ns)


def make_books(data: VenueData) -> VenueBooks:
    instruments = [InstrumentSpec.from_instruments_info(entry) for entry in data.instruments]
    account = AccountSpec(
        starting_balance=Decimal("10000"),
        maker_fee_rate=Decimal("0.0002"),
        taker_fee_rate=Decimal("0.00055"),
        slippage_bps=Decimal("0"),
        default_leverage=Decimal("10"),
    )
    return VenueBooks(instruments, account, data.funding_rates)


def venue_thread(data: VenueData | None = None, **config: Any) -> LoopbackBybitThread:
    data = data or sample_data()
    settings = {"api_key": API_KEY, "api_secret": API_SECRET, "speed": "max", "start_on": "manual"} | config
    return LoopbackBybitThread(VenueConfig(**settings), data, make_books(data))


async def wait_for(predicate: Any, timeout_secs: float = 10.0) -> None:
    """Poll `predicate()` until true (asyncio); AssertionError after `timeout_secs`."""
    deadline = asyncio.get_running_loop().time() + timeout_secs
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
