"""Short builders of reporting inputs (kept beside the reporting tests until tests/factories.py owns them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import polars as pl

from qa_engine.reporting.schema import EQUITY_CURVE_SCHEMA
from qa_engine.reporting.schema import ROUND_TRIP_SCHEMA

T0 = datetime(2023, 1, 1, tzinfo=UTC)


def equity_curve(
    values: Sequence[float],
    step: timedelta = timedelta(days=1),
    start: datetime = T0,
    notional: Sequence[float] | None = None,
) -> pl.DataFrame:
    """Equity marks at ``start + i * step``; flat (notional 0) unless ``notional`` is given."""
    return pl.DataFrame(
        {
            "ts": [start + i * step for i in range(len(values))],
            "equity": [float(v) for v in values],
            "position_notional": [float(n) for n in (notional or [0.0] * len(values))],
        },
        schema=EQUITY_CURVE_SCHEMA,
    )


def round_trips(net_pnls: Sequence[float], fee: float = 1.0, start: datetime = T0) -> pl.DataFrame:
    """One LONG round trip per net pnl, each opened on day i at 01:00 and closed at 05:00."""
    rows = []
    for i, net in enumerate(net_pnls):
        entry = start + timedelta(days=i, hours=1)
        rows.append(
            {
                "instrument_id": "BTCUSDT-PERP.BINANCE",
                "side": "LONG" if i % 2 == 0 else "SHORT",
                "entry_ts": entry,
                "exit_ts": entry + timedelta(hours=4),
                "quantity": 0.01,
                "entry_price": 20_000.0,
                "exit_price": 20_000.0,
                "gross_pnl": float(net) + fee,
                "fees": fee,
                "funding": 0.0,
                "net_pnl": float(net),
            }
        )
    return pl.DataFrame(rows, schema=ROUND_TRIP_SCHEMA)
