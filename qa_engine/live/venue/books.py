"""The books of one Bybit unified-trading account on USDT linear perpetuals, with the backtest's rules.

A pure, synchronous, I/O-free model: the loopback venue's server (qa_engine.live.venue.server) feeds it
bars and order requests and publishes what it returns. Its purpose is parity: a live node trading against
it sees exactly the fills, fees, funding and balances the project's backtest of the same config books, so
every rule is the backtest's, imported where it is code of ours and replicated (with the source named)
where it is Nautilus' matching engine:

- market orders fill at the last bar's close, `slippage_bps` worse, rounded to the tick against the
  trader (qa_engine.backtest.slippage.slipped_price), taker fee: a market order sent on bar T's close
  fills at bar T's close, as the backtest at latency 0 does;
- resting orders are matched on the following bars' price path as Nautilus 1.231's OrderMatchingEngine
  turns a bar into trade ticks (backtest/engine.pyx `_process_trade_ticks_from_bar`): the open (only
  when it differs from the last price), then high and low (high first when |high - open| < |low - open|,
  bar_adaptive_high_low_ordering=True; each only when it extends past the last price), then the close;
  a limit fills when a point reaches its price, at its price, maker fee; a stop-market (Bybit
  triggerDirection 1 = rises to, 2 = falls to) triggers when a point reaches the trigger price and fills
  at the trigger price, or at the open when the bar gapped through it, without slippage, taker fee;
- a marketable limit (a buy at or above the last price) fills at once at the last price, taker fee (a
  PostOnly one is cancelled, as Bybit does); a stop whose trigger is already reached is rejected
  (110092 / 110093), as Nautilus rejects it;
- fees: notional x rate, rounded to the coin's 8 decimals the way Nautilus' Money rounds (via a float);
  realised PnL with Nautilus' float position arithmetic (model/position.pyx), rounded the same way, so
  wallet balances agree to the last satoshi of USDT;
- funding (qa_engine.backtest.funding): at each funding time T, settled in `on_bar` of the bar that closes
  at T before its orders are matched, on the position held then, at that bar's close (the open of the
  first later bar when none closes at T); longs pay a positive rate;
- liquidation (qa_engine.backtest.liquidation, `liquidation=True`): cross margin, first risk-limit tier,
  checked on each bar before matching; the position is closed at the liquidation price (the open on a
  gap) with the taker fee plus a liquidation fee;
- the initial-margin check of qa_engine.risk.margin.check_initial_margin, as strategies/base.py runs it
  (positions only, at the last close, the symbol's leverage): retCode 110007 when it denies.

API (the server codes against these names):

    InstrumentSpec(symbol, tick_size, qty_step, min_qty, max_qty, min_notional)
        .from_instruments_info(entry)        # a GET /v5/market/instruments-info list entry
    AccountSpec(starting_balance, maker_fee_rate, taker_fee_rate, slippage_bps, default_leverage,
                maintenance_margin_rates=None, liquidation=True, liquidation_fee_rate=None, coin="USDT")
    BarRow(symbol, start_ms, end_ms, open, high, low, close, volume, turnover)   # end_ms: close time
    VenueEvent(topic: "order" | "execution" | "position" | "wallet", data: one v5 private-stream record)
    Reply(ret_code, ret_msg, result, events)
    VenueBooks(instruments, account, funding_rates=None)   # funding_rates: symbol -> {ts_ms: rate}
        .on_bar(bar) -> list[VenueEvent]
        .place_order(params, now_ms) / .amend_order(...) / .cancel_order(...) / .cancel_all(...) -> Reply
        .set_leverage(symbol, buy_leverage, sell_leverage) -> Reply
        .wallet_balance() -> dict        # the GET /v5/account/wallet-balance `result`
        .positions(symbol=None) / .open_orders(symbol=None) / .order_history(symbol=None)
        .executions(symbol=None) / .fee_rates(symbol=None) -> list[dict]   # the REST `result.list`
        .snapshot() -> dict              # plain numbers for tests

`params` are Bybit's POST /v5/order/create (amend, cancel, cancel-all) bodies, strings as sent. Events
come in the order a fill produces them: execution, order, position, wallet.

Not modelled: partial fills (a resting order fills in full at one point; the backtest fills it from a
quarter of the bar's volume, which is larger than any order of this project), hedge mode, TP/SL attached
to orders or positions, conditional limit orders, mark/index-price triggers (every trigger uses the last
price, i.e. the bar path), risk-limit tiers beyond the first, and price bands (110003 only for a price
<= 0). Funding is not published as an execution (Nautilus' adapter would take it for a trade): it shows
in the position's cumRealisedPnl and the wallet.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from typing import Any
from typing import Literal

from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.objects import Money
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from qa_engine.backtest.funding import funding_amount
from qa_engine.backtest.liquidation import liquidation_price
from qa_engine.backtest.slippage import slipped_price
from qa_engine.live.venue import payloads
from qa_engine.risk.margin import DEFAULT_MAINTENANCE_MARGIN_RATE
from qa_engine.risk.margin import check_initial_margin

OPEN_STATUSES = ("New", "PartiallyFilled", "Untriggered")
RISES, FALLS = 1, 2  # Bybit triggerDirection


@dataclass(frozen=True)
class InstrumentSpec:
    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal

    @classmethod
    def from_instruments_info(cls, entry: dict) -> InstrumentSpec:
        lot, price = entry["lotSizeFilter"], entry["priceFilter"]
        return cls(
            symbol=entry["symbol"],
            tick_size=Decimal(price["tickSize"]),
            qty_step=Decimal(lot["qtyStep"]),
            min_qty=Decimal(lot["minOrderQty"]),
            max_qty=Decimal(lot["maxOrderQty"]),
            min_notional=Decimal(lot.get("minNotionalValue") or "0"),
        )


@dataclass(frozen=True)
class AccountSpec:
    starting_balance: Decimal
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal
    slippage_bps: Decimal
    default_leverage: Decimal
    maintenance_margin_rates: dict[str, Decimal] | None = None  # by symbol; default 0.5 %
    liquidation: bool = True
    liquidation_fee_rate: Decimal | None = None  # None: the maintenance rate, as the backtest
    coin: str = "USDT"


@dataclass(frozen=True)
class BarRow:
    symbol: str
    start_ms: int
    end_ms: int  # close time: the bar's prices are known from here on
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    turnover: Decimal


@dataclass(frozen=True)
class VenueEvent:
    topic: Literal["order", "execution", "position", "wallet"]
    data: dict  # one record in Bybit v5 private-stream shape


@dataclass(frozen=True)
class Reply:
    ret_code: int
    ret_msg: str
    result: dict
    events: list[VenueEvent]


def _reject(code: int, message: str) -> Reply:
    return Reply(code, message, {}, [])


def to_money(value: Decimal) -> Decimal:
    """`value` rounded to USDT's 8 decimals exactly as Nautilus' Money rounds it (through a float)."""
    return Money(value, USDT).as_decimal()


def _price_f64(value: Decimal) -> float:
    return Price.from_str(str(value)).as_double()


def _qty_f64(value: Decimal) -> float:
    return Quantity.from_str(str(value)).as_double()


@dataclass
class _Order:
    order_id: str
    order_link_id: str
    symbol: str
    side: str  # Buy | Sell
    order_type: str  # Market | Limit
    qty: Decimal
    price: Decimal | None
    time_in_force: str
    reduce_only: bool
    close_on_trigger: bool
    trigger_price: Decimal | None
    trigger_direction: int
    trigger_by: str
    last_price_on_created: Decimal
    created_ms: int
    updated_ms: int
    status: str = "New"
    cum_exec_qty: Decimal = Decimal(0)
    cum_exec_value: Decimal = Decimal(0)
    cum_exec_fee: Decimal = Decimal(0)
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    create_type: str = "CreateByUser"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def sign(self) -> int:
        return 1 if self.side == "Buy" else -1


@dataclass
class _Position:
    symbol: str
    leverage: Decimal
    signed_qty: Decimal = Decimal(0)
    average_entry_f64: float = 0.0  # Nautilus' avg_px_open (a double)
    cum_realised_pnl: Decimal = Decimal(0)
    cur_realised_pnl: Decimal = Decimal(0)
    created_ms: int = 0
    updated_ms: int = 0
    seq: int = 0
    liquidation_price_text: str = ""

    @property
    def average_entry(self) -> Decimal:
        return Decimal(repr(self.average_entry_f64)) if self.signed_qty else Decimal(0)


@dataclass
class _Fill:
    exec_id: str
    symbol: str
    order_id: str
    order_link_id: str
    side: str
    order_type: str
    stop_order_type: str
    order_price: Decimal
    order_qty: Decimal
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_rate: Decimal
    is_maker: bool
    closed_size: Decimal
    leaves_qty: Decimal
    mark_price: Decimal
    time_ms: int
    seq: int
    exec_type: str = "Trade"
    create_type: str = "CreateByUser"


@dataclass(frozen=True)
class FundingRecord:
    symbol: str
    ts_ms: int
    rate: Decimal
    price: Decimal
    signed_qty: Decimal
    amount: Decimal  # > 0 received, < 0 paid


@dataclass
class _Totals:
    fees: Decimal = Decimal(0)
    funding: Decimal = Decimal(0)
    realised: Decimal = Decimal(0)  # price PnL only
    liquidation_fees: Decimal = Decimal(0)
    funding_records: list[FundingRecord] = field(default_factory=list)


class VenueBooks:
    """One account's orders, positions and wallet; see the module docstring for the rules."""

    def __init__(
        self,
        instruments: list[InstrumentSpec],
        account: AccountSpec,
        funding_rates: dict[str, dict[int, Decimal]] | None = None,
    ) -> None:
        self.account = account
        self.instruments = {spec.symbol: spec for spec in instruments}
        self._funding = {s: dict(sorted(r.items())) for s, r in (funding_rates or {}).items()}
        self._balance = to_money(account.starting_balance)
        self._orders: dict[str, _Order] = {}
        self._link_ids: set[str] = set()
        self._positions = {s: _Position(s, account.default_leverage) for s in self.instruments}
        self._last: dict[str, Decimal] = {}
        self._last_bar_ms: dict[str, int] = {}
        self._fills: list[_Fill] = []
        self._seq = 0
        self._now_ms = 0
        self.totals = _Totals()

    # --- market data ---------------------------------------------------------------------------

    def on_bar(self, bar: BarRow) -> list[VenueEvent]:
        """Funding due at the bar's close, liquidation check, matching on the bar path, mark to close."""
        if bar.symbol not in self.instruments:
            return []
        self._now_ms = bar.end_ms
        events = self._settle_funding(bar)
        if self.account.liquidation:
            events += self._check_liquidation(bar)
        events += self._match_bar(bar)
        self._last[bar.symbol] = bar.close
        self._last_bar_ms[bar.symbol] = bar.end_ms
        position = self._positions[bar.symbol]
        if position.signed_qty:
            self._update_liquidation_text(position)
            events += [self._position_event(bar.symbol), self._wallet_event()]
        return events

    def _settle_funding(self, bar: BarRow) -> list[VenueEvent]:
        rates = self._funding.get(bar.symbol)
        if not rates:
            return []
        due = [ts for ts in rates if ts <= bar.end_ms]
        events: list[VenueEvent] = []
        for ts in due:
            rate = rates.pop(ts)
            position = self._positions[bar.symbol]
            price = bar.close if ts == bar.end_ms else bar.open
            if not position.signed_qty:
                continue
            amount = to_money(funding_amount(position.signed_qty, Decimal(1), price, rate))
            if amount == 0:
                continue
            self._balance += amount
            position.cum_realised_pnl += amount
            position.cur_realised_pnl += amount
            position.updated_ms = bar.end_ms
            self.totals.funding += amount
            self.totals.funding_records.append(
                FundingRecord(bar.symbol, ts, rate, price, position.signed_qty, amount)
            )
            events += [self._position_event(bar.symbol), self._wallet_event()]
        return events

    def _maintenance_rate(self, symbol: str) -> Decimal:
        rates = self.account.maintenance_margin_rates or {}
        return rates.get(symbol, DEFAULT_MAINTENANCE_MARGIN_RATE)

    def _unrealised(self, symbol: str, mark: Decimal | None = None) -> Decimal:
        position = self._positions[symbol]
        mark = mark if mark is not None else self._last.get(symbol)
        if not position.signed_qty or mark is None:
            return Decimal(0)
        return (mark - Decimal(repr(position.average_entry_f64))) * position.signed_qty

    def _others_unrealised(self, symbol: str) -> Decimal:
        return sum((self._unrealised(other) for other in self._positions if other != symbol), Decimal(0))

    def _update_liquidation_text(self, position: _Position) -> None:
        balance = self._balance + self._others_unrealised(position.symbol)
        price = liquidation_price(
            position.signed_qty,
            Decimal(repr(position.average_entry_f64)),
            balance,
            self._maintenance_rate(position.symbol),
        )
        tick = self.instruments[position.symbol].tick_size
        text = payloads.fixed(price.quantize(tick), payloads.decimals_of(tick)) if price > 0 else ""
        position.liquidation_price_text = text

    def _check_liquidation(self, bar: BarRow) -> list[VenueEvent]:
        position = self._positions[bar.symbol]
        if not position.signed_qty:
            return []
        rate = self._maintenance_rate(bar.symbol)
        balance = self._balance + self._others_unrealised(bar.symbol)
        average = Decimal(repr(position.average_entry_f64))
        price = liquidation_price(position.signed_qty, average, balance, rate)
        if price <= 0:
            return []
        if position.signed_qty > 0:
            if bar.low > price:
                return []
            fill, rounding = min(price, bar.open), "ROUND_FLOOR"
        else:
            if bar.high < price:
                return []
            fill, rounding = max(price, bar.open), "ROUND_CEILING"
        spec = self.instruments[bar.symbol]
        fill_price = (fill / spec.tick_size).to_integral_value(rounding=rounding) * spec.tick_size
        events = self._cancel_where(lambda o: o.symbol == bar.symbol, "CancelByPzTakeover", bar.end_ms)
        quantity = abs(position.signed_qty)
        order = self._new_order(
            symbol=bar.symbol,
            side="Sell" if position.signed_qty > 0 else "Buy",
            order_type="Market",
            qty=quantity,
            price=fill_price,
            time_in_force="IOC",
            reduce_only=True,
            now_ms=bar.end_ms,
            order_link_id="",
        )
        order.create_type = "CreateByLiquidate"
        notional = quantity * fill_price
        fee = to_money(notional * self.account.taker_fee_rate)  # as LiquidationModule charges it
        events += self._fill(
            order, fill_price, is_maker=False, now_ms=bar.end_ms, fee=fee, exec_type="BustTrade"
        )
        fee_rate = self.account.liquidation_fee_rate
        fee_rate = fee_rate if fee_rate is not None else rate
        charge = to_money(min(fee_rate * notional, max(self._balance, Decimal(0))))
        if charge > 0:
            self._balance -= charge
            position.cum_realised_pnl -= charge
            self.totals.liquidation_fees += charge
            events.append(self._wallet_event())
        return events

    def _path(self, bar: BarRow) -> list[tuple[Decimal, bool]]:
        """The bar as Nautilus' matching engine walks it: (price, is_open_gap) points."""
        last = self._last.get(bar.symbol)
        points: list[tuple[Decimal, bool]] = []
        if last is None or bar.open != last:
            points.append((bar.open, True))
            last = bar.open
        high_first = abs(bar.high - bar.open) < abs(bar.low - bar.open)
        for extreme in (bar.high, bar.low) if high_first else (bar.low, bar.high):
            if (extreme == bar.high and extreme > last) or (extreme == bar.low and extreme < last):
                points.append((extreme, False))
                last = extreme
        if bar.close != last:
            points.append((bar.close, False))
        return points

    def _match_bar(self, bar: BarRow) -> list[VenueEvent]:
        events: list[VenueEvent] = []
        for point, at_open in self._path(bar):
            for order in self._resting(bar.symbol):
                if order.is_open:
                    events += self._match_order(order, point, at_open, bar.end_ms)
        return events

    def _resting(self, symbol: str) -> list[_Order]:
        """Bids then asks, as Nautilus' MatchingCore iterates them."""
        resting = [o for o in self._orders.values() if o.symbol == symbol and o.is_open]
        return [o for o in resting if o.side == "Buy"] + [o for o in resting if o.side == "Sell"]

    def _match_order(self, order: _Order, point: Decimal, at_open: bool, now_ms: int) -> list[VenueEvent]:
        if order.trigger_price is not None:
            rises = order.trigger_direction == RISES
            if (rises and point >= order.trigger_price) or (not rises and point <= order.trigger_price):
                order.status, order.updated_ms = "Triggered", now_ms
                events = [VenueEvent("order", payloads.order_record(order, self.instruments[order.symbol]))]
                price = point if at_open else order.trigger_price
                return events + self._fill_reduce_checked(order, price, is_maker=False, now_ms=now_ms)
            return []
        if (order.side == "Buy" and point <= order.price) or (order.side == "Sell" and point >= order.price):
            return self._fill_reduce_checked(order, order.price, is_maker=True, now_ms=now_ms)
        return []

    def _fill_reduce_checked(
        self, order: _Order, price: Decimal, is_maker: bool, now_ms: int
    ) -> list[VenueEvent]:
        if order.reduce_only or order.close_on_trigger:
            held = self._positions[order.symbol].signed_qty
            if held * order.sign >= 0:  # nothing to reduce (Nautilus cancels it too)
                return self._cancel(order, "CancelByReduceOnly", now_ms)
            order.qty = min(order.qty, abs(held) + order.cum_exec_qty)
        return self._fill(order, price, is_maker=is_maker, now_ms=now_ms)

    # --- fills ---------------------------------------------------------------------------------

    def _fill(
        self,
        order: _Order,
        price: Decimal,
        *,
        is_maker: bool,
        now_ms: int,
        fee: Decimal | None = None,
        exec_type: str = "Trade",
    ) -> list[VenueEvent]:
        spec = self.instruments[order.symbol]
        position = self._positions[order.symbol]
        qty = order.qty - order.cum_exec_qty
        rate = self.account.maker_fee_rate if is_maker else self.account.taker_fee_rate
        if fee is None:  # VenueRateFeeModel: Money(Money(notional) x rate)
            fee = to_money(to_money(qty * price) * rate)
        held = position.signed_qty
        closed = min(qty, abs(held)) if held * order.sign < 0 else Decimal(0)
        pnl = Decimal(0)
        if closed:
            # Nautilus' MarginAccount.calculate_pnls: a double, through Money
            points = _price_f64(price) - position.average_entry_f64
            points = points if held > 0 else -points
            pnl = to_money(Decimal(repr(_qty_f64(closed) * 1.0 * points)))
        self._apply_to_position(position, order.sign * qty, price, now_ms)
        self._balance += pnl - fee
        position.cum_realised_pnl += pnl - fee
        if not held or held * position.signed_qty < 0:  # a new position: its own realised PnL
            position.cur_realised_pnl = Decimal(0)
        position.cur_realised_pnl += pnl - fee
        self.totals.fees += fee
        self.totals.realised += pnl
        order.cum_exec_qty += qty
        order.cum_exec_value += qty * price
        order.cum_exec_fee += fee
        order.status, order.updated_ms = "Filled", now_ms
        self._seq += 1
        fill = _Fill(
            exec_id=str(uuid.uuid4()),
            symbol=order.symbol,
            order_id=order.order_id,
            order_link_id=order.order_link_id,
            side=order.side,
            order_type=order.order_type,
            stop_order_type="Stop" if order.trigger_price is not None else "UNKNOWN",
            order_price=order.price if order.price is not None else price,
            order_qty=order.qty,
            price=price,
            qty=qty,
            fee=fee,
            fee_rate=rate,
            is_maker=is_maker,
            closed_size=closed,
            leaves_qty=Decimal(0),
            mark_price=self._last.get(order.symbol, price),
            time_ms=now_ms,
            seq=self._seq,
            exec_type=exec_type,
            create_type=order.create_type,
        )
        self._fills.append(fill)
        events = [
            VenueEvent("execution", payloads.execution_record(fill, spec)),
            VenueEvent("order", payloads.order_record(order, spec)),
        ]
        if closed:  # reduced, closed or flipped: reduce-only orders that no longer reduce go
            events += self._cancel_where(
                lambda o: (
                    o.symbol == order.symbol
                    and (o.reduce_only or o.close_on_trigger)
                    and position.signed_qty * o.sign >= 0
                ),
                "CancelByReduceOnly",
                now_ms,
            )
        return [*events, self._position_event(order.symbol), self._wallet_event()]

    def _apply_to_position(self, position: _Position, signed: Decimal, price: Decimal, now_ms: int) -> None:
        """Nautilus' Position arithmetic (doubles) for the average entry; a flip opens at the fill price."""
        held = position.signed_qty
        after = held + signed
        if not held:
            position.average_entry_f64 = _price_f64(price)
            position.created_ms = now_ms
        elif held * signed > 0:
            quantity = _qty_f64(abs(held))
            position.average_entry_f64 = (
                position.average_entry_f64 * quantity + _price_f64(price) * _qty_f64(abs(signed))
            ) / (quantity + _qty_f64(abs(signed)))
        elif after * held < 0:
            position.average_entry_f64 = _price_f64(price)
            position.created_ms = now_ms
        if after == 0:
            position.average_entry_f64 = 0.0
            position.liquidation_price_text = ""
        position.signed_qty = after
        position.updated_ms = now_ms
        self._seq += 1
        position.seq = self._seq

    # --- order entry ---------------------------------------------------------------------------

    def _new_order(self, **kwargs: Any) -> _Order:
        now_ms = kwargs.pop("now_ms")
        order = _Order(
            order_id=str(uuid.uuid4()),
            order_link_id=kwargs.pop("order_link_id"),
            close_on_trigger=kwargs.pop("close_on_trigger", False),
            trigger_price=kwargs.pop("trigger_price", None),
            trigger_direction=kwargs.pop("trigger_direction", 0),
            trigger_by=kwargs.pop("trigger_by", "LastPrice"),
            last_price_on_created=self._last.get(kwargs["symbol"], Decimal(0)),
            created_ms=now_ms,
            updated_ms=now_ms,
            **kwargs,
        )
        self._orders[order.order_id] = order
        if order.order_link_id:
            self._link_ids.add(order.order_link_id)
        return order

    def place_order(self, params: dict, now_ms: int) -> Reply:
        checked = self._check_new_order(params)
        if isinstance(checked, Reply):
            return checked
        symbol, side, order_type, qty, price, trigger_price, direction = checked
        link_id = str(params.get("orderLinkId") or "")
        if link_id and link_id in self._link_ids:
            return _reject(110072, "OrderLinkedID is duplicate")
        reduce_only = _flag(params.get("reduceOnly"))
        close_on_trigger = _flag(params.get("closeOnTrigger"))
        sign = 1 if side == "Buy" else -1
        held = self._positions[symbol].signed_qty
        if reduce_only and held * sign >= 0:
            return _reject(110017, "Reduce-only rule not satisfied")
        if (reduce_only or close_on_trigger) and held * sign < 0:
            qty = min(qty, abs(held))
        last = self._last.get(symbol)
        if last is None:
            return _reject(10001, f"no market price for {symbol} yet")
        if not (reduce_only or close_on_trigger):
            denial = self._margin_denial(symbol, sign * qty, last)
            if denial is not None:
                return denial
        if trigger_price is not None:
            if direction == RISES and trigger_price <= last:
                message = f"expect Rising, but trigger_price[{trigger_price}] <= current[{last}]"
                return _reject(110092, message)
            if direction == FALLS and trigger_price >= last:
                message = f"expect Falling, but trigger_price[{trigger_price}] >= current[{last}]"
                return _reject(110093, message)
        order = self._new_order(
            symbol=symbol,
            side=side,
            order_type=order_type,
            qty=qty,
            price=price,
            time_in_force=str(params.get("timeInForce") or ("IOC" if order_type == "Market" else "GTC")),
            reduce_only=reduce_only,
            close_on_trigger=close_on_trigger,
            trigger_price=trigger_price,
            trigger_direction=direction,
            trigger_by=str(params.get("triggerBy") or "LastPrice"),
            order_link_id=link_id,
            now_ms=now_ms,
        )
        self._now_ms = max(self._now_ms, now_ms)
        events = self._enter(order, last, now_ms)
        return Reply(0, "OK", {"orderId": order.order_id, "orderLinkId": order.order_link_id}, events)

    def _enter(self, order: _Order, last: Decimal, now_ms: int) -> list[VenueEvent]:
        spec = self.instruments[order.symbol]
        if order.trigger_price is not None:
            order.status = "Untriggered"
            return [VenueEvent("order", payloads.order_record(order, spec))]
        if order.order_type == "Market":
            side = "BUY" if order.side == "Buy" else "SELL"
            price = slipped_price(last, side, self.account.slippage_bps, spec.tick_size)
            return self._fill_reduce_checked(order, price, is_maker=False, now_ms=now_ms)
        marketable = _marketable(order, last)
        if marketable and order.time_in_force == "PostOnly":
            order.status, order.reject_reason = "Cancelled", "EC_PostOnlyWillTakeLiquidity"
            order.cancel_type = "CancelByUser"
            return [VenueEvent("order", payloads.order_record(order, spec))]
        if marketable:
            return self._fill_reduce_checked(order, last, is_maker=False, now_ms=now_ms)
        if order.time_in_force in ("IOC", "FOK"):
            order.status, order.cancel_type = "Cancelled", "CancelByUser"
            return [VenueEvent("order", payloads.order_record(order, spec))]
        return [VenueEvent("order", payloads.order_record(order, spec)), self._wallet_event()]

    def _check_new_order(self, params: dict):
        """(symbol, side, type, qty, price, trigger price, trigger direction) or a rejection Reply."""
        if params.get("category", "linear") != "linear":
            return _reject(10001, "params error: category must be linear")
        symbol = params.get("symbol")
        spec = self.instruments.get(symbol)
        if spec is None:
            return _reject(10001, f"params error: symbol invalid ({symbol})")
        side = params.get("side")
        if side not in ("Buy", "Sell"):
            return _reject(10001, f"params error: side invalid ({side})")
        order_type = params.get("orderType")
        if order_type not in ("Market", "Limit"):
            return _reject(10001, f"params error: orderType invalid ({order_type})")
        if int(params.get("positionIdx") or 0) != 0:
            return _reject(10001, "params error: position idx not match position mode")
        qty = _decimal(params.get("qty"))
        if qty is None or qty <= 0 or qty % spec.qty_step != 0:
            return _reject(10001, f"params error: qty {params.get('qty')} not a multiple of {spec.qty_step}")
        if qty < spec.min_qty or qty > spec.max_qty:
            return _reject(10001, f"params error: qty must be within [{spec.min_qty}, {spec.max_qty}]")
        price = None
        if order_type == "Limit":
            price = _decimal(params.get("price"))
            if price is None or price <= 0:
                return _reject(110003, "Order price is out of permissible range")
            if price % spec.tick_size != 0:
                return _reject(10001, f"params error: price {price} is not a multiple of {spec.tick_size}")
        trigger_price = _decimal(params.get("triggerPrice")) if params.get("triggerPrice") else None
        direction = int(params.get("triggerDirection") or 0)
        if trigger_price is not None:
            if order_type != "Market":
                return _reject(10001, "params error: conditional limit orders are not supported here")
            if direction not in (RISES, FALLS) or trigger_price <= 0 or trigger_price % spec.tick_size:
                return _reject(10001, "params error: triggerDirection 1 or 2 with a valid triggerPrice")
        reference = price if price is not None else trigger_price or self._last.get(symbol)
        if reference is not None and qty * reference < spec.min_notional:
            return _reject(110094, f"Order does not meet minimum order value {spec.min_notional}USDT")
        return symbol, side, order_type, qty, price, trigger_price, direction

    def _margin_denial(self, symbol: str, signed_qty: Decimal, price: Decimal) -> Reply | None:
        """strategies/base.py margin_denial, seen from the venue: positions only, at the last closes."""
        exposures = {symbol: (self._positions[symbol].signed_qty, price)}
        for other, position in self._positions.items():
            if other != symbol and position.signed_qty:
                exposures[other] = (position.signed_qty, self._last.get(other, position.average_entry))
        check = check_initial_margin(
            equity=self._equity(),
            leverage=self._positions[symbol].leverage,
            exposures=exposures,
            instrument_id=symbol,
            order_signed_quantity=signed_qty,
        )
        if check is None or not check.denied:
            return None
        return _reject(110007, "ab not enough for new order")

    def amend_order(self, params: dict, now_ms: int) -> Reply:
        order = self._find(params)
        if order is None:
            return _reject(110001, "order not exists or too late to replace")
        spec = self.instruments[order.symbol]
        changed = False
        if params.get("qty"):
            qty = _decimal(params["qty"])
            if qty is None or qty <= 0 or qty % spec.qty_step or qty < spec.min_qty or qty > spec.max_qty:
                return _reject(10001, f"params error: qty {params['qty']} invalid")
            changed |= qty != order.qty
            order.qty = qty
        if params.get("price") and order.order_type == "Limit" and order.trigger_price is None:
            price = _decimal(params["price"])
            if price is None or price <= 0:
                return _reject(110003, "Order price is out of permissible range")
            if price % spec.tick_size:
                return _reject(10001, f"params error: price {price} is not a multiple of {spec.tick_size}")
            changed |= price != order.price
            order.price = price
        if params.get("triggerPrice") and order.trigger_price is not None:
            trigger = _decimal(params["triggerPrice"])
            if trigger is None or trigger <= 0 or trigger % spec.tick_size:
                return _reject(10001, "params error: triggerPrice invalid")
            changed |= trigger != order.trigger_price
            order.trigger_price = trigger
        if not changed:
            return _reject(10001, "params error: no modification")
        order.updated_ms = now_ms
        events = [VenueEvent("order", payloads.order_record(order, spec))]
        last = self._last.get(order.symbol)
        if order.trigger_price is None and last is not None and _marketable(order, last):
            events += self._fill_reduce_checked(order, last, is_maker=False, now_ms=now_ms)
        return Reply(0, "OK", {"orderId": order.order_id, "orderLinkId": order.order_link_id}, events)

    def cancel_order(self, params: dict, now_ms: int) -> Reply:
        order = self._find(params)
        if order is None:
            return _reject(110001, "order not exists or too late to cancel")
        events = self._cancel(order, "CancelByUser", now_ms)
        return Reply(0, "OK", {"orderId": order.order_id, "orderLinkId": order.order_link_id}, events)

    def cancel_all(self, params: dict, now_ms: int) -> Reply:
        symbol = params.get("symbol")
        if symbol is not None and symbol not in self.instruments:
            return _reject(10001, f"params error: symbol invalid ({symbol})")
        cancelled = [o for o in self._orders.values() if o.is_open and symbol in (None, o.symbol)]
        events: list[VenueEvent] = []
        for order in cancelled:
            events += self._cancel(order, "CancelByUser", now_ms)
        listed = [{"orderId": o.order_id, "orderLinkId": o.order_link_id} for o in cancelled]
        return Reply(0, "OK", {"list": listed, "success": "1"}, events)

    def _find(self, params: dict) -> _Order | None:
        order_id, link_id = params.get("orderId"), params.get("orderLinkId")
        for order in self._orders.values():
            by_id = order_id and order.order_id == order_id
            matches = by_id or (link_id and order.order_link_id == link_id)
            if matches and order.symbol == params.get("symbol", order.symbol) and order.is_open:
                return order
        return None

    def _cancel(self, order: _Order, cancel_type: str, now_ms: int) -> list[VenueEvent]:
        order.status = "Deactivated" if order.status == "Untriggered" else "Cancelled"
        order.cancel_type, order.updated_ms = cancel_type, now_ms
        return [VenueEvent("order", payloads.order_record(order, self.instruments[order.symbol]))]

    def _cancel_where(self, predicate, cancel_type: str, now_ms: int) -> list[VenueEvent]:
        events: list[VenueEvent] = []
        for order in list(self._orders.values()):
            if order.is_open and predicate(order):
                events += self._cancel(order, cancel_type, now_ms)
        return events

    def set_leverage(self, symbol: str, buy_leverage: Decimal, sell_leverage: Decimal) -> Reply:
        buy_leverage, sell_leverage = _decimal(buy_leverage), _decimal(sell_leverage)  # REST sends text
        position = self._positions.get(symbol)
        if position is None:
            return _reject(10001, f"params error: symbol invalid ({symbol})")
        if buy_leverage is None or buy_leverage != sell_leverage or not 1 <= buy_leverage <= 100:
            return _reject(10001, "params error: buyLeverage must equal sellLeverage, within [1, 100]")
        if buy_leverage == position.leverage:
            return _reject(110043, "leverage not modified")
        position.leverage = buy_leverage
        return Reply(0, "OK", {}, [self._position_event(symbol), self._wallet_event()])

    # --- queries -------------------------------------------------------------------------------

    def _equity(self) -> Decimal:
        return self._balance + sum((self._unrealised(s) for s in self._positions), Decimal(0))

    def _totals(self) -> dict[str, Decimal]:
        position_im = position_mm = order_im = Decimal(0)
        for symbol, position in self._positions.items():
            mark = self._last.get(symbol, Decimal(0))
            position_im += abs(position.signed_qty) * mark / position.leverage
            position_mm += abs(position.signed_qty) * mark * self._maintenance_rate(symbol)
        for order in self._orders.values():
            if order.is_open and not (order.reduce_only or order.close_on_trigger):
                reference = order.price or order.trigger_price or Decimal(0)
                leverage = self._positions[order.symbol].leverage
                order_im += (order.qty - order.cum_exec_qty) * reference / leverage
        equity = self._equity()
        return {
            "wallet_balance": self._balance,
            "equity": equity,
            "unrealised": equity - self._balance,
            "position_im": position_im,
            "position_mm": position_mm,
            "order_im": order_im,
            "available": equity - position_im - order_im,
            "cum_realised": sum((p.cum_realised_pnl for p in self._positions.values()), Decimal(0)),
        }

    def _wallet_event(self) -> VenueEvent:
        return VenueEvent("wallet", payloads.wallet_record(self.account.coin, self._totals()))

    def _position_record(self, symbol: str) -> dict:
        position = self._positions[symbol]
        mark = self._last.get(symbol, Decimal(0))
        rate = self._maintenance_rate(symbol)
        return payloads.position_record(position, self.instruments[symbol], mark, rate)

    def _position_event(self, symbol: str) -> VenueEvent:
        return VenueEvent("position", self._position_record(symbol))

    def wallet_balance(self) -> dict:
        return {"list": [payloads.wallet_record(self.account.coin, self._totals())]}

    def positions(self, symbol: str | None = None) -> list[dict]:
        return [self._position_record(s) for s in self._positions if symbol in (None, s)]

    def _order_records(self, symbol: str | None, open_only: bool) -> list[dict]:
        orders = [
            o for o in self._orders.values() if symbol in (None, o.symbol) and (o.is_open or not open_only)
        ]
        orders.sort(key=lambda o: o.created_ms, reverse=True)  # newest first, as Bybit lists them
        return [payloads.order_record(o, self.instruments[o.symbol]) for o in orders]

    def open_orders(self, symbol: str | None = None) -> list[dict]:
        return self._order_records(symbol, open_only=True)

    def order_history(self, symbol: str | None = None) -> list[dict]:
        return self._order_records(symbol, open_only=False)

    def executions(self, symbol: str | None = None) -> list[dict]:
        fills = [f for f in reversed(self._fills) if symbol in (None, f.symbol)]
        return [payloads.execution_record(f, self.instruments[f.symbol]) for f in fills]

    def fee_rates(self, symbol: str | None = None) -> list[dict]:
        return [
            {
                "symbol": s,
                "baseCoin": "",
                "takerFeeRate": f"{self.account.taker_fee_rate:f}",
                "makerFeeRate": f"{self.account.maker_fee_rate:f}",
            }
            for s in self.instruments
            if symbol in (None, s)
        ]

    def snapshot(self) -> dict:
        return {
            "balance": self._balance,
            "equity": self._equity(),
            "positions": {
                s: (p.signed_qty, p.average_entry) for s, p in self._positions.items() if p.signed_qty
            },
            "open_orders": [
                (o.order_link_id or o.order_id, o.side, o.qty, o.price or o.trigger_price)
                for o in self._orders.values()
                if o.is_open
            ],
            "fills": [(f.symbol, f.side, f.qty, f.price, f.fee, f.is_maker) for f in self._fills],
            "fills_count": len(self._fills),
            "fees": self.totals.fees,
            "funding": self.totals.funding,
            "funding_payments": [(r.symbol, r.ts_ms, r.amount) for r in self.totals.funding_records],
            "realised_pnl": self.totals.realised,
            "liquidation_fees": self.totals.liquidation_fees,
        }


def _decimal(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (ArithmeticError, ValueError):
        return None
    return number if number.is_finite() else None


def _marketable(order: _Order, last: Decimal) -> bool:
    """A limit that would take liquidity at the last price (Nautilus: is_limit_marketable)."""
    return (order.side == "Buy" and last <= order.price) or (order.side == "Sell" and last >= order.price)


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
