"""The operations actor's pure parts: order event names, the daily summary's time and text."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

NANOS = 1_000_000_000


def event_name(event) -> str:
    """OrderFilled -> "filled", OrderPendingUpdate -> "pending_update"."""
    name = type(event).__name__.removeprefix("Order")
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def next_summary_ns(now_ns: int, hour_utc: int) -> int:
    """The next `hour_utc`:00 UTC strictly after `now_ns`."""
    now = datetime.fromtimestamp(now_ns / NANOS, tz=UTC)
    at = now.replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    if at <= now:
        at += timedelta(days=1)
    return int(at.timestamp()) * NANOS


def summary_text(state: dict[str, Any]) -> str:
    """The daily / stop summary of an operations state snapshot (pure: tested on its own)."""
    change = state["equity"] - state["equity_at_start"]
    pct = 100 * change / state["equity_at_start"] if state["equity_at_start"] else 0.0
    positions = ", ".join(f"{k} {v}" for k, v in state["positions"].items()) or "flat"
    lines = [
        f"equity {state['equity']:,.2f} {state['currency']} "
        f"({change:+,.2f}, {pct:+.2f}% since {state['since']})",
        f"realised PnL {state['realized']:+,.2f} (after fees), funding {state['funding']:+,.2f}",
        f"orders {state['orders']}, fills {state['fills']}, errors {state['errors']}",
        f"positions: {positions}",
        f"kill switches: {state['guard_mode']}"
        + (f" ({', '.join(state['fired'])})" if state["fired"] else ""),
        f"websocket reconnections: {state['reconnects']}",
    ]
    return "\n".join(lines)
