"""Compare two order journals (qa_engine.live.journal): the backtest's and the live node's.

Orders are compared in sequence on what the strategy decided: instrument, side, type, quantity, price and
trigger price (to the tick, as journalled text) and the bar it reacted to. Orders the node generated at
start-up from the venue's books (reconciliation) are not decisions and are left out. Denials are part of
the sequence (a margin denial in one run and an order in the other is a difference).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

COMPARED = ("instrument_id", "side", "type", "quantity", "price", "trigger_price", "bar_ts")


def decisions(records: list[dict]) -> list[dict]:
    """The orders of a journal, in order, with `denied` set on those the strategy's checks denied."""
    orders: dict[str, dict] = {}
    sequence: list[dict] = []
    for record in records:
        if record["event"] == "order" and not record.get("reconciliation"):
            order = {key: record.get(key) for key in COMPARED} | {
                "client_order_id": record["client_order_id"]
            }
            order["denied"] = False
            orders[record["client_order_id"]] = order
            sequence.append(order)
        elif record["event"] == "denied" and record["client_order_id"] in orders:
            orders[record["client_order_id"]]["denied"] = True
    return sequence


@dataclass
class ParityResult:
    backtest_orders: int
    live_orders: int
    first_difference: int | None  # index into the sequences; None when identical
    backtest_order: dict | None = None
    live_order: dict | None = None
    differing_fields: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.first_difference is None


def compare_journals(backtest: list[dict], live: list[dict]) -> ParityResult:
    left, right = decisions(backtest), decisions(live)
    for index, (a, b) in enumerate(zip(left, right, strict=False)):
        fields = [key for key in (*COMPARED, "denied") if a.get(key) != b.get(key)]
        if fields:
            return ParityResult(len(left), len(right), index, a, b, fields)
    if len(left) != len(right):
        index = min(len(left), len(right))
        return ParityResult(
            len(left),
            len(right),
            index,
            left[index] if index < len(left) else None,
            right[index] if index < len(right) else None,
            ["missing"],
        )
    return ParityResult(len(left), len(right), None)
