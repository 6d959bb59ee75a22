"""Tick-level order-flow imbalance from best bid/ask updates (Cont, Kukanov & Stoikov 2014).

For consecutive best bid/ask states n-1 -> n, the order-flow event is
    e_n =  q^b_n 1{P^b_n >= P^b_{n-1}} - q^b_{n-1} 1{P^b_n <= P^b_{n-1}}
         - q^a_n 1{P^a_n <= P^a_{n-1}} + q^a_{n-1} 1{P^a_n >= P^a_{n-1}}
(e_0 = 0: there is no earlier state). OFI over an interval is the sum of its events; CKS show
the mid-price change over the interval is close to linear in it. Batch (polars) and streaming
twins; the streaming accumulator hands out one value per interval (e.g. per bar, at its close).
Hand-written (a few polars expressions): no installed library computes CKS OFI.
This is a separate feature set from the per-bar one: it needs a book-ticker feed (input
"best_bid_ask"), which the kline catalogs do not have.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from qa_engine.errors import DataError

BOOK_TICKER_COLUMNS = ("ts_event", "bid_px", "bid_qty", "ask_px", "ask_qty")


def _check(frame_columns: list[str]) -> None:
    missing = [c for c in BOOK_TICKER_COLUMNS if c not in frame_columns]
    if missing:
        raise DataError(
            f"tick OFI needs best bid/ask updates with columns {list(BOOK_TICKER_COLUMNS)}; missing {missing}"
        )


def tick_ofi_events(book_ticker: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """One row per best bid/ask update (in feed order): ts_event, mid, depth and the OFI event e_n."""
    lazy = book_ticker.lazy() if isinstance(book_ticker, pl.DataFrame) else book_ticker
    _check(lazy.collect_schema().names())
    bid, bid_qty, ask, ask_qty = pl.col("bid_px"), pl.col("bid_qty"), pl.col("ask_px"), pl.col("ask_qty")
    previous_bid, previous_bid_qty = bid.shift(1), bid_qty.shift(1)
    previous_ask, previous_ask_qty = ask.shift(1), ask_qty.shift(1)
    event = (
        pl.when(bid >= previous_bid).then(bid_qty).otherwise(0.0)
        - pl.when(bid <= previous_bid).then(previous_bid_qty).otherwise(0.0)
        - pl.when(ask <= previous_ask).then(ask_qty).otherwise(0.0)
        + pl.when(ask >= previous_ask).then(previous_ask_qty).otherwise(0.0)
    )
    return lazy.select(
        pl.col("ts_event"),
        ((bid + ask) / 2.0).alias("mid"),
        ((bid_qty + ask_qty) / 2.0).alias("depth"),
        pl.when(previous_bid.is_null()).then(0.0).otherwise(event).alias("ofi_event"),
    )


def tick_ofi_by_interval(book_ticker: pl.LazyFrame | pl.DataFrame, every: str) -> pl.DataFrame:
    """OFI per interval, labelled by the interval's close time `ts` (bars-at-close convention).

    Columns: ts, ofi (sum of events), events, mean_depth (mean of (bid_qty + ask_qty) / 2),
    ofi_normalised (ofi / mean_depth, CKS' depth scaling), mid_change (last mid of this interval
    minus last mid of the previous non-empty interval; null for the first).
    """
    events = tick_ofi_events(book_ticker).with_columns(pl.col("ts_event").dt.truncate(every).alias("bucket"))
    grouped = (
        events.group_by("bucket", maintain_order=True)
        .agg(
            pl.col("ofi_event").sum().alias("ofi"),
            pl.len().alias("events"),
            pl.col("depth").mean().alias("mean_depth"),
            pl.col("mid").last().alias("last_mid"),
        )
        .sort("bucket")
        .with_columns(
            pl.col("bucket").dt.offset_by(every).alias("ts"),
            (pl.col("ofi") / pl.col("mean_depth")).alias("ofi_normalised"),
            (pl.col("last_mid") - pl.col("last_mid").shift(1)).alias("mid_change"),
        )
    )
    return grouped.select("ts", "ofi", "events", "mean_depth", "ofi_normalised", "mid_change").collect()


@dataclass
class TickOfiStream:
    """Streaming twin: feed every best bid/ask update; `take()` returns the OFI since the last take."""

    _bid: float | None = None
    _bid_qty: float = 0.0
    _ask: float = 0.0
    _ask_qty: float = 0.0
    _accumulated: float = 0.0
    _events: int = 0

    def update(self, bid: float, bid_qty: float, ask: float, ask_qty: float) -> float:
        """Add one update; returns its event e_n (0 for the very first update)."""
        if self._bid is None:
            event = 0.0
        else:
            previous_bid, previous_ask = self._bid, self._ask
            event = (
                (bid_qty if bid >= previous_bid else 0.0)
                - (self._bid_qty if bid <= previous_bid else 0.0)
                - (ask_qty if ask <= previous_ask else 0.0)
                + (self._ask_qty if ask >= previous_ask else 0.0)
            )
        self._bid, self._bid_qty, self._ask, self._ask_qty = bid, bid_qty, ask, ask_qty
        self._accumulated += event
        self._events += 1
        return event

    def take(self) -> tuple[float, int]:
        """(OFI, number of updates) since the previous take; the book state carries over."""
        result = (self._accumulated, self._events)
        self._accumulated = 0.0
        self._events = 0
        return result
