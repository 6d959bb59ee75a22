"""Buy and hold: long a full position (fraction 1.0) from the first bar, held to the end.

The benchmark every active strategy has to beat. With `sizing = "vol_target"` (strategies/base.py) it
becomes volatility-targeted buy-and-hold: always long, the size following the target volatility.
"""

from __future__ import annotations

from nautilus_trader.model.data import Bar

from qa_engine.signals import Decision
from qa_engine.signals import Signal
from strategies.base import TargetPositionStrategy
from strategies.base import TargetPositionStrategyConfig


class BuyAndHoldStrategyConfig(TargetPositionStrategyConfig, frozen=True):
    pass


class BuyAndHoldStrategy(TargetPositionStrategy):
    def __init__(self, config: BuyAndHoldStrategyConfig) -> None:
        super().__init__(config)

    def decide(self, bar: Bar) -> Decision:
        return Decision(1.0, Signal.BUY, 100.0, "buy and hold")
