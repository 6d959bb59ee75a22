"""RSI + EMA: buy oversold pullbacks in an uptrend, sell overbought rallies in a downtrend.

Long when the close is above the trend EMA and RSI crosses back up through `oversold`; the long is
closed when RSI reaches `overbought` or the close falls below the EMA. Shorts mirror it.
"""

from __future__ import annotations

from nautilus_trader.config import PositiveFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.indicators import ExponentialMovingAverage
from nautilus_trader.indicators import MovingAverageType
from nautilus_trader.indicators import RelativeStrengthIndex
from nautilus_trader.model.data import Bar

from qa_engine.signals import Decision
from qa_engine.signals import Signal
from qa_engine.signals import hold
from strategies.base import TargetPositionStrategy
from strategies.base import TargetPositionStrategyConfig


class RSIEMAStrategyConfig(TargetPositionStrategyConfig, frozen=True):
    rsi_period: PositiveInt = 14
    ema_period: PositiveInt = 200
    oversold: PositiveFloat = 30.0
    overbought: PositiveFloat = 70.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.oversold < self.overbought <= 100:
            raise ValueError(f"need oversold < overbought <= 100, got {self.oversold} / {self.overbought}")


class RSIEMAStrategy(TargetPositionStrategy):
    def __init__(self, config: RSIEMAStrategyConfig) -> None:
        super().__init__(config)
        self.rsi = RelativeStrengthIndex(config.rsi_period, MovingAverageType.WILDER)
        self.ema = ExponentialMovingAverage(config.ema_period)
        self.previous_rsi: float | None = None

    def indicators(self):
        return [self.rsi, self.ema]

    def decide(self, bar: Bar) -> Decision:
        rsi, previous = self.rsi.value * 100.0, self.previous_rsi  # Nautilus' RSI is in [0, 1]
        self.previous_rsi = rsi
        close, ema = bar.close.as_double(), self.ema.value
        position = self.signed_position_quantity()
        low, high = self.config.oversold, self.config.overbought
        if position > 0 and (rsi >= high or close < ema):
            return Decision(
                0.0, Signal.SELL, 100.0, f"exit long: RSI {rsi:.1f}, close {close:.2f} vs EMA {ema:.2f}"
            )
        if position < 0 and (rsi <= low or close > ema):
            return Decision(
                0.0, Signal.BUY, 100.0, f"exit short: RSI {rsi:.1f}, close {close:.2f} vs EMA {ema:.2f}"
            )
        if previous is None or position != 0:
            return hold(f"RSI {rsi:.1f}")
        if close > ema and previous < low <= rsi:
            return Decision(1.0, Signal.BUY, 100.0, f"RSI crossed up through {low:.0f} above EMA {ema:.2f}")
        if close < ema and previous > high >= rsi:
            return Decision(
                -1.0, Signal.SELL, 100.0, f"RSI crossed down through {high:.0f} below EMA {ema:.2f}"
            )
        return hold(f"RSI {rsi:.1f}, no cross")
