"""Position sizing: pure functions, no Nautilus objects."""

from __future__ import annotations

from decimal import ROUND_DOWN
from decimal import Decimal


def quantity_for_notional(
    equity: Decimal,
    price: Decimal,
    notional_pct_of_equity: Decimal,
    size_increment: Decimal,
    min_quantity: Decimal = Decimal(0),
    max_quantity: Decimal | None = None,
) -> Decimal:
    """Quantity whose notional is `notional_pct_of_equity`% of equity, rounded DOWN to the lot step.

    Returns 0 when equity is not positive or the rounded size is under the venue's minimum: never
    rounds up into more risk than asked for.
    """
    if equity <= 0 or price <= 0 or notional_pct_of_equity <= 0:
        return Decimal(0)
    raw_quantity = equity * notional_pct_of_equity / Decimal(100) / price
    quantity = (raw_quantity / size_increment).to_integral_value(rounding=ROUND_DOWN) * size_increment
    if max_quantity is not None:
        quantity = min(quantity, max_quantity)
    return quantity if quantity >= min_quantity and quantity > 0 else Decimal(0)
