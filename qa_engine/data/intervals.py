"""Kline intervals and the Nautilus bar types they map to."""

from __future__ import annotations

from enum import StrEnum

from qa_engine.errors import ConfigError

_NANOS_PER_MINUTE = 60 * 1_000_000_000


class KlineInterval(StrEnum):
    """The kline intervals the catalog ingests (exchange notation)."""

    MINUTE_1 = "1m"
    MINUTE_5 = "5m"
    MINUTE_15 = "15m"
    HOUR_1 = "1h"
    HOUR_4 = "4h"
    DAY_1 = "1d"

    @property
    def step(self) -> int:
        """Step of the Nautilus bar specification (5 for 5m, 4 for 4h)."""
        return int(self.value[:-1])

    @property
    def aggregation(self) -> str:
        """Nautilus BarAggregation name: MINUTE, HOUR or DAY."""
        return {"m": "MINUTE", "h": "HOUR", "d": "DAY"}[self.value[-1]]

    @property
    def duration_ns(self) -> int:
        minutes_per_unit = {"m": 1, "h": 60, "d": 24 * 60}[self.value[-1]]
        return self.step * minutes_per_unit * _NANOS_PER_MINUTE

    @property
    def bar_spec(self) -> str:
        """Nautilus bar specification, e.g. '5-MINUTE-LAST'."""
        return f"{self.step}-{self.aggregation}-LAST"


def parse_interval(text: str | KlineInterval) -> KlineInterval:
    """'5m' -> KlineInterval.MINUTE_5; an unknown interval is a config error listing the valid ones."""
    try:
        return KlineInterval(text)
    except ValueError:
        valid = ", ".join(item.value for item in KlineInterval)
        raise ConfigError(f"unknown kline interval '{text}'; valid: {valid}") from None


def bar_type_string(instrument_id: str, interval: KlineInterval) -> str:
    """'BTCUSDT-LINEAR.BYBIT', 5m -> 'BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL' (bars stamped at close)."""
    return f"{instrument_id}-{interval.bar_spec}-EXTERNAL"
