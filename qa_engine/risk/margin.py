"""Margin as the venues compute it: initial margin = notional / leverage, maintenance margin = notional x
the instrument's maintenance-margin rate (first risk-limit tier).

Why not Nautilus' own: its default `LeveragedMarginModel` multiplies the notional by the instrument's
`margin_init` / `margin_maint` and divides by leverage, and Nautilus' Bybit parser sets both to 0.1 for
every linear instrument (adapters/bybit/README.md), so an account at 10x would lock 1 % of the notional,
as if it ran at 100x. `VenueMarginModel` locks notional / leverage for positions and open orders (Bybit's
"position IM" and "order IM"); the maintenance rates live here, apart from the instrument definitions.

Nautilus 1.231's RiskEngine does no margin check for margin accounts (`_check_orders_risk_for_account`
returns early: "TODO: Determine risk controls for margin"), and its simulated exchange accepts any order,
so `check_initial_margin` is the venue's check, called by the strategy base before each order
(strategies/base.py): an order whose initial margin exceeds the free margin is denied, as Bybit rejects
it with retCode 110007 ("ab not enough for new order").
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from nautilus_trader.accounting.margin_models import MarginModel
from nautilus_trader.model.objects import Money

# Maintenance-margin rate of the first (smallest) risk-limit tier, by instrument id. Sources: Bybit's
# risk-limit table (GET /v5/market/risk-limit, category=linear: BTCUSDT and ETHUSDT tier 1 keep 0.5 %
# maintenance at up to 100x / 1 % initial) and Binance's leverage brackets (GET /fapi/v1/leverageBracket:
# BTCUSDT bracket 1 maintMarginRatio 0.004, ETHUSDT 0.005). Larger positions move to higher tiers with
# higher rates; the backtest uses tier 1 throughout (a position above its notional cap is reported).
MAINTENANCE_MARGIN_RATES: dict[str, Decimal] = {
    "BTCUSDT-LINEAR.BYBIT": Decimal("0.005"),
    "ETHUSDT-LINEAR.BYBIT": Decimal("0.005"),
    "BTCUSDT-PERP.BINANCE": Decimal("0.004"),
    "ETHUSDT-PERP.BINANCE": Decimal("0.005"),
}
DEFAULT_MAINTENANCE_MARGIN_RATE = Decimal("0.005")  # instruments the table lacks (the run says so)
MARGIN_DENIED_CODE = "110007"  # Bybit's retCode for an order the available balance cannot margin


def maintenance_margin_rate(instrument_id: str, override: Decimal | None = None) -> tuple[Decimal, str]:
    """(rate, source) for `instrument_id`: the run config's override, else the table, else the default."""
    if override is not None:
        return override, "run config"
    if instrument_id in MAINTENANCE_MARGIN_RATES:
        return MAINTENANCE_MARGIN_RATES[instrument_id], "venue risk-limit tier 1"
    return DEFAULT_MAINTENANCE_MARGIN_RATE, "default (instrument not in the risk-limit table)"


class VenueMarginModel(MarginModel):
    """Initial (order) and position margin = notional / leverage, in the instrument's quote currency."""

    def __init__(self, config=None) -> None:
        super().__init__()

    def calculate_margin_init(self, instrument, quantity, price, leverage, use_quote_for_inverse=False):
        notional = instrument.notional_value(quantity, price, use_quote_for_inverse).as_decimal()
        return Money(notional / Decimal(leverage), instrument.quote_currency)

    def calculate_margin_maint(
        self, instrument, side, quantity, price, leverage, use_quote_for_inverse=False
    ):
        # Nautilus' "maintenance" margin is what an open position locks on the account: the venue's
        # position IM. The liquidation threshold (notional x maintenance rate) is the liquidation module's.
        notional = instrument.notional_value(quantity, price, use_quote_for_inverse).as_decimal()
        return Money(notional / Decimal(leverage), instrument.quote_currency)


@dataclass(frozen=True)
class MarginCheck:
    in_use: Decimal  # initial margin of the positions and open orders before the order
    required: Decimal  # ... and after it
    equity: Decimal  # wallet balance + unrealised pnl
    leverage: Decimal

    @property
    def free(self) -> Decimal:
        return self.equity - self.in_use

    @property
    def denied(self) -> bool:
        return self.required > self.equity  # the increase exceeds the free margin

    def reason(self, currency: str) -> str:
        return (
            f"{MARGIN_DENIED_CODE} insufficient available balance: the order needs "
            f"{self.required - self.in_use:,.2f} {currency} initial margin at {self.leverage}x, "
            f"free margin is {self.free:,.2f} {currency}"
        )


def check_initial_margin(
    *,
    equity: Decimal,
    leverage: Decimal,
    exposures: dict[str, tuple[Decimal, Decimal]],
    instrument_id: str,
    order_signed_quantity: Decimal,
) -> MarginCheck | None:
    """The venue's pre-trade check for one order; None when the order does not add exposure (a reduce,
    a close: always allowed).

    `exposures`: instrument id -> (signed quantity of its position and open orders, value of one unit:
    reference price x multiplier). The order is denied when the initial margin of everything held and
    ordered afterwards, sum(|quantity| x unit value) / leverage, exceeds the equity, i.e. when its
    increase exceeds the free margin (equity - initial margin in use).
    """
    held, _ = exposures[instrument_id]
    after = held + order_signed_quantity
    if abs(after) <= abs(held):
        return None
    before_notional = sum((abs(q) * unit for q, unit in exposures.values()), Decimal(0))
    unit = exposures[instrument_id][1]
    after_notional = before_notional - abs(held) * unit + abs(after) * unit
    return MarginCheck(
        in_use=before_notional / leverage,
        required=after_notional / leverage,
        equity=equity,
        leverage=leverage,
    )
