"""Kill-switch rules: pure functions of what an account lived through, no Nautilus objects.

`RiskGuard` is fed observations (bar closes with the account's equity, closed round trips, order errors,
model proposals) and answers with `GuardEvent`s: a rule fired (its action starts) or a rule resumed. The
RiskGuardActor (actors/risk_guard.py) feeds it in backtests and live alike and carries the actions out;
everything that decides lives here, so every rule is unit-tested without an engine.

Rules (each optional, each with an action and a resume rule):

- `daily_loss`: equity at or below (1 - limit) x the equity of the first bar of the UTC day;
- `consecutive_losses`: the last N closed round trips all lost money;
- `drawdown`: equity at or below (1 - limit) x its running peak;
- `volatility_spike`: robust realised volatility of the last `window_bars` returns (1.4826 x median
  |log return|, which equals sigma for normal returns and does not move for one outlier bar) above
  `multiple` x its median over the last `baseline_bars` bars;
- `error_rate`: at least `max_errors` order / API errors within `window_secs`;
- `model_disagreement`: the Oracle's direction and the Strategist's proposal disagreed in at least
  `max_share` of the last `window` proposals.

Actions, least to most severe: `reduce` and `conservative` (trade at `size_scale` of normal size),
`flatten` (close every position, then reduce-only: Nautilus TradingState.REDUCING), `halt` (close every
position, then no orders at all: TradingState.HALTED). The guard's mode is the most severe action of the
rules that are fired; its size scale the smallest.

Confirmation: a rule fires only once its condition held on `confirm_evaluations` consecutive evaluations
and for at least `confirm_secs`, so one bad tick cannot halt the system.

Resume: `next_utc_day` (the first evaluation on a later UTC day), `cool_down` (`cool_down_secs` after
firing; rules whose condition clears by itself, volatility / errors / disagreement, also wait until it
has), `manual` (only `RiskGuard.resume_manually`). On resume a rule starts afresh (peak, losing streak
and day start re-based on the current account), so a halted account is not halted again at once for the
loss it already took.

Written by hand: no library does account-level kill switches (Nautilus' RiskEngine does order-level
checks and the trading state, which the actor uses).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from enum import StrEnum
from typing import Any

# Where the guard's state reaches the strategies (actors/risk_guard.py publishes, strategies/base.py reads):
# a dict {"mode": Mode value, "size_scale": float, "fired": [rule names]}; the Cache key holds it as JSON
# for a strategy that starts after the guard changed mode.
STATE_TOPIC = "risk.guard"
EVENT_TOPIC = "risk.guard.event"  # each GuardEvent as it happens (alerts, metrics)
STATE_CACHE_KEY = "qa.risk.state"
# {"max_position": {instrument id: str quantity}, "risk_per_trade_pct": x}
LIMITS_CACHE_KEY = "qa.risk.limits"
# <state file>.resume holds {"rules": [names] or null (all)}: an operator's `qa live resume`
RESUME_REQUEST_SUFFIX = ".resume"

NANOS_PER_SEC = 1_000_000_000
NANOS_PER_DAY = 86_400 * NANOS_PER_SEC
ROBUST_SIGMA = 1.4826  # sigma / median |x| for a normal distribution


class Action(StrEnum):
    REDUCE = "reduce"
    CONSERVATIVE = "conservative"
    FLATTEN = "flatten"
    HALT = "halt"


SEVERITY = {None: 0, Action.REDUCE: 1, Action.CONSERVATIVE: 2, Action.FLATTEN: 3, Action.HALT: 4}


class Resume(StrEnum):
    NEXT_UTC_DAY = "next_utc_day"
    COOL_DOWN = "cool_down"
    MANUAL = "manual"


class Mode(StrEnum):
    """What the account may do now (the actor maps it onto Nautilus' TradingState and sizing)."""

    ACTIVE = "active"
    REDUCED = "reduced"  # reduce / conservative: trading at a smaller size
    REDUCING = "reducing"  # flatten: positions closed, reduce-only orders
    HALTED = "halted"  # halt: positions closed, no orders


@dataclass(frozen=True)
class RuleSettings:
    """What a rule does when it fires, how it confirms, how it resumes."""

    action: Action
    resume: Resume
    cool_down_secs: int = 3_600
    confirm_evaluations: int = 2
    confirm_secs: int = 0
    size_scale: float = 0.5  # for reduce / conservative

    def __post_init__(self) -> None:
        if self.confirm_evaluations < 1:
            raise ValueError(f"confirm_evaluations must be >= 1, was {self.confirm_evaluations}")
        if not 0 < self.size_scale <= 1:
            raise ValueError(f"size_scale must be in (0, 1], was {self.size_scale}")
        if self.cool_down_secs < 0 or self.confirm_secs < 0:
            raise ValueError("cool_down_secs and confirm_secs must be >= 0")


@dataclass(frozen=True)
class Reading:
    """One evaluation of a rule: is its condition met, and the figure behind it."""

    breached: bool
    value: float
    threshold: float
    detail: str


@dataclass(frozen=True)
class GuardEvent:
    kind: str  # "trigger" | "resume"
    rule: str
    action: str
    ts_ns: int
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def utc_day(ts_ns: int) -> int:
    return ts_ns // NANOS_PER_DAY


class Rule:
    """A rule's own arithmetic. Subclasses implement the `observe_*` they need and `reset`."""

    name = ""
    clears_by_itself = False  # does its condition go away without trading (volatility, errors ...)?

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings

    def observe_bar(self, ts_ns: int, equity: Decimal, close: float) -> Reading | None:
        return None

    def observe_round_trip(self, ts_ns: int, pnl: Decimal) -> Reading | None:
        return None

    def observe_error(self, ts_ns: int) -> Reading | None:
        return None

    def observe_proposal(self, ts_ns: int, oracle_direction: int, proposal_direction: int) -> Reading | None:
        return None

    def reset(self, ts_ns: int, equity: Decimal | None) -> None:
        """Start afresh after a resume."""

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        pass


class DailyLossRule(Rule):
    name = "daily_loss"

    def __init__(self, settings: RuleSettings, limit_pct: float) -> None:
        super().__init__(settings)
        if not 0 < limit_pct < 100:
            raise ValueError(f"daily loss limit_pct must be in (0, 100), was {limit_pct}")
        self.limit_pct = limit_pct
        self.day: int | None = None
        self.day_start_equity: Decimal | None = None

    def observe_bar(self, ts_ns: int, equity: Decimal, close: float) -> Reading:
        if self.day != utc_day(ts_ns) or self.day_start_equity is None:
            self.day, self.day_start_equity = utc_day(ts_ns), equity
        change_pct = float((equity / self.day_start_equity - 1) * 100) if self.day_start_equity > 0 else 0.0
        return Reading(
            change_pct <= -self.limit_pct,
            change_pct,
            -self.limit_pct,
            f"equity {equity:.2f} is {change_pct:+.2f}% of the day's start {self.day_start_equity:.2f}",
        )

    def reset(self, ts_ns: int, equity: Decimal | None) -> None:
        self.day, self.day_start_equity = utc_day(ts_ns), equity

    def state(self) -> dict[str, Any]:
        start = None if self.day_start_equity is None else str(self.day_start_equity)
        return {"day": self.day, "day_start_equity": start}

    def restore(self, state: dict[str, Any]) -> None:
        self.day = state.get("day")
        start = state.get("day_start_equity")
        self.day_start_equity = None if start is None else Decimal(start)


class ConsecutiveLossesRule(Rule):
    name = "consecutive_losses"

    def __init__(self, settings: RuleSettings, max_losses: int) -> None:
        super().__init__(settings)
        if max_losses < 1:
            raise ValueError(f"consecutive losses max_losses must be >= 1, was {max_losses}")
        self.max_losses = max_losses
        self.streak = 0

    def observe_round_trip(self, ts_ns: int, pnl: Decimal) -> Reading:
        self.streak = self.streak + 1 if pnl < 0 else 0
        return Reading(
            self.streak >= self.max_losses,
            float(self.streak),
            float(self.max_losses),
            f"{self.streak} losing round trips in a row (last {pnl:+.2f})",
        )

    def reset(self, ts_ns: int, equity: Decimal | None) -> None:
        self.streak = 0

    def state(self) -> dict[str, Any]:
        return {"streak": self.streak}

    def restore(self, state: dict[str, Any]) -> None:
        self.streak = int(state.get("streak", 0))


class DrawdownRule(Rule):
    name = "drawdown"

    def __init__(self, settings: RuleSettings, limit_pct: float) -> None:
        super().__init__(settings)
        if not 0 < limit_pct < 100:
            raise ValueError(f"drawdown limit_pct must be in (0, 100), was {limit_pct}")
        self.limit_pct = limit_pct
        self.peak: Decimal | None = None

    def observe_bar(self, ts_ns: int, equity: Decimal, close: float) -> Reading:
        self.peak = equity if self.peak is None else max(self.peak, equity)
        drawdown_pct = float((equity / self.peak - 1) * 100) if self.peak > 0 else 0.0
        return Reading(
            drawdown_pct <= -self.limit_pct,
            drawdown_pct,
            -self.limit_pct,
            f"equity {equity:.2f} is {drawdown_pct:+.2f}% from its peak {self.peak:.2f}",
        )

    def reset(self, ts_ns: int, equity: Decimal | None) -> None:
        self.peak = equity

    def state(self) -> dict[str, Any]:
        return {"peak": None if self.peak is None else str(self.peak)}

    def restore(self, state: dict[str, Any]) -> None:
        peak = state.get("peak")
        self.peak = None if peak is None else Decimal(peak)


class VolatilitySpikeRule(Rule):
    name = "volatility_spike"
    clears_by_itself = True

    def __init__(self, settings: RuleSettings, window_bars: int, baseline_bars: int, multiple: float) -> None:
        super().__init__(settings)
        if window_bars < 3 or baseline_bars < window_bars or multiple <= 1:
            raise ValueError(
                "volatility spike needs window_bars >= 3, baseline_bars >= window_bars and multiple > 1 "
                f"(were {window_bars}, {baseline_bars}, {multiple})"
            )
        self.window_bars, self.baseline_bars, self.multiple = window_bars, baseline_bars, multiple
        self.last_close: float | None = None
        self.returns: deque[float] = deque(maxlen=window_bars)
        self.history: deque[float] = deque(maxlen=baseline_bars)

    def observe_bar(self, ts_ns: int, equity: Decimal, close: float) -> Reading | None:
        previous, self.last_close = self.last_close, close
        if previous is None or previous <= 0 or close <= 0:
            return None
        self.returns.append(abs(math.log(close / previous)))
        if len(self.returns) < self.window_bars:
            return None
        volatility = ROBUST_SIGMA * statistics.median(self.returns)
        warm = len(self.history) >= self.baseline_bars // 2  # a baseline over at least half its span
        baseline = statistics.median(self.history) if self.history else 0.0
        self.history.append(volatility)
        if not warm or baseline <= 0:
            return None
        ratio = volatility / baseline
        return Reading(
            ratio > self.multiple,
            ratio,
            self.multiple,
            f"realised volatility {volatility:.5f} per bar is {ratio:.1f}x its median {baseline:.5f}",
        )

    def state(self) -> dict[str, Any]:
        return {"last_close": self.last_close, "returns": list(self.returns), "history": list(self.history)}

    def restore(self, state: dict[str, Any]) -> None:
        self.last_close = state.get("last_close")
        self.returns.extend(state.get("returns", []))
        self.history.extend(state.get("history", []))


class ErrorRateRule(Rule):
    name = "error_rate"
    clears_by_itself = True

    def __init__(self, settings: RuleSettings, max_errors: int, window_secs: int) -> None:
        super().__init__(settings)
        if max_errors < 1 or window_secs < 1:
            raise ValueError(
                f"error rate needs max_errors, window_secs >= 1 (were {max_errors}, {window_secs})"
            )
        self.max_errors, self.window_ns = max_errors, window_secs * NANOS_PER_SEC
        self.errors: deque[int] = deque()

    def _reading(self, ts_ns: int) -> Reading:
        while self.errors and self.errors[0] <= ts_ns - self.window_ns:
            self.errors.popleft()
        count = len(self.errors)
        window_secs = self.window_ns // NANOS_PER_SEC
        detail = f"{count} order errors in {window_secs}s"
        return Reading(count >= self.max_errors, float(count), float(self.max_errors), detail)

    def observe_error(self, ts_ns: int) -> Reading:
        self.errors.append(ts_ns)
        return self._reading(ts_ns)

    def observe_bar(self, ts_ns: int, equity: Decimal, close: float) -> Reading | None:
        if not self.errors:
            return Reading(False, 0.0, float(self.max_errors), "no errors")
        return self._reading(ts_ns)

    def reset(self, ts_ns: int, equity: Decimal | None) -> None:
        self.errors.clear()

    def state(self) -> dict[str, Any]:
        return {"errors": list(self.errors)}

    def restore(self, state: dict[str, Any]) -> None:
        self.errors.extend(int(ts) for ts in state.get("errors", []))


class ModelDisagreementRule(Rule):
    name = "model_disagreement"
    clears_by_itself = True

    def __init__(self, settings: RuleSettings, window: int, max_share: float) -> None:
        super().__init__(settings)
        if window < 2 or not 0 < max_share <= 1:
            raise ValueError(
                f"disagreement needs window >= 2, max_share in (0, 1] (were {window}, {max_share})"
            )
        self.window, self.max_share = window, max_share
        self.disagreed: deque[bool] = deque(maxlen=window)

    def observe_proposal(self, ts_ns: int, oracle_direction: int, proposal_direction: int) -> Reading | None:
        if oracle_direction == 0 or proposal_direction == 0:
            return None  # a flat view neither agrees nor disagrees
        self.disagreed.append((oracle_direction > 0) != (proposal_direction > 0))
        if len(self.disagreed) < self.window:
            return None
        share = sum(self.disagreed) / len(self.disagreed)
        return Reading(
            share >= self.max_share,
            share,
            self.max_share,
            f"Oracle and Strategist disagreed on {share:.0%} of the last {self.window} proposals",
        )

    def state(self) -> dict[str, Any]:
        return {"disagreed": list(self.disagreed)}

    def restore(self, state: dict[str, Any]) -> None:
        self.disagreed.extend(bool(x) for x in state.get("disagreed", []))


@dataclass
class _Tracker:
    """Confirmation and resume bookkeeping of one rule."""

    breach_count: int = 0
    breach_since_ns: int | None = None
    fired_at_ns: int | None = None
    last_reading: dict[str, Any] = field(default_factory=dict)


class RiskGuard:
    def __init__(self, rules: list[Rule]) -> None:
        names = [rule.name for rule in rules]
        if len(set(names)) != len(names):
            raise ValueError(f"a rule appears twice: {names}")
        self.rules = {rule.name: rule for rule in rules}
        self.trackers = {rule.name: _Tracker() for rule in rules}
        self.last_equity: Decimal | None = None

    # --- observations ----------------------------------------------------------------------------------

    def on_bar(self, ts_ns: int, equity: Decimal, close: float) -> list[GuardEvent]:
        self.last_equity = equity
        return self._each(ts_ns, lambda rule: rule.observe_bar(ts_ns, equity, close))

    def on_round_trip(self, ts_ns: int, pnl: Decimal) -> list[GuardEvent]:
        return self._each(ts_ns, lambda rule: rule.observe_round_trip(ts_ns, pnl))

    def on_order_error(self, ts_ns: int) -> list[GuardEvent]:
        return self._each(ts_ns, lambda rule: rule.observe_error(ts_ns))

    def on_proposal(self, ts_ns: int, oracle_direction: int, proposal_direction: int) -> list[GuardEvent]:
        return self._each(
            ts_ns, lambda rule: rule.observe_proposal(ts_ns, oracle_direction, proposal_direction)
        )

    def resume_manually(self, ts_ns: int, rule_name: str | None = None) -> list[GuardEvent]:
        """Resume one fired rule (or all): the operator's decision, whatever the rule's resume setting."""
        names = [rule_name] if rule_name else self.fired_rules
        unknown = [name for name in names if name not in self.rules]
        if unknown:
            raise ValueError(f"unknown rule {unknown[0]!r}; rules: {', '.join(self.rules)}")
        return [self._resume(self.rules[name], ts_ns, "by hand") for name in names if self.fired(name)]

    # --- state -----------------------------------------------------------------------------------------

    def fired(self, rule_name: str) -> bool:
        return self.trackers[rule_name].fired_at_ns is not None

    @property
    def fired_rules(self) -> list[str]:
        return [name for name in self.rules if self.fired(name)]

    @property
    def action(self) -> Action | None:
        """The most severe action among the fired rules (None: nothing fired)."""
        actions = [self.rules[name].settings.action for name in self.fired_rules]
        return max(actions, key=SEVERITY.__getitem__, default=None)

    @property
    def mode(self) -> Mode:
        action = self.action
        if action is Action.HALT:
            return Mode.HALTED
        if action is Action.FLATTEN:
            return Mode.REDUCING
        return Mode.REDUCED if action is not None else Mode.ACTIVE

    @property
    def size_scale(self) -> float:
        """Multiply every new order's size by this (0 when flattening or halted)."""
        if self.mode in (Mode.HALTED, Mode.REDUCING):
            return 0.0
        return min((self.rules[name].settings.size_scale for name in self.fired_rules), default=1.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rules": {name: rule.state() for name, rule in self.rules.items()},
            "trackers": {name: asdict(tracker) for name, tracker in self.trackers.items()},
            "last_equity": None if self.last_equity is None else str(self.last_equity),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from `to_dict()` (a restarted node): rules missing from the state start fresh."""
        for name, rule_state in state.get("rules", {}).items():
            if name in self.rules:
                self.rules[name].restore(rule_state)
        for name, tracker in state.get("trackers", {}).items():
            if name in self.trackers:
                self.trackers[name] = _Tracker(**tracker)
        equity = state.get("last_equity")
        self.last_equity = None if equity is None else Decimal(equity)

    # --- internals -------------------------------------------------------------------------------------

    def _each(self, ts_ns: int, observe) -> list[GuardEvent]:
        """Every rule observes, then fired rules whose resume condition holds resume."""
        events = []
        for rule in self.rules.values():
            events += self._judge(rule, ts_ns, observe(rule))
        return events + self._resumes(ts_ns)

    def _judge(self, rule: Rule, ts_ns: int, reading: Reading | None) -> list[GuardEvent]:
        if reading is None:
            return []
        tracker = self.trackers[rule.name]
        tracker.last_reading = asdict(reading)
        if not reading.breached:
            tracker.breach_count, tracker.breach_since_ns = 0, None
            return []
        tracker.breach_count += 1
        if tracker.breach_since_ns is None:
            tracker.breach_since_ns = ts_ns
        if tracker.fired_at_ns is not None:
            return []
        settings = rule.settings
        held_ns = ts_ns - tracker.breach_since_ns
        confirmed = tracker.breach_count >= settings.confirm_evaluations
        if not confirmed or held_ns < settings.confirm_secs * NANOS_PER_SEC:
            return []
        tracker.fired_at_ns = ts_ns
        message = f"{rule.name}: {reading.detail} (limit {reading.threshold:g}) -> {settings.action.value}"
        action = settings.action.value
        return [GuardEvent("trigger", rule.name, action, ts_ns, reading.value, reading.threshold, message)]

    def _resumes(self, ts_ns: int) -> list[GuardEvent]:
        events = []
        for name in self.fired_rules:
            rule, tracker = self.rules[name], self.trackers[name]
            settings, fired = rule.settings, tracker.fired_at_ns
            if settings.resume is Resume.NEXT_UTC_DAY and utc_day(ts_ns) > utc_day(fired):
                events.append(self._resume(rule, ts_ns, "a new UTC day"))
            elif (
                settings.resume is Resume.COOL_DOWN
                and ts_ns - fired >= settings.cool_down_secs * NANOS_PER_SEC
            ):
                if rule.clears_by_itself and tracker.breach_count > 0:
                    continue  # still breached: wait until the condition clears
                events.append(self._resume(rule, ts_ns, f"cool-down of {settings.cool_down_secs}s over"))
        return events

    def _resume(self, rule: Rule, ts_ns: int, why: str) -> GuardEvent:
        tracker = self.trackers[rule.name]
        tracker.fired_at_ns, tracker.breach_count, tracker.breach_since_ns = None, 0, None
        rule.reset(ts_ns, self.last_equity)
        message = f"{rule.name}: resumed ({why})"
        return GuardEvent("resume", rule.name, rule.settings.action.value, ts_ns, 0.0, 0.0, message)


RULE_CLASSES: dict[str, tuple[type[Rule], tuple[str, ...]]] = {
    "daily_loss": (DailyLossRule, ("limit_pct",)),
    "consecutive_losses": (ConsecutiveLossesRule, ("max_losses",)),
    "drawdown": (DrawdownRule, ("limit_pct",)),
    "volatility_spike": (VolatilitySpikeRule, ("window_bars", "baseline_bars", "multiple")),
    "error_rate": (ErrorRateRule, ("max_errors", "window_secs")),
    "model_disagreement": (ModelDisagreementRule, ("window", "max_share")),
}
SETTING_FIELDS = ("action", "resume", "cool_down_secs", "confirm_evaluations", "confirm_secs", "size_scale")


def guard_from_rules(rules: dict[str, dict[str, Any]]) -> RiskGuard:
    """A guard from plain dicts, name -> fields (the run config's `[risk.<rule>]` sections, dumped)."""
    built = []
    for name, fields in rules.items():
        if name not in RULE_CLASSES:
            raise ValueError(f"unknown kill-switch rule {name!r}; rules: {', '.join(RULE_CLASSES)}")
        rule_class, own = RULE_CLASSES[name]
        settings = {key: fields[key] for key in SETTING_FIELDS if key in fields}
        settings["action"] = Action(settings.get("action", Action.HALT))
        settings["resume"] = Resume(settings.get("resume", Resume.NEXT_UTC_DAY))
        arguments = {key: fields[key] for key in own if key in fields}
        built.append(rule_class(RuleSettings(**settings), **arguments))
    return RiskGuard(built)
