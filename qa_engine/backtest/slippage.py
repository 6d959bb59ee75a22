"""Slippage on market orders, in basis points of the price, as a Nautilus FillModel.

Nautilus 1.231's FillModel slips a market order by one tick with probability `prob_slippage`: on
BTCUSDT one tick is 0.1 USDT on ~100,000, i.e. 0.01 bp, nothing like the cost of crossing a real book
seconds after a bar closed. `get_orderbook_for_fill_simulation` is the FillModel's own hook for a
custom book; this model gives market orders a one-level book `slippage_bps` away from the bar-derived
best bid/ask (rounded against the trader, to the tick), so a buy fills higher and a sell lower and the
taker fee is charged on the slipped price, as on a venue. Limit and stop orders keep the engine's own
logic (a resting limit fills at its price).
"""

from __future__ import annotations

from decimal import ROUND_CEILING
from decimal import ROUND_FLOOR
from decimal import Decimal

from nautilus_trader.backtest.config import FillModelConfig
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import OrderType
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

BPS = Decimal(10_000)


def slipped_price(price: Decimal, side: str, slippage_bps: Decimal, tick: Decimal) -> Decimal:
    """The fill price of a market order: `slippage_bps` worse than `price`, rounded to the tick against
    the trader (a BUY rounds up, a SELL down)."""
    if side == "BUY":
        raw, rounding = price * (1 + slippage_bps / BPS), ROUND_CEILING
    else:
        raw, rounding = price * (1 - slippage_bps / BPS), ROUND_FLOOR
    return (raw / tick).to_integral_value(rounding=rounding) * tick


class BpsSlippageFillModelConfig(FillModelConfig, frozen=True):
    slippage_bps: float = 0.0


class BpsSlippageFillModel(FillModel):
    def __init__(self, config: BpsSlippageFillModelConfig | None = None) -> None:
        config = config or BpsSlippageFillModelConfig()
        super().__init__(config=config)
        self.slippage_bps = Decimal(str(config.slippage_bps))

    def get_orderbook_for_fill_simulation(self, instrument, order, best_bid, best_ask):
        if order.order_type != OrderType.MARKET or self.slippage_bps == 0:
            return None  # the engine's own fill logic
        tick = instrument.price_increment.as_decimal()
        bid = slipped_price(best_bid.as_decimal(), "SELL", self.slippage_bps, tick)
        ask = slipped_price(best_ask.as_decimal(), "BUY", self.slippage_bps, tick)
        book = OrderBook(instrument_id=instrument.id, book_type=BookType.L2_MBP)
        depth = Quantity(order.quantity.as_double() * 10 + 1, instrument.size_precision)  # fills in full
        book.add(BookOrder(OrderSide.BUY, Price(bid, instrument.price_precision), depth, 1), 0, 0)
        book.add(BookOrder(OrderSide.SELL, Price(ask, instrument.price_precision), depth, 2), 0, 0)
        return book
