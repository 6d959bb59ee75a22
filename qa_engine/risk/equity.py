"""Unrealised PnL of open positions at given closes: the mark the risk guard, the operations actor and the
live node's summary all add to the account balance (one definition, so their equities agree)."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from decimal import Decimal


def open_pnl(positions: Iterable, closes: Mapping[str, Decimal]) -> Decimal:
    """Sum of (close - average open price) x signed quantity x multiplier over `positions` (Nautilus
    Position objects) whose instrument has a close in `closes` (instrument id -> Decimal); others count 0."""
    total = Decimal(0)
    for position in positions:
        close = closes.get(position.instrument_id.value)
        if close is not None:
            average = Decimal(str(position.avg_px_open))  # a float in Nautilus
            total += (close - average) * position.signed_decimal_qty() * position.multiplier.as_decimal()
    return total
