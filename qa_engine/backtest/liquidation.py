"""Liquidation in the backtest: a Nautilus SimulationModule of the simulated venue, for bar data.

Nautilus 1.231's `liquidation_enabled` belongs to the Rust (v2) backtest engine only; the v1 engine
this project runs has no liquidation at all (an account can fall to 1 USDT holding 100x its equity),
which is why this module exists. It follows the venues' cross-margin rule with their first risk-limit
tier:

- equity = wallet balance + unrealised pnl of every open position of the venue;
- maintenance margin of a position = |quantity| x multiplier x price x maintenance rate
  (qa_engine.risk.margin.MAINTENANCE_MARGIN_RATES: Bybit BTCUSDT 0.5 %);
- a position is liquidated when the price reaches its liquidation price, where equity equals its
  maintenance margin (other positions' unrealised pnl held at their last close). For a long of q at
  average entry e with B = balance + others' unrealised pnl: p = (q e - B) / (q (1 - mmr)); for a short:
  p = (B + q e) / (q (1 + mmr)).

With bars, the bar's low (long) or high (short) tells whether the price reached p during the bar. The
check runs in `pre_process`, on the position held through the bar, before the matching engine and the
strategies see it. The position is closed by a reduce-only market order tagged LIQUIDATION, filled at
p (at the bar's open when the bar opened beyond p: a gap), stamped at the bar's close time, through the
execution client's own event generators (OrderSubmitted, OrderAccepted, OrderFilled), so Nautilus'
position, account and the strategy see a normal fill. The venue's taker fee is charged on it by the
run's fee model. Then a liquidation fee of `fee_rate` x the closed notional (default: the maintenance
rate, i.e. the maintenance margin the position still held goes to the venue's insurance fund, as when
Bybit's liquidation engine takes a position over at its bankruptcy price) is booked with
`exchange.adjust_account`, never taking the balance below zero. The strategy's open orders on the
instrument are cancelled first, as the venue does. The run goes on.

Know this: a stop order resting between the bar's open and p is not given priority over the
liquidation in the bar that crosses both.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.model.data import Bar
from nautilus_trader.model.enums import LiquiditySide
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import OrderType
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import TradeId
from nautilus_trader.model.identifiers import VenueOrderId
from nautilus_trader.model.objects import Money
from nautilus_trader.model.orders import MarketOrder

LIQUIDATION_TOPIC = "qa.liquidation"  # + ".<venue>": Liquidation records for the run recorder
LIQUIDATION_TAG = "LIQUIDATION|100|venue liquidation: equity reached maintenance margin"


@dataclass(frozen=True)
class Liquidation:
    ts_ns: int
    instrument_id: str
    side: str  # the liquidated position: LONG or SHORT
    quantity: Decimal
    average_entry: Decimal
    liquidation_price: Decimal  # where equity = maintenance margin (exact, before tick rounding)
    fill_price: Decimal  # the tick-rounded price the close filled at (the bar's open on a gap)
    maintenance_rate: Decimal
    balance_before: Decimal  # wallet balance + other positions' unrealised pnl at the check
    liquidation_fee: Decimal
    client_order_id: str


def liquidation_price(
    signed_quantity: Decimal, average_entry: Decimal, balance: Decimal, maintenance_rate: Decimal
) -> Decimal:
    """Where equity (balance + the position's unrealised pnl) equals the position's maintenance margin.

    `signed_quantity` includes the multiplier. May be <= 0 for a long that can never be liquidated."""
    quantity = abs(signed_quantity)
    if signed_quantity > 0:
        return (quantity * average_entry - balance) / (quantity * (1 - maintenance_rate))
    return (balance + quantity * average_entry) / (quantity * (1 + maintenance_rate))


class LiquidationConfig(SimulationModuleConfig, frozen=True):
    """Per instrument id of the venue: maintenance rate, liquidation fee rate and the taker fee rate
    the close pays (absent: the instrument's own taker fee), as decimal text."""

    maintenance_rates: dict[str, str]
    fee_rates: dict[str, str]
    taker_fee_rates: dict[str, str] | None = None


class LiquidationModule(SimulationModule):
    def __init__(self, config: LiquidationConfig) -> None:
        super().__init__(config)
        self._maintenance = {k: Decimal(v) for k, v in config.maintenance_rates.items()}
        self._fee = {k: Decimal(v) for k, v in config.fee_rates.items()}
        self._taker = {k: Decimal(v) for k, v in (config.taker_fee_rates or {}).items()}
        self._last_close: dict[str, Decimal] = {}
        self.liquidations: list[Liquidation] = []
        self._count = 0

    def pre_process(self, data) -> None:
        if not isinstance(data, Bar):
            return
        instrument_id = data.bar_type.instrument_id
        key = instrument_id.value
        if key in self._maintenance:
            cache = self.exchange.cache
            for position in cache.positions_open(venue=None, instrument_id=instrument_id):
                self._check(position, data)
        self._last_close[key] = data.close.as_decimal()

    def process(self, ts_now: int) -> None:
        """Checks run in pre_process (on each bar, before the engine reacts to it)."""

    def _others_unrealised(self, instrument_id) -> Decimal:
        total = Decimal(0)
        for other in self.exchange.cache.positions_open(venue=self.exchange.id):
            if other.instrument_id == instrument_id:
                continue
            close = self._last_close.get(other.instrument_id.value)
            if close is not None:
                multiplier = self.exchange.cache.instrument(other.instrument_id).multiplier.as_decimal()
                average = Decimal(str(other.avg_px_open))
                total += (close - average) * other.signed_decimal_qty() * multiplier
        return total

    def _check(self, position, bar: Bar) -> None:
        cache = self.exchange.cache
        instrument = cache.instrument(position.instrument_id)
        key = position.instrument_id.value
        rate = self._maintenance[key]
        currency = instrument.settlement_currency
        balance = self.exchange.get_account().balance_total(currency).as_decimal()
        balance += self._others_unrealised(position.instrument_id)
        signed = position.signed_decimal_qty() * instrument.multiplier.as_decimal()
        average = Decimal(str(position.avg_px_open))
        price = liquidation_price(signed, average, balance, rate)
        if price <= 0:
            return
        if signed > 0:
            if bar.low.as_decimal() > price:
                return
            fill = min(price, bar.open.as_decimal())
        else:
            if bar.high.as_decimal() < price:
                return
            fill = max(price, bar.open.as_decimal())
        self._liquidate(position, instrument, bar, price, fill, rate, balance, average)

    def _liquidate(self, position, instrument, bar, price, fill, rate, balance, average) -> None:
        exchange = self.exchange
        client = exchange.exec_client
        ts = bar.ts_init
        engine = exchange.get_matching_engine(position.instrument_id)
        for order in list(exchange.get_open_orders(position.instrument_id)):
            engine.cancel_order(order)
        # Round the fill against the trader: a long's close (a sell) down, a short's (a buy) up.
        tick = instrument.price_increment.as_decimal()
        rounding = "ROUND_FLOOR" if position.is_long else "ROUND_CEILING"
        fill_price = instrument.make_price((fill / tick).to_integral_value(rounding=rounding) * tick)
        self._count += 1
        side = "LONG" if position.is_long else "SHORT"
        quantity = position.quantity.as_decimal()
        client_order_id = ClientOrderId(f"LIQ-{exchange.id}-{self._count}")
        order = MarketOrder(
            trader_id=position.trader_id,
            strategy_id=position.strategy_id,
            instrument_id=position.instrument_id,
            client_order_id=client_order_id,
            order_side=OrderSide.SELL if position.is_long else OrderSide.BUY,
            quantity=position.quantity,
            init_id=UUID4(),
            ts_init=ts,
            reduce_only=True,
            tags=[LIQUIDATION_TAG],
        )
        exchange.cache.add_order(order, position_id=position.id)
        # The run's taker rate (the fee model's get_commission needs the order's liquidity side, which
        # only the matching engine can set).
        taker = self._taker.get(position.instrument_id.value, instrument.taker_fee)
        notional = quantity * instrument.multiplier.as_decimal() * fill_price.as_decimal()
        commission = Money(notional * taker, instrument.quote_currency)
        client.generate_order_submitted(order.strategy_id, order.instrument_id, client_order_id, ts)
        venue_order_id = VenueOrderId(client_order_id.value)
        client.generate_order_accepted(
            order.strategy_id, order.instrument_id, client_order_id, venue_order_id, ts
        )
        client.generate_order_filled(
            order.strategy_id,
            order.instrument_id,
            client_order_id,
            venue_order_id,
            None,
            TradeId(f"{client_order_id.value}-1"),
            order.side,
            OrderType.MARKET,
            order.quantity,
            fill_price,
            instrument.quote_currency,
            commission,
            LiquiditySide.TAKER,
            ts,
        )
        currency = instrument.settlement_currency
        left = exchange.get_account().balance_total(currency).as_decimal()
        fee = min(self._fee[position.instrument_id.value] * notional, max(left, Decimal(0)))
        fee = Money(fee, currency)
        if fee.as_decimal() > 0:
            exchange.adjust_account(Money(-fee.as_decimal(), currency))
        record = Liquidation(
            ts_ns=ts,
            instrument_id=position.instrument_id.value,
            side=side,
            quantity=quantity,
            average_entry=average,
            liquidation_price=price,
            fill_price=fill_price.as_decimal(),
            maintenance_rate=rate,
            balance_before=balance,
            liquidation_fee=fee.as_decimal(),
            client_order_id=client_order_id.value,
        )
        self.liquidations.append(record)
        self.msgbus.publish(topic=f"{LIQUIDATION_TOPIC}.{exchange.id}", msg=record)
        self._log.warning(
            f"LIQUIDATED {side} {quantity} {position.instrument_id} (entry {average}) at {fill_price}: "
            f"liquidation price {price:.2f}, maintenance rate {rate}, liquidation fee {fee}"
        )

    def log_diagnostics(self, logger) -> None:
        logger.info(f"liquidations: {len(self.liquidations)}")

    def reset(self) -> None:
        self._last_close.clear()
        self.liquidations.clear()
        self._count = 0
