"""Trading fees of a run: which maker/taker rates apply to each instrument, and the fee model that charges
them.

Three sources, chosen per venue in the run config (qa_engine.config.models.VenueConfig):
- the instrument definitions (default): the rates the catalog's instruments carry, which are the venues'
  published base rates (Bybit USDT perpetuals 0.02 % / 0.055 %, Binance USD-M 0.02 % / 0.05 %);
- a named fee tier of the venue (`fee_tier = "vip3"`), from FEE_TIERS below;
- explicit rates (`maker_fee_rate`, `taker_fee_rate`): an account's own, e.g. from Bybit's signed
  GET /v5/account/fee-rate.
The report states which rates and which source each instrument used.

`VenueRateFeeModel` is ours because Nautilus' MakerTakerFeeModel reads only the instrument's rates; it
charges notional x rate exactly as MakerTakerFeeModel does (Decimal arithmetic, quote currency).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from nautilus_trader.backtest.config import FeeModelConfig
from nautilus_trader.backtest.models import FeeModel
from nautilus_trader.model.enums import LiquiditySide
from nautilus_trader.model.objects import Money

# Venue fee tiers: venue name -> tier -> (maker, taker), fractions of notional.
# BYBIT: only the published base (non-VIP) rate for USDT perpetuals; an account with a VIP rate sets
#   it explicitly (maker_fee_rate / taker_fee_rate), since the tier table is not bundled here.
# BINANCE (USD-M futures): the VIP 0-9 table NautilusTrader 1.231 itself uses when it cannot read an
#   account's tier (nautilus_trader/adapters/binance/futures/providers.py).
FEE_TIERS: dict[str, dict[str, tuple[str, str]]] = {
    "BYBIT": {"non-vip": ("0.0002", "0.00055")},
    "BINANCE": {
        "vip0": ("0.000200", "0.000500"),
        "vip1": ("0.000160", "0.000400"),
        "vip2": ("0.000140", "0.000350"),
        "vip3": ("0.000120", "0.000320"),
        "vip4": ("0.000100", "0.000300"),
        "vip5": ("0.000080", "0.000270"),
        "vip6": ("0.000060", "0.000250"),
        "vip7": ("0.000040", "0.000220"),
        "vip8": ("0.000020", "0.000200"),
        "vip9": ("0.000000", "0.000170"),
    },
}


@dataclass(frozen=True)
class AppliedFeeRates:
    """The rates one instrument was charged in a run, and where they came from."""

    maker: Decimal
    taker: Decimal
    source: str  # "instrument definition" | "fee tier <name>" | "run config" | "none"

    def describe(self) -> str:
        if self.source == "none":
            return "no fees"
        return f"maker {self.maker * 100:.4f}% / taker {self.taker * 100:.4f}% ({self.source})"

    def to_dict(self) -> dict[str, str]:
        return {"maker": str(self.maker), "taker": str(self.taker), "source": self.source}


def tier_rates(venue: str, tier: str) -> tuple[Decimal, Decimal]:
    """(maker, taker) of a venue's named tier; ValueError naming the known tiers otherwise."""
    tiers = FEE_TIERS.get(venue)
    if tiers is None:
        raise ValueError(
            f"no fee tiers are known for venue {venue} (known: {', '.join(sorted(FEE_TIERS))}); "
            "set maker_fee_rate and taker_fee_rate instead"
        )
    if tier not in tiers:
        raise ValueError(f"unknown fee tier '{tier}' for {venue}; known: {', '.join(tiers)}")
    maker, taker = tiers[tier]
    return Decimal(maker), Decimal(taker)


class VenueRateFeeModelConfig(FeeModelConfig, frozen=True):
    """Maker and taker rates (fractions of notional, as strings) for every instrument of one venue."""

    maker_fee_rate: str
    taker_fee_rate: str


class VenueRateFeeModel(FeeModel):
    """Charges notional x the venue's configured maker or taker rate, in the quote currency."""

    def __init__(self, config: VenueRateFeeModelConfig) -> None:
        super().__init__()
        self.maker_fee_rate = Decimal(config.maker_fee_rate)
        self.taker_fee_rate = Decimal(config.taker_fee_rate)

    def get_commission(self, order, fill_qty, fill_px, instrument) -> Money:
        notional = instrument.notional_value(quantity=fill_qty, price=fill_px, use_quote_for_inverse=False)
        if order.liquidity_side == LiquiditySide.MAKER:
            rate = self.maker_fee_rate
        elif order.liquidity_side == LiquiditySide.TAKER:
            rate = self.taker_fee_rate
        else:
            raise ValueError(f"invalid liquidity side {order.liquidity_side} for a commission")
        currency = instrument.get_base_currency() if instrument.is_inverse else instrument.quote_currency
        return Money(notional.as_decimal() * rate, currency)


def applied_fee_rates(venues, instruments) -> dict[str, AppliedFeeRates]:
    """The rates each instrument of the run is charged: `venues` are the run config's VenueConfigs,
    `instruments` the Nautilus instruments the engine traded (from its cache)."""
    by_venue = {venue.name: venue for venue in venues}
    applied: dict[str, AppliedFeeRates] = {}
    for instrument in instruments:
        venue = by_venue.get(instrument.id.venue.value)
        if venue is None:
            continue
        if venue.fee_model == "none":
            applied[instrument.id.value] = AppliedFeeRates(Decimal(0), Decimal(0), "none")
            continue
        configured = venue.configured_fee_rates()
        if configured is not None:
            applied[instrument.id.value] = AppliedFeeRates(*configured)
        else:
            applied[instrument.id.value] = AppliedFeeRates(
                Decimal(instrument.maker_fee), Decimal(instrument.taker_fee), "instrument definition"
            )
    return dict(sorted(applied.items()))


__all__ = [
    "FEE_TIERS",
    "AppliedFeeRates",
    "VenueRateFeeModel",
    "VenueRateFeeModelConfig",
    "applied_fee_rates",
    "tier_rates",
]
