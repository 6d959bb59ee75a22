"""The venue's bar clock: which bars close together, and how long to wait before publishing them.

Bars of every symbol are merged into groups by close time (`BarRow.end_ms`); a group is published at
once (books first, then the klines). Pacing, one of:
- `speed` N: N simulated seconds per real second (60 => a 5-minute bar every 5 s);
- `max`: as fast as the event loop goes;
- `lockstep`: the next group only after the venue saw no order traffic for `quiet_ms` since the last
  publication or the last order request, and no reply is in flight. Deterministic enough for parity:
  a strategy that answers a bar within `quiet_ms` has its orders trade at that bar's close.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from typing import Literal

from qa_engine.errors import ConfigError

PacingMode = Literal["speed", "max", "lockstep"]


@dataclass(frozen=True)
class Pacing:
    mode: PacingMode
    speed: float = 1.0  # simulated seconds per real second; mode "speed" only

    def delay_secs(self, previous_end_ms: int | None, end_ms: int) -> float:
        """Real seconds between publishing the group closing at `previous_end_ms` and the next one."""
        if self.mode != "speed" or previous_end_ms is None:
            return 0.0
        return max(0, end_ms - previous_end_ms) / 1_000 / self.speed


_SPEED = re.compile(r"^(\d+(?:\.\d+)?)x?$")


def parse_pacing(text: str) -> Pacing:
    """'60x' / '60' / 'max' / 'lockstep' -> Pacing; anything else is a ConfigError naming it."""
    value = text.strip().lower()
    if value in ("max", "lockstep"):
        return Pacing(mode=value)  # type: ignore[arg-type]
    match = _SPEED.match(value)
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"--speed '{text}': use a positive factor such as 60x, or max, or lockstep")
    return Pacing(mode="speed", speed=float(match.group(1)))


@dataclass(frozen=True)
class BarGroup:
    end_ms: int  # close time shared by every bar of the group
    bars: tuple[Any, ...]  # BarRow, one per symbol that has a bar closing then


def bar_groups(bars_by_symbol: dict[str, Iterable[Any]]) -> list[BarGroup]:
    """Bars of all symbols grouped by close time, oldest first; symbols in a group keep a fixed order."""
    by_end: dict[int, list[Any]] = defaultdict(list)
    for symbol in sorted(bars_by_symbol):
        for bar in bars_by_symbol[symbol]:
            by_end[int(bar.end_ms)].append(bar)
    return [BarGroup(end_ms=end, bars=tuple(by_end[end])) for end in sorted(by_end)]
