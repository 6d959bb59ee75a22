"""Perpetual funding settlement in the backtest: a Nautilus SimulationModule of the simulated venue.

NautilusTrader 1.231's v1 BacktestEngine carries `FundingRateUpdate` data (the data engine publishes it
on `data.funding_rates.<venue>.<symbol>` and caches the latest rate) but settles nothing: funding rates
never reach the simulated exchange (its `process_*` methods take book, quote, trade, bar, status and close
data only) and no position or account changes at a funding time. This module does the settlement with
the engine's own mechanisms, which is why it is written here at all:

- `exchange.adjust_account(Money)` moves the account balance and emits a reported `AccountState`, as
  a venue's funding transfer does;
- a `PositionAdjusted(FUNDING)` event is applied to the position (its realised pnl includes funding);
- a `FundingPayment` is published on `qa.funding.<venue>` for the run recorder (trades.csv, reports).

When: at each funding time T of the instrument's series (Bybit and Binance settle every 8 h at 00:00,
08:00, 16:00 UTC). Which position: the one held at T. With bar data, the bar that closes at T is
processed after the funding update stamped T (the runner puts funding before bars of the same
timestamp; the engine's sort is stable), and this module settles in `pre_process` of that bar, before
the matching engine and the strategies see it: orders sent in reaction to the bar that closes at T
(filled at its close, i.e. just after T) change the position after the settlement, so a position
closed on that bar still pays, and one opened on it does not. Price: the close of the bar that closes
at T (the venue uses its mark price at T; bar data has only the last trade price); if the series has
no bar closing at T, the open of the first bar after T.

Amount: -sign(position) x |quantity| x multiplier x price x rate, in the settlement currency: with a
positive rate longs pay and shorts receive; with a negative one shorts pay.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.model.data import Bar
from nautilus_trader.model.enums import PositionAdjustmentType
from nautilus_trader.model.events import PositionAdjusted
from nautilus_trader.model.objects import Money

FUNDING_TOPIC = "qa.funding"  # + ".<venue>": FundingPayment records for the run recorder


@dataclass(frozen=True)
class FundingPayment:
    """One funding settlement of one position: `amount` > 0 is received, < 0 is paid."""

    ts_ns: int  # the funding time
    instrument_id: str
    rate: Decimal
    price: Decimal
    signed_quantity: Decimal  # the position held at the funding time
    amount: Decimal  # in `currency`, rounded to its precision as booked on the account
    currency: str


def funding_amount(signed_quantity: Decimal, multiplier: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    """What the holder of `signed_quantity` receives (> 0) or pays (< 0) at one settlement."""
    return -signed_quantity * multiplier * price * rate


class FundingSettlementConfig(SimulationModuleConfig, frozen=True):
    """`instrument_ids`: the perpetuals of this venue whose funding series the run loads."""

    instrument_ids: list[str]


class FundingSettlementModule(SimulationModule):
    def __init__(self, config: FundingSettlementConfig) -> None:
        super().__init__(config)
        self._instrument_ids = set(config.instrument_ids)
        self._pending: dict[str, list] = {}  # instrument id -> FundingRateUpdates not yet settled
        self.payments: list[FundingPayment] = []

    def register_venue(self, exchange) -> None:
        super().register_venue(exchange)
        self.msgbus.subscribe(topic=f"data.funding_rates.{exchange.id}.*", handler=self._on_funding_rate)

    def _on_funding_rate(self, update) -> None:
        instrument_id = update.instrument_id.value
        if instrument_id in self._instrument_ids:
            self._pending.setdefault(instrument_id, []).append(update)

    def pre_process(self, data) -> None:
        if not self._pending or not isinstance(data, Bar):
            return
        instrument_id = data.bar_type.instrument_id.value
        pending = self._pending.get(instrument_id)
        if not pending:
            return
        # ts_event: the bar's close (equal to ts_init in a backtest; live, ts_init is the arrival time)
        due = [update for update in pending if update.ts_event <= data.ts_event]
        if not due:
            return
        later = [update for update in pending if update.ts_event > data.ts_event]
        if later:
            self._pending[instrument_id] = later
        else:  # keeps `not self._pending` the cheap test of every bar between funding times
            del self._pending[instrument_id]
        for update in due:
            price = data.close if data.ts_event == update.ts_event else data.open
            self._settle(update, price.as_decimal())

    def process(self, ts_now: int) -> None:
        """Settlement happens in pre_process (at the bar that closes at the funding time)."""

    def _settle(self, update, price: Decimal) -> None:
        cache = self.exchange.cache
        instrument = cache.instrument(update.instrument_id)
        rate = Decimal(str(update.rate))  # a catalog query gives the rate as its decimal text
        currency = instrument.settlement_currency
        for position in cache.positions_open(venue=None, instrument_id=update.instrument_id):
            signed_quantity = position.signed_decimal_qty()
            money = Money(
                funding_amount(signed_quantity, instrument.multiplier.as_decimal(), price, rate), currency
            )
            if money.as_decimal() == 0:
                continue
            self.exchange.adjust_account(money)
            adjustment = PositionAdjusted(
                trader_id=position.trader_id,
                strategy_id=position.strategy_id,
                instrument_id=position.instrument_id,
                position_id=position.id,
                account_id=position.account_id,
                adjustment_type=PositionAdjustmentType.FUNDING,
                quantity_change=None,
                pnl_change=money,
                reason=f"funding rate {rate} at {price}",
                event_id=UUID4(),
                ts_event=update.ts_event,
                ts_init=update.ts_event,
            )
            position.apply_adjustment(adjustment)
            cache.update_position(position)
            payment = FundingPayment(
                ts_ns=update.ts_event,
                instrument_id=update.instrument_id.value,
                rate=rate,
                price=price,
                signed_quantity=signed_quantity,
                amount=money.as_decimal(),
                currency=currency.code,
            )
            self.payments.append(payment)
            self.msgbus.publish(topic=f"{FUNDING_TOPIC}.{self.exchange.id}", msg=payment)

    def log_diagnostics(self, logger) -> None:
        total = sum((payment.amount for payment in self.payments), Decimal(0))
        logger.info(f"funding settlements: {len(self.payments)}, net {total}")

    def reset(self) -> None:
        self._pending.clear()
        self.payments.clear()
