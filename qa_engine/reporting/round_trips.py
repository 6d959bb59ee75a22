"""Round trips built from fills as they happen, independent of Nautilus' Cache and position ids.

A round trip runs from flat to flat: adds raise the quantity, reductions realise pnl at the running
average entry price, and a fill that crosses zero (a flip) closes one round trip and opens the next
with the remainder. Entry fees are carried with the open quantity and released pro rata as it is
closed, so `net_pnl = gross_pnl - fees + funding` of every round trip (funding: what the position
received (> 0) or paid (< 0) at funding settlements while it was open), and the sum over round trips
plus the open position's net pnl equals the account's change in equity.

Hand-written: Nautilus' NETTING positions (1.221 and 1.231) keep one id across flips, so their statistics are
per position, not per round trip; no library does this bookkeeping on our fill records.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from typing import Literal

Side = Literal["BUY", "SELL"]


@dataclass(frozen=True)
class Fill:
    ts_ns: int
    instrument_id: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal  # paid in the settlement currency; negative for a rebate
    multiplier: Decimal = Decimal(1)


@dataclass(frozen=True)
class RoundTrip:
    instrument_id: str
    side: Literal["LONG", "SHORT"]
    entry_ts_ns: int
    exit_ts_ns: int
    quantity: Decimal  # largest absolute quantity held during the round trip
    entry_price: Decimal  # quantity-weighted average of entry fills
    exit_price: Decimal  # quantity-weighted average of exit fills
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    funding: Decimal = Decimal(0)  # received (> 0) or paid (< 0) while open; part of net_pnl


@dataclass
class _OpenPosition:
    direction: int  # +1 long, -1 short
    entry_ts_ns: int
    quantity: Decimal = Decimal(0)  # absolute quantity still open
    average_price: Decimal = Decimal(0)  # average entry price of the open quantity
    open_fees: Decimal = Decimal(0)  # entry fees not yet released to a closed quantity
    max_quantity: Decimal = Decimal(0)
    entered_quantity: Decimal = Decimal(0)
    entered_notional: Decimal = Decimal(0)
    exited_quantity: Decimal = Decimal(0)
    exited_notional: Decimal = Decimal(0)
    gross_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)  # fees already released to closed quantity
    funding: Decimal = Decimal(0)  # funding settled while this round trip was open


@dataclass
class RoundTripBook:
    """Tracks one net position per instrument and emits a RoundTrip each time one returns to flat."""

    positions: dict[str, _OpenPosition] = field(default_factory=dict)
    multipliers: dict[str, Decimal] = field(default_factory=dict)

    def on_fill(self, fill: Fill) -> list[RoundTrip]:
        self.multipliers[fill.instrument_id] = fill.multiplier
        direction = 1 if fill.side == "BUY" else -1
        position = self.positions.get(fill.instrument_id)
        if position is None or position.quantity == 0:
            self._open(fill, direction, fill.quantity, fill.fee)
            return []
        if direction == position.direction:
            self._add(position, fill.price, fill.quantity, fill.fee)
            return []
        closing_quantity = min(fill.quantity, position.quantity)
        closing_fee = fill.fee * closing_quantity / fill.quantity
        closed = self._reduce(fill, position, closing_quantity, closing_fee)
        remainder = fill.quantity - closing_quantity
        if remainder > 0:  # a flip: the rest of the fill opens the next round trip
            self._open(fill, direction, remainder, fill.fee - closing_fee)
        return [closed] if closed else []

    def _open(self, fill: Fill, direction: int, quantity: Decimal, fee: Decimal) -> None:
        position = _OpenPosition(direction=direction, entry_ts_ns=fill.ts_ns)
        self.positions[fill.instrument_id] = position
        self._add(position, fill.price, quantity, fee)

    @staticmethod
    def _add(position: _OpenPosition, price: Decimal, quantity: Decimal, fee: Decimal) -> None:
        new_quantity = position.quantity + quantity
        position.average_price = (
            position.average_price * position.quantity + price * quantity
        ) / new_quantity
        position.quantity = new_quantity
        position.open_fees += fee
        position.max_quantity = max(position.max_quantity, new_quantity)
        position.entered_quantity += quantity
        position.entered_notional += price * quantity

    def _reduce(
        self, fill: Fill, position: _OpenPosition, quantity: Decimal, fee: Decimal
    ) -> RoundTrip | None:
        released_entry_fee = position.open_fees * quantity / position.quantity
        position.open_fees -= released_entry_fee
        position.fees += released_entry_fee + fee
        position.gross_pnl += (
            (fill.price - position.average_price) * quantity * position.direction * fill.multiplier
        )
        position.exited_quantity += quantity
        position.exited_notional += fill.price * quantity
        position.quantity -= quantity
        if position.quantity > 0:
            return None
        del self.positions[fill.instrument_id]
        return RoundTrip(
            instrument_id=fill.instrument_id,
            side="LONG" if position.direction > 0 else "SHORT",
            entry_ts_ns=position.entry_ts_ns,
            exit_ts_ns=fill.ts_ns,
            quantity=position.max_quantity,
            entry_price=position.entered_notional / position.entered_quantity,
            exit_price=position.exited_notional / position.exited_quantity,
            gross_pnl=position.gross_pnl,
            fees=position.fees,
            net_pnl=position.gross_pnl - position.fees + position.funding,
            funding=position.funding,
        )

    def on_funding(self, instrument_id: str, amount: Decimal) -> None:
        """A funding settlement of the open position of `instrument_id` (ignored when flat)."""
        position = self.positions.get(instrument_id)
        if position is not None and position.quantity > 0:
            position.funding += amount

    def signed_quantity(self, instrument_id: str) -> Decimal:
        position = self.positions.get(instrument_id)
        return position.quantity * position.direction if position else Decimal(0)

    def unrealised_pnl(self, instrument_id: str, price: Decimal) -> Decimal:
        """Gross pnl of the open quantity at `price` (entry fees not deducted)."""
        position = self.positions.get(instrument_id)
        if position is None:
            return Decimal(0)
        multiplier = self.multipliers.get(instrument_id, Decimal(1))
        return (price - position.average_price) * position.quantity * position.direction * multiplier

    def open_net_pnl(self, instrument_id: str, price: Decimal) -> Decimal:
        """What closing the open position at `price` would add to the round trips, before exit fees:
        realised so far in this round trip + unrealised - all fees paid so far in it + its funding."""
        position = self.positions.get(instrument_id)
        if position is None:
            return Decimal(0)
        return (
            position.gross_pnl
            + self.unrealised_pnl(instrument_id, price)
            - position.fees
            - position.open_fees
            + position.funding
        )
