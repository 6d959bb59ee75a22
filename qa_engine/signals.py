"""Signals a strategy emits with every decision; published data types join them in a later issue.

A decision is a target position as a fraction of the strategy's maximum position (-1 full short,
0 flat, +1 full long; None keeps what is held), with the signal, the confidence and a readable
reasoning string that is recorded with the order it causes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Signal(StrEnum):
    STRONG_BUY = "STRONG_BUY"
    BUY = "BUY"
    HOLD = "HOLD"
    SELL = "SELL"
    STRONG_SELL = "STRONG_SELL"


@dataclass(frozen=True)
class Decision:
    target_fraction: float | None  # of the maximum position, in [-1, 1]; None: keep the position
    signal: Signal
    confidence_pct: float  # 0..100
    reasoning: str

    def __post_init__(self) -> None:
        if self.target_fraction is not None and not (
            math.isfinite(self.target_fraction) and -1.0 <= self.target_fraction <= 1.0
        ):
            raise ValueError(f"target_fraction must be in [-1, 1] or None, got {self.target_fraction}")
        if not 0.0 <= self.confidence_pct <= 100.0:
            raise ValueError(f"confidence_pct must be in [0, 100], got {self.confidence_pct}")


def hold(reasoning: str) -> Decision:
    """Keep whatever position is held."""
    return Decision(target_fraction=None, signal=Signal.HOLD, confidence_pct=0.0, reasoning=reasoning)
