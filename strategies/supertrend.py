"""SuperTrend: long while the close holds above the trailing ATR band, short while below."""

from __future__ import annotations

from nautilus_trader.config import PositiveFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.indicators import AverageTrueRange
from nautilus_trader.indicators import MovingAverageType
from nautilus_trader.model.data import Bar

from qa_engine.signals import Decision
from qa_engine.signals import Signal
from strategies.base import TargetPositionStrategy
from strategies.base import TargetPositionStrategyConfig


class SuperTrendStrategyConfig(TargetPositionStrategyConfig, frozen=True):
    atr_period: PositiveInt = 10
    atr_multiplier: PositiveFloat = 3.0


class SuperTrendBands:
    """The SuperTrend recursion (final bands ratchet toward price; the trend flips on a close through
    the opposite band). Hand-written: Nautilus 1.231 has ATR but no SuperTrend indicator."""

    def __init__(self, multiplier: float) -> None:
        self.multiplier = multiplier
        self.upper = self.lower = self.previous_close = None
        self.trend = 0  # +1 up, -1 down, 0 not yet known

    def update(self, high: float, low: float, close: float, atr: float) -> int:
        middle = (high + low) / 2.0
        basic_upper, basic_lower = middle + self.multiplier * atr, middle - self.multiplier * atr
        if self.upper is None:
            self.upper, self.lower = basic_upper, basic_lower
        else:
            previous_upper, previous_lower = self.upper, self.lower
            if basic_upper < previous_upper or self.previous_close > previous_upper:
                self.upper = basic_upper
            if basic_lower > previous_lower or self.previous_close < previous_lower:
                self.lower = basic_lower
            if close > previous_upper:
                self.trend = 1
            elif close < previous_lower:
                self.trend = -1
        self.previous_close = close
        return self.trend


class SuperTrendStrategy(TargetPositionStrategy):
    def __init__(self, config: SuperTrendStrategyConfig) -> None:
        super().__init__(config)
        self.atr = AverageTrueRange(config.atr_period, MovingAverageType.WILDER)
        self.bands = SuperTrendBands(config.atr_multiplier)

    def indicators(self):
        return [self.atr]

    def decide(self, bar: Bar) -> Decision:
        trend = self.bands.update(
            bar.high.as_double(), bar.low.as_double(), bar.close.as_double(), self.atr.value
        )
        close = bar.close.as_double()
        if trend > 0:
            return Decision(
                1.0, Signal.BUY, 100.0, f"close {close:.2f} above SuperTrend band {self.bands.lower:.2f}"
            )
        if trend < 0:
            return Decision(
                -1.0, Signal.SELL, 100.0, f"close {close:.2f} below SuperTrend band {self.bands.upper:.2f}"
            )
        return Decision(None, Signal.HOLD, 0.0, "SuperTrend direction not established yet")
