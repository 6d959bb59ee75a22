"""OrderJournalActor: every order the node creates and every fill, one JSON line each, as they happen.

Written line by line and flushed, so a crash (kill -9 included) loses nothing already recorded. The same
actor runs in the parity backtest, so `qa parity` compares two journals of the same shape. `bar_ts` is the
close time of the last bar of the order's instrument the node had when the order was created: the bar
the strategy reacted to.
"""

from __future__ import annotations

import json
from pathlib import Path

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import order_side_to_str
from nautilus_trader.model.enums import order_type_to_str
from nautilus_trader.model.events import OrderDenied
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.events import OrderInitialized
from nautilus_trader.model.events import OrderRejected

JOURNAL_FILE = "orders.jsonl"


class OrderJournalConfig(ActorConfig, frozen=True):
    path: str  # the JSON-lines file (appended to: a restarted node goes on in the same journal)
    bar_types: list[str]  # the bar series whose last close stamps each order


class OrderJournalActor(Actor):
    def __init__(self, config: OrderJournalConfig) -> None:
        super().__init__(config)
        self._path = Path(config.path)
        self._bar_types: dict[str, BarType] = {}
        for text in config.bar_types:
            bar_type = BarType.from_str(text)
            self._bar_types.setdefault(bar_type.instrument_id.value, bar_type)
        self._file = None

    def on_start(self) -> None:
        if self._file is not None:  # started again after a stop: still open, still subscribed
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._path.open("a", encoding="utf-8")
        # A live node reconciles with the venue before the trader starts (actors start before strategies):
        # every order already cached was rebuilt from the venue's books and published before this
        # subscription. Record them, flagged. (1.231 does not set `OrderInitialized.reconciliation` on
        # them, it tags them "VENUE", so the cache at start is the reliable sign.)
        for order in self.cache.orders():
            for event in order.events:
                self._on_order_event(event, reconciliation=True)
        self.msgbus.subscribe(topic="events.order.*", handler=self._on_order_event)

    def on_stop(self) -> None:
        # Stay subscribed: actors stop before the strategies have finished stopping, and a strategy's
        # on-stop cancels and market exit (flatten_on_stop) come after. The file closes at dispose.
        if self._file is not None:
            self._file.flush()

    def on_dispose(self) -> None:
        if self._file is not None:
            self.msgbus.unsubscribe(topic="events.order.*", handler=self._on_order_event)
            self._file.close()
            self._file = None

    def _bar_ts(self, instrument_id) -> int | None:
        bar_type = self._bar_types.get(instrument_id.value)
        bar = self.cache.bar(bar_type) if bar_type is not None else None
        if bar is None and self._bar_types:  # a strategy trading on another venue's bars (Binance data)
            bar = self.cache.bar(next(iter(self._bar_types.values())))
        return bar.ts_event if bar is not None else None

    def _on_order_event(self, event, reconciliation: bool = False) -> None:
        if isinstance(event, OrderInitialized):
            record = {
                "event": "order",
                "client_order_id": event.client_order_id.value,
                "strategy_id": event.strategy_id.value,
                "instrument_id": event.instrument_id.value,
                "side": order_side_to_str(event.side),
                "type": order_type_to_str(event.order_type),
                "quantity": str(event.quantity),
                "price": event.options.get("price"),
                "trigger_price": event.options.get("trigger_price"),
                "reduce_only": event.reduce_only,
                # generated at start-up from the venue's books
                "reconciliation": reconciliation or event.reconciliation,
                "bar_ts": self._bar_ts(event.instrument_id),
                "ts_init": event.ts_init,
            }
        elif isinstance(event, OrderFilled):
            record = {
                "event": "fill",
                "client_order_id": event.client_order_id.value,
                "venue_order_id": event.venue_order_id.value,
                "trade_id": event.trade_id.value,
                "instrument_id": event.instrument_id.value,
                "side": order_side_to_str(event.order_side),
                "quantity": str(event.last_qty),
                "price": str(event.last_px),
                "commission": str(event.commission),
                "ts_event": event.ts_event,
            }
        elif isinstance(event, OrderDenied | OrderRejected):
            record = {
                "event": "denied" if isinstance(event, OrderDenied) else "rejected",
                "client_order_id": event.client_order_id.value,
                "reason": event.reason,
                "ts_init": event.ts_init,
            }
        else:
            return
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()


def read_journal(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
