"""A user plug-in with a bug, for testing the plug-in boundary."""

from strategies.base import TargetPositionStrategy
from strategies.base import TargetPositionStrategyConfig


class FaultyStrategyConfig(TargetPositionStrategyConfig, frozen=True):
    fail_after_bars: int = 10


class FaultyStrategy(TargetPositionStrategy):
    def __init__(self, config: FaultyStrategyConfig) -> None:
        super().__init__(config)
        self.bars = 0

    def decide(self, bar):
        self.bars += 1
        if self.bars >= self.config.fail_after_bars:
            raise ZeroDivisionError("division by zero in my signal")
        from qa_engine.signals import hold

        return hold("waiting")
