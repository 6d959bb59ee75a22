"""RunRecorderActor: records fills, round trips and the equity curve as they happen.

Reports are built from these records, never from what Nautilus' Cache holds at the end: long runs
purge closed orders from the Cache to stay linear (Nautilus' per-fill cache queries scan every order
of the instrument), and this actor does that purge every `purge_closed_orders_every_bars` bars.
The same actor runs in live trading, where the Cache is purged by the node.
"""

from __future__ import annotations

import dataclasses
from array import array
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import polars as pl
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.events import OrderDenied
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.events import OrderInitialized
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Price

from qa_engine.backtest.funding import FUNDING_TOPIC
from qa_engine.backtest.funding import FundingPayment
from qa_engine.backtest.liquidation import LIQUIDATION_TOPIC
from qa_engine.backtest.liquidation import Liquidation
from qa_engine.reporting.round_trips import Fill
from qa_engine.reporting.round_trips import RoundTrip
from qa_engine.reporting.round_trips import RoundTripBook

PROGRESS_EVERY_BARS = 1_000  # a progress callback per this many bars: negligible next to the bars' work


class RunRecorderConfig(ActorConfig, frozen=True):
    bar_types: list[str]
    venues: list[str]
    purge_closed_orders_every_bars: int = 1_000


class BarRows:
    """Rows of one number per bar kept column-wise in typed arrays (array.array: 8 bytes a value),
    not as a list of tuples (about 150 bytes a row of boxed Python objects): a run of 5M bars keeps
    ~250 MB less. Text columns (the instrument) are stored as an index into `names`. Written here
    because the standard library's array is all it takes; `frame()` hands the columns to polars."""

    def __init__(self, columns: dict[str, str]) -> None:
        # name -> "q" (int64), "d" (float64) or "text" (an instrument id, stored as its index)
        self.kinds = columns
        self.arrays = {name: array("H" if kind == "text" else kind) for name, kind in columns.items()}
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self.appenders = [self.arrays[name].append for name in columns]

    def index_of(self, text: str) -> int:
        index = self._index.get(text)
        if index is None:
            index = self._index[text] = len(self.names)
            self.names.append(text)
        return index

    def append(self, row: tuple) -> None:
        for append, kind, value in zip(self.appenders, self.kinds.values(), row, strict=True):
            append(self.index_of(value) if kind == "text" else value)

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, row: int) -> tuple:
        values = []
        for name, kind in self.kinds.items():
            value = self.arrays[name][row]
            values.append(self.names[value] if kind == "text" else value)
        return tuple(values)

    def __iter__(self):
        return (self[row] for row in range(len(self)))

    def frame(self) -> pl.DataFrame:
        """The rows as a polars table (Int64 / Float64 / Utf8 columns, in the order of `columns`)."""
        data = {}
        for name, kind in self.kinds.items():
            column = np.frombuffer(
                self.arrays[name], dtype={"q": np.int64, "d": np.float64, "text": np.uint16}[kind]
            )
            if kind == "text":
                data[name] = pl.Series(
                    name, np.asarray(self.names, dtype=object)[column] if len(column) else [], pl.Utf8
                )
            else:
                data[name] = pl.Series(name, column.copy())
        return pl.DataFrame(data)


class RunRecorderActor(Actor):
    def __init__(self, config: RunRecorderConfig) -> None:
        super().__init__(config)
        self.book = RoundTripBook()
        self.fill_rows: list[dict] = []
        self.round_trips: list[RoundTrip] = []
        # One row per bar event: (ts_ns, equity, position_notional); several bar series at the same
        # close time are collapsed to the last row when the report is built.
        self.equity_rows = BarRows({"ts": "q", "equity": "d", "position_notional": "d"})
        # One row per bar: (ts_ns, instrument_id, close), the price line of the report's tearsheet.
        self.close_rows = BarRows({"ts": "q", "instrument_id": "text", "close": "d"})
        self.fees_paid = Decimal(0)
        self.funding_total = Decimal(0)  # received (> 0) or paid (< 0) at funding settlements
        self.funding_payments: list[FundingPayment] = []
        self.liquidations: list[Liquidation] = []
        self.liquidation_fees = Decimal(0)
        self.denied_orders: list[dict] = []  # OrderDenied before reaching the venue (e.g. margin)
        self.bars_seen = 0
        # Set by the runner for a progress bar: called with bars_seen every PROGRESS_EVERY_BARS bars.
        self.on_bars: Callable[[int], None] | None = None
        self._last_close: dict[str, Price] = {}
        # Per-bar marks use floats (the hot path); the final equity and the reconciliation use Decimal.
        self._last_close_float: dict[str, float] = {}
        self._open_float: dict[str, tuple[float, float, float]] = {}  # signed qty, avg price, multiplier
        self._order_tags: dict[str, str] = {}  # client order id -> "SIGNAL|confidence|reasoning"
        self._balance_float: float | None = None  # None: re-read from the accounts at the next bar
        # Per instrument: cash flows of its fills (-signed qty * price * multiplier - fee), so that its
        # pnl at a bar close is cash + signed qty * close * multiplier (rows: ts, instrument, pnl).
        self._cash_float: dict[str, float] = {}
        # Rows (ts, instrument, pnl) are only read for runs of several bar series (per-instrument
        # statistics, qa_engine.reporting.report.per_instrument_metrics), so only kept for those.
        self.instrument_pnl_rows = BarRows({"ts": "q", "instrument_id": "text", "pnl": "d"})
        self._per_instrument_rows = len(config.bar_types) > 1
        # One bar series: every bar is of the same instrument, no need to read it off each bar.
        self._only_instrument = (
            BarType.from_str(config.bar_types[0]).instrument_id.value if len(config.bar_types) == 1 else None
        )
        self._purge_every = config.purge_closed_orders_every_bars

    def on_start(self) -> None:
        for bar_type in self.config.bar_types:
            self.subscribe_bars(BarType.from_str(bar_type))
        self.msgbus.subscribe(topic="events.order.*", handler=self._on_order_event)
        self.msgbus.subscribe(topic=f"{FUNDING_TOPIC}.*", handler=self._on_funding)
        self.msgbus.subscribe(topic=f"{LIQUIDATION_TOPIC}.*", handler=self._on_liquidation)

    def on_stop(self) -> None:
        """Records stay in memory for the runner to read; nothing to release here."""

    def _account_balance_float(self) -> float:
        # Re-read only after what moves a balance here (fills, funding), not on every bar.
        return float(self.balance())

    def _on_funding(self, payment: FundingPayment) -> None:
        self.funding_payments.append(payment)
        self.funding_total += payment.amount
        self.book.on_funding(payment.instrument_id, payment.amount)
        self._cash_float[payment.instrument_id] = self._cash_float.get(payment.instrument_id, 0.0) + float(
            payment.amount
        )
        self._balance_float = None

    def _on_liquidation(self, record: Liquidation) -> None:
        """The liquidation fee (booked after the closing fill) belongs to the round trip it closed."""
        self.liquidations.append(record)
        fee = record.liquidation_fee
        self.liquidation_fees += fee
        self._cash_float[record.instrument_id] = self._cash_float.get(record.instrument_id, 0.0) - float(fee)
        self._balance_float = None
        for index in range(len(self.round_trips) - 1, -1, -1):
            trip = self.round_trips[index]
            if trip.instrument_id == record.instrument_id and trip.exit_ts_ns == record.ts_ns:
                self.round_trips[index] = dataclasses.replace(
                    trip, fees=trip.fees + fee, net_pnl=trip.net_pnl - fee
                )
                break

    def _on_order_event(self, event) -> None:
        if isinstance(event, OrderInitialized):
            if event.tags:
                self._order_tags[event.client_order_id.value] = event.tags[0]
            return
        if isinstance(event, OrderDenied):
            self.denied_orders.append(
                {
                    "ts_ns": event.ts_init,
                    "instrument_id": str(event.instrument_id),
                    "client_order_id": str(event.client_order_id),
                    "reason": event.reason,
                }
            )
            return
        if not isinstance(event, OrderFilled):
            return
        instrument_id = str(event.instrument_id)
        instrument = self.cache.instrument(event.instrument_id)
        fill = Fill(
            ts_ns=event.ts_event,
            instrument_id=instrument_id,
            side="BUY" if event.order_side == 1 else "SELL",
            quantity=event.last_qty.as_decimal(),
            price=event.last_px.as_decimal(),
            fee=event.commission.as_decimal(),
            multiplier=instrument.multiplier.as_decimal() if instrument else Decimal(1),
        )
        self.fees_paid += fill.fee
        signed_quantity = float(fill.quantity) * (1.0 if fill.side == "BUY" else -1.0)
        self._cash_float[instrument_id] = (
            self._cash_float.get(instrument_id, 0.0)
            - signed_quantity * float(fill.price) * float(fill.multiplier)
            - float(fill.fee)
        )
        self._balance_float = None
        self.round_trips.extend(self.book.on_fill(fill))
        position = self.book.positions.get(instrument_id)
        if position is None:
            self._open_float.pop(instrument_id, None)
        else:
            self._open_float[instrument_id] = (
                float(position.quantity * position.direction),
                float(position.average_price),
                float(fill.multiplier),
            )
        self.fill_rows.append(
            {
                "ts_ns": event.ts_event,
                "instrument_id": instrument_id,
                "strategy_id": str(event.strategy_id),
                "client_order_id": str(event.client_order_id),
                "venue_order_id": str(event.venue_order_id),
                "trade_id": str(event.trade_id),
                "side": fill.side,
                "quantity": str(fill.quantity),
                "price": str(fill.price),
                "fee": str(fill.fee),
                "fee_currency": event.commission.currency.code,
                "liquidity_side": "MAKER" if event.liquidity_side == 1 else "TAKER",
                "position_after": str(self.book.signed_quantity(instrument_id)),
                **_decision_columns(self._order_tag(event.client_order_id)),
            },
        )

    def _order_tag(self, client_order_id) -> str | None:
        tag = self._order_tags.get(client_order_id.value)
        if tag is None:  # an order the venue made (a liquidation) has no OrderInitialized on the bus
            order = self.cache.order(client_order_id)
            tag = order.tags[0] if order is not None and order.tags else None
        return tag

    def on_bar(self, bar: Bar) -> None:
        # The hot path of every run (once per bar): each Bar property access builds a new object.
        instrument_id = self._only_instrument or bar.bar_type.instrument_id.value
        close_price = bar.close
        close = close_price.as_double()
        self._last_close[instrument_id] = close_price
        self._last_close_float[instrument_id] = close
        ts_event = bar.ts_event
        unrealised = 0.0
        notional = 0.0
        for open_id, (quantity, average_price, multiplier) in self._open_float.items():
            open_close = self._last_close_float.get(open_id, average_price)
            unrealised += (open_close - average_price) * quantity * multiplier
            notional += abs(quantity) * open_close * multiplier
        if self._balance_float is None:
            self._balance_float = self._account_balance_float()
        append_ts, append_equity, append_notional = self.equity_rows.appenders
        append_ts(ts_event)
        append_equity(self._balance_float + unrealised)
        append_notional(notional)
        append_close_ts, append_instrument, append_close = self.close_rows.appenders
        append_close_ts(ts_event)
        append_instrument(self.close_rows.index_of(instrument_id))
        append_close(close)
        if self._per_instrument_rows:
            position = self._open_float.get(instrument_id)
            held_value = position[0] * close * position[2] if position else 0.0
            self.instrument_pnl_rows.append(
                (ts_event, instrument_id, self._cash_float.get(instrument_id, 0.0) + held_value),
            )
        self.bars_seen += 1
        if self.on_bars is not None and self.bars_seen % PROGRESS_EVERY_BARS == 0:
            self.on_bars(self.bars_seen)
        every = self._purge_every
        if every and self.bars_seen % every == 0:
            self.cache.purge_closed_orders(self.clock.timestamp_ns(), 0)

    def balance(self) -> Decimal:
        total = Decimal(0)
        for venue in self.config.venues:
            account = self.portfolio.account(Venue(venue))
            if account is not None:
                total += account.balance_total().as_decimal()
        return total

    def unrealised_pnl(self) -> Decimal:
        return sum(
            (
                self.book.unrealised_pnl(instrument_id, price)
                for instrument_id, price in self._last_close.items()
            ),
            Decimal(0),
        )

    def open_net_pnl(self) -> Decimal:
        return sum(
            (
                self.book.open_net_pnl(instrument_id, price)
                for instrument_id, price in self._last_close.items()
            ),
            Decimal(0),
        )

    def equity(self) -> Decimal:
        return self.balance() + self.unrealised_pnl()

    def position_notional(self) -> Decimal:
        return sum(
            (
                abs(self.book.signed_quantity(instrument_id)) * price
                for instrument_id, price in self._last_close.items()
            ),
            Decimal(0),
        )


def _decision_columns(tag: str | None) -> dict[str, str]:
    """The decision a strategy tagged onto its order (strategies.base): signal, confidence, reasoning."""
    signal, confidence_pct, reasoning = [*tag.split("|", 2), "", ""][:3] if tag else ("", "", "")
    return {"signal": signal, "confidence_pct": confidence_pct, "reasoning": reasoning}
