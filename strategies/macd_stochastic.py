"""MACD + Stochastic: follow the MACD/signal cross, confirmed by a stochastic that is not stretched.

Long when MACD is above its signal line and %K is below `overbought`; short when MACD is below its
signal and %K is above `oversold`; otherwise keep the position. A cross confirmed from the far zone
(%K under `oversold` for a long) is a STRONG signal.
"""

from __future__ import annotations

from nautilus_trader.config import PositiveFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.indicators import ExponentialMovingAverage
from nautilus_trader.indicators import MovingAverageConvergenceDivergence
from nautilus_trader.indicators import Stochastics
from nautilus_trader.model.data import Bar

from qa_engine.signals import Decision
from qa_engine.signals import Signal
from qa_engine.signals import hold
from strategies.base import TargetPositionStrategy
from strategies.base import TargetPositionStrategyConfig


class MACDStochasticStrategyConfig(TargetPositionStrategyConfig, frozen=True):
    macd_fast_period: PositiveInt = 12
    macd_slow_period: PositiveInt = 26
    macd_signal_period: PositiveInt = 9
    stochastic_k_period: PositiveInt = 14
    stochastic_d_period: PositiveInt = 3
    oversold: PositiveFloat = 20.0
    overbought: PositiveFloat = 80.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.macd_fast_period >= self.macd_slow_period:
            raise ValueError("macd_fast_period must be less than macd_slow_period")
        if not self.oversold < self.overbought <= 100:
            raise ValueError(f"need oversold < overbought <= 100, got {self.oversold} / {self.overbought}")


class MACDStochasticStrategy(TargetPositionStrategy):
    def __init__(self, config: MACDStochasticStrategyConfig) -> None:
        super().__init__(config)
        self.macd = MovingAverageConvergenceDivergence(config.macd_fast_period, config.macd_slow_period)
        self.stochastic = Stochastics(config.stochastic_k_period, config.stochastic_d_period)
        # Nautilus' MACD has no signal line: an EMA of the MACD value, fed in decide().
        self.signal_line = ExponentialMovingAverage(config.macd_signal_period)

    def indicators(self):
        return [self.macd, self.stochastic]

    def decide(self, bar: Bar) -> Decision:
        self.signal_line.update_raw(self.macd.value)
        if not self.signal_line.initialized:
            return hold("MACD signal line warming up")
        macd, signal, k = self.macd.value, self.signal_line.value, self.stochastic.value_k
        low, high = self.config.oversold, self.config.overbought
        if macd > signal and k < high:
            strong = k < low
            return Decision(
                1.0,
                Signal.STRONG_BUY if strong else Signal.BUY,
                100.0 if strong else 70.0,
                f"MACD {macd:.2f} > signal {signal:.2f}, %K {k:.1f}",
            )
        if macd < signal and k > low:
            strong = k > high
            return Decision(
                -1.0,
                Signal.STRONG_SELL if strong else Signal.SELL,
                100.0 if strong else 70.0,
                f"MACD {macd:.2f} < signal {signal:.2f}, %K {k:.1f}",
            )
        return hold(f"MACD {macd:.2f} / signal {signal:.2f} not confirmed by %K {k:.1f}")
