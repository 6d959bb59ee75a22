"""EMA cross: the baseline. Long while the fast EMA is above the slow EMA, short while below.

Always in the market after warm-up; each cross flips the position with one market order.
"""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.config import PositiveFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.config import StrategyConfig
from nautilus_trader.indicators import ExponentialMovingAverage
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from qa_engine.risk.sizing import quantity_for_notional


class EMACrossStrategyConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    fast_ema_period: PositiveInt = 12
    slow_ema_period: PositiveInt = 26
    notional_pct_of_equity: PositiveFloat = 100.0  # position notional as % of equity (x leverage room)

    def __post_init__(self) -> None:
        if self.fast_ema_period >= self.slow_ema_period:
            raise ValueError(
                f"fast_ema_period ({self.fast_ema_period}) must be less than "
                f"slow_ema_period ({self.slow_ema_period})",
            )
        if self.bar_type.instrument_id != self.instrument_id:
            raise ValueError(f"bar_type {self.bar_type} is not a bar of {self.instrument_id}")


class EMACrossStrategy(Strategy):
    def __init__(self, config: EMACrossStrategyConfig) -> None:
        super().__init__(config)
        self.fast_ema = ExponentialMovingAverage(config.fast_ema_period)
        self.slow_ema = ExponentialMovingAverage(config.slow_ema_period)
        self.instrument = None

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        if self.instrument is None:
            self.log.error(f"instrument {self.config.instrument_id} not in the cache: stopping")
            self.stop()
            return
        self.register_indicator_for_bars(self.config.bar_type, self.fast_ema)
        self.register_indicator_for_bars(self.config.bar_type, self.slow_ema)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        if not (self.fast_ema.initialized and self.slow_ema.initialized) or self.has_pending_orders():
            return
        direction = 1 if self.fast_ema.value > self.slow_ema.value else -1
        current = self.signed_position_quantity()
        if (current > 0 and direction > 0) or (current < 0 and direction < 0):
            return
        target = direction * self.target_quantity(bar.close.as_decimal())
        self.trade_towards(target, current)

    def has_pending_orders(self) -> bool:
        """An order sent but not yet filled (latency): wait for it instead of sending another."""
        instrument_id = self.config.instrument_id
        return bool(
            self.cache.orders_inflight_count(venue=None, instrument_id=instrument_id)
            or self.cache.orders_open_count(venue=None, instrument_id=instrument_id),
        )

    def signed_position_quantity(self) -> Decimal:
        return self.portfolio.net_position(self.config.instrument_id)

    def equity(self, price: Decimal) -> Decimal:
        account = self.portfolio.account(self.config.instrument_id.venue)
        balance = account.balance_total(self.instrument.settlement_currency).as_decimal()
        positions = self.cache.positions_open(venue=None, instrument_id=self.config.instrument_id)
        unrealised = sum(
            (
                (price - Decimal(str(p.avg_px_open)))
                * p.signed_decimal_qty()
                * self.instrument.multiplier.as_decimal()
                for p in positions
            ),
            Decimal(0),
        )
        return balance + unrealised

    def target_quantity(self, price: Decimal) -> Decimal:
        return quantity_for_notional(
            equity=self.equity(price),
            price=price,
            notional_pct_of_equity=Decimal(str(self.config.notional_pct_of_equity)),
            size_increment=self.instrument.size_increment.as_decimal(),
            min_quantity=self.instrument.min_quantity.as_decimal()
            if self.instrument.min_quantity
            else Decimal(0),
            max_quantity=self.instrument.max_quantity.as_decimal() if self.instrument.max_quantity else None,
        )

    def trade_towards(self, target: Decimal, current: Decimal) -> None:
        delta = target - current
        if delta == 0:
            return
        order = self.order_factory.market(
            instrument_id=self.config.instrument_id,
            order_side=OrderSide.BUY if delta > 0 else OrderSide.SELL,
            quantity=self.instrument.make_qty(abs(delta)),
        )
        self.submit_order(order)

    def on_stop(self) -> None:
        self.cancel_all_orders(self.config.instrument_id)
