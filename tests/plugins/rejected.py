"""A plug-in whose orders the venue rejects: a post-only buy above the market (it would take liquidity)
every `every_bars` bars, for the order-error kill switch."""

from nautilus_trader.config import PositiveInt
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy


class PostOnlyTakerConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    every_bars: PositiveInt = 1


class PostOnlyTaker(Strategy):
    def __init__(self, config: PostOnlyTakerConfig) -> None:
        super().__init__(config)
        self.bars = 0

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar) -> None:
        self.bars += 1
        if self.bars % self.config.every_bars:
            return
        order = self.order_factory.limit(
            instrument_id=self.config.instrument_id,
            order_side=OrderSide.BUY,
            quantity=self.instrument.make_qty(0.001),
            price=self.instrument.make_price(bar.close.as_double() * 1.01),
            post_only=True,
        )
        self.submit_order(order)
