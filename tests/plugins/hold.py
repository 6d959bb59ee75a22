"""A plug-in that holds one side all the time, for tests of leverage, funding and liquidation."""

from qa_engine.signals import Decision
from strategies.base import TargetPositionStrategy
from strategies.base import TargetPositionStrategyConfig


class HoldConfig(TargetPositionStrategyConfig, frozen=True):
    side: str = "LONG"  # or SHORT


class Hold(TargetPositionStrategy):
    def __init__(self, config: HoldConfig) -> None:
        super().__init__(config)

    def decide(self, bar):
        long = self.config.side == "LONG"
        return Decision(1.0 if long else -1.0, "BUY" if long else "SELL", 100.0, f"hold {self.config.side}")
