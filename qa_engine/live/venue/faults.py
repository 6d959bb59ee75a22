"""Faults the loopback Bybit venue injects: a frozen config (TOML file, constructor or POST /admin/faults)
and the mutable schedule that decides, bar by bar and request by request, what to break.

Two kinds of fault:
- standing faults from `FaultConfig` (drop websockets every N bars or with a per-bar probability, restart
  every N bars, delay or duplicate acknowledgements): they apply for the whole run;
- one-shot faults armed with `FaultSchedule.arm(...)` (the admin endpoint and `inject(...)` call it):
  "the next N requests are rate limited", "the next order gets 110007", "the next order is rejected with
  code C". Each is consumed by the request it breaks.

Every fault injected is counted in `FaultSchedule.counts` (GET /admin/state shows them). The random
draws use one `random.Random(seed)`, so a run with the same seed and the same traffic breaks the same bars.
"""

from __future__ import annotations

import random
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError

from qa_engine.errors import ConfigError

Stream = Literal["public", "private", "trade", "all"]

# Bybit v5 return codes the venue can force (https://bybit-exchange.github.io/docs/v5/error)
RATE_LIMIT = (10006, "Too many visits!")
INSUFFICIENT_BALANCE = (110007, "ab not enough for new order")
REJECT_MESSAGES = {
    10001: "params error",
    110017: "Reduce-only rule not satisfied",
    110007: INSUFFICIENT_BALANCE[1],
    110003: "Order price exceeds the allowable range",
    10006: RATE_LIMIT[1],
}


class FaultConfig(BaseModel):
    """Standing faults of one venue run; all off by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=0, description="seed of the per-bar random draws (drop_probability)")
    drop_every_bars: int | None = Field(
        default=None, gt=0, description="close the websockets of `drop_stream` after every N-th bar"
    )
    drop_probability: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="probability, per bar, of closing the websockets of `drop_stream`",
    )
    drop_stream: Stream = Field(default="all", description="which websockets a scheduled drop closes")
    restart_every_bars: int | None = Field(
        default=None, gt=0, description="restart the venue after every N-th bar (books are kept)"
    )
    restart_refuse_ms: int = Field(
        default=1_000, ge=0, description="after a restart, new connections are refused (HTTP 503) this long"
    )
    ack_delay_ms: int = Field(
        default=0, ge=0, description="trade-ws replies and private order events are sent this much later"
    )
    duplicate_acks: bool = Field(
        default=False, description="send every private order/execution message twice"
    )
    rate_limit_every_requests: int | None = Field(
        default=None, gt=0, description="answer every N-th signed request (REST or trade ws) with 10006"
    )


class FaultInjection(BaseModel):
    """One-shot faults armed at run time (POST /admin/faults body, `LoopbackBybit.inject(...)`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate_limit: int = Field(default=0, ge=0, description="the next N signed requests get 10006")
    insufficient_balance: int = Field(default=0, ge=0, description="the next N orders get 110007")
    reject: int = Field(default=0, ge=0, description="the next N orders are rejected with `reject_code`")
    reject_code: int = Field(
        default=10001, description="ret code of the forced rejections (10001, 110017, ...)"
    )
    standing: FaultConfig | None = Field(default=None, description="replace the standing faults")


def load_fault_config(path: Path) -> FaultConfig:
    """A FaultConfig from a TOML file (keys at the top or under [faults]); ConfigError names the file."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"--faults {path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--faults {path}: not valid TOML ({exc})") from exc
    try:
        return FaultConfig.model_validate(raw.get("faults", raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"--faults {path}: {where}: {first['msg']}") from exc


@dataclass(frozen=True)
class BarFaults:
    """What to break right after bar number `index` (1-based) was published."""

    drop: Stream | None = None
    restart: bool = False


class FaultSchedule:
    """The venue's fault state: standing config, armed one-shots, random draws and counters."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = config or FaultConfig()
        self._random = random.Random(self.config.seed)
        self._rate_limit_next = 0
        self._insufficient_next = 0
        self._reject_next: list[int] = []
        self._signed_requests = 0
        self.counts: Counter[str] = Counter()

    def arm(self, injection: FaultInjection) -> None:
        if injection.standing is not None:
            self.config = injection.standing
            self._random = random.Random(self.config.seed)
        self._rate_limit_next += injection.rate_limit
        self._insufficient_next += injection.insufficient_balance
        self._reject_next.extend([injection.reject_code] * injection.reject)

    def after_bar(self, index: int) -> BarFaults:
        """Faults due after the `index`-th published bar group (1-based)."""
        config = self.config
        restart = config.restart_every_bars is not None and index % config.restart_every_bars == 0
        drop: Stream | None = None
        if config.drop_every_bars is not None and index % config.drop_every_bars == 0:
            drop = config.drop_stream
        # draw every bar, whatever the outcome, so the sequence depends on the seed and bar count only
        if config.drop_probability > 0 and self._random.random() < config.drop_probability:
            drop = config.drop_stream
        if restart:
            self.counts["restart"] += 1
            return BarFaults(drop=None, restart=True)
        if drop is not None:
            self.counts[f"drop_{drop}"] += 1
        return BarFaults(drop=drop)

    def rate_limited(self) -> bool:
        """Called once per signed request (REST or trade ws): True = answer 10006."""
        self._signed_requests += 1
        every = self.config.rate_limit_every_requests
        hit = self._rate_limit_next > 0 or (every is not None and self._signed_requests % every == 0)
        if self._rate_limit_next > 0:
            self._rate_limit_next -= 1
        if hit:
            self.counts["rate_limit"] += 1
        return hit

    def order_rejection(self) -> tuple[int, str] | None:
        """Called once per order placement: a forced (ret_code, ret_msg) or None."""
        if self._insufficient_next > 0:
            self._insufficient_next -= 1
            self.counts["insufficient_balance"] += 1
            return INSUFFICIENT_BALANCE
        if self._reject_next:
            code = self._reject_next.pop(0)
            self.counts[f"reject_{code}"] += 1
            return code, REJECT_MESSAGES.get(code, "rejected by the loopback venue")
        return None

    def note(self, fault: str) -> None:
        """Count a fault applied elsewhere (a delayed or duplicated message, an admin drop)."""
        self.counts[fault] += 1
