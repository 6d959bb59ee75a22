"""EMA cross: the baseline. Long while the fast EMA is above the slow EMA, short while below.

Always in the market after warm-up; each cross flips the position with one market order.
"""

from __future__ import annotations

from nautilus_trader.config import PositiveInt
from nautilus_trader.indicators import ExponentialMovingAverage
from nautilus_trader.model.data import Bar

from qa_engine.signals import Decision
from qa_engine.signals import Signal
from strategies.base import TargetPositionStrategy
from strategies.base import TargetPositionStrategyConfig


class EMACrossStrategyConfig(TargetPositionStrategyConfig, frozen=True):
    fast_ema_period: PositiveInt = 12
    slow_ema_period: PositiveInt = 26

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fast_ema_period >= self.slow_ema_period:
            raise ValueError(
                f"fast_ema_period ({self.fast_ema_period}) must be less than "
                f"slow_ema_period ({self.slow_ema_period})",
            )


class EMACrossStrategy(TargetPositionStrategy):
    def __init__(self, config: EMACrossStrategyConfig) -> None:
        super().__init__(config)
        self.fast_ema = ExponentialMovingAverage(config.fast_ema_period)
        self.slow_ema = ExponentialMovingAverage(config.slow_ema_period)

    def indicators(self):
        return [self.fast_ema, self.slow_ema]

    def decide(self, bar: Bar) -> Decision:
        fast, slow = self.fast_ema.value, self.slow_ema.value
        if fast > slow:
            return Decision(
                1.0,
                Signal.BUY,
                100.0,
                f"EMA{self.fast_ema.period} {fast:.2f} > EMA{self.slow_ema.period} {slow:.2f}",
            )
        return Decision(
            -1.0,
            Signal.SELL,
            100.0,
            f"EMA{self.fast_ema.period} {fast:.2f} <= EMA{self.slow_ema.period} {slow:.2f}",
        )
