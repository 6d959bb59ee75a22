"""Kill-switch rules (qa_engine.risk.kill_switches): each fires when its condition is confirmed, not on a
single outlier, acts, and resumes as configured; the guard's state survives a round trip through JSON."""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal

import pytest

from qa_engine.risk.kill_switches import Action
from qa_engine.risk.kill_switches import ConsecutiveLossesRule
from qa_engine.risk.kill_switches import DailyLossRule
from qa_engine.risk.kill_switches import DrawdownRule
from qa_engine.risk.kill_switches import ErrorRateRule
from qa_engine.risk.kill_switches import Mode
from qa_engine.risk.kill_switches import ModelDisagreementRule
from qa_engine.risk.kill_switches import Resume
from qa_engine.risk.kill_switches import RiskGuard
from qa_engine.risk.kill_switches import RuleSettings
from qa_engine.risk.kill_switches import VolatilitySpikeRule

DAY0 = 1_735_689_600_000_000_000  # 2025-01-01T00:00Z
BAR = 300_000_000_000  # 5 minutes
SEC = 1_000_000_000


def settings(action=Action.HALT, resume=Resume.NEXT_UTC_DAY, **kwargs) -> RuleSettings:
    return RuleSettings(action=action, resume=resume, **kwargs)


def feed_equity(guard: RiskGuard, equities: list[float], start_ns: int = DAY0) -> list:
    events = []
    for i, equity in enumerate(equities):
        events += guard.on_bar(start_ns + i * BAR, Decimal(str(equity)), 100.0)
    return events


# --- daily loss ------------------------------------------------------------------------------------------


def test_daily_loss_fires_after_confirmation_halts_and_resumes_next_utc_day() -> None:
    guard = RiskGuard([DailyLossRule(settings(confirm_evaluations=2), limit_pct=5)])
    events = feed_equity(guard, [10_000, 9_700, 9_490, 9_480, 9_470])
    triggers = [e for e in events if e.kind == "trigger"]
    assert len(triggers) == 1 and triggers[0].rule == "daily_loss"
    assert triggers[0].ts_ns == DAY0 + 3 * BAR  # 9,490 (-5.1 %) seen, 9,480 confirms
    assert guard.mode is Mode.HALTED and guard.size_scale == 0.0
    assert feed_equity(guard, [9_000], start_ns=DAY0 + 10 * BAR) == []  # still the same day: still halted
    next_day = guard.on_bar(DAY0 + 86_400 * SEC, Decimal("9000"), 100.0)
    assert [e.kind for e in next_day] == ["resume"]
    assert guard.mode is Mode.ACTIVE
    # the new day's start is 9,000: -4 % from there does not fire
    assert feed_equity(guard, [8_700, 8_650], start_ns=DAY0 + 86_400 * SEC + BAR) == []


def test_daily_loss_single_outlier_bar_does_not_fire() -> None:
    guard = RiskGuard([DailyLossRule(settings(confirm_evaluations=2), limit_pct=5)])
    events = feed_equity(guard, [10_000, 10_010, 9_400, 10_005, 10_020])  # one bad mark, then back
    assert events == [] and guard.mode is Mode.ACTIVE


def test_daily_loss_minimum_duration_also_confirms() -> None:
    guard = RiskGuard([DailyLossRule(settings(confirm_evaluations=1, confirm_secs=900), limit_pct=5)])
    events = feed_equity(guard, [10_000, 9_400, 9_400, 9_400, 9_400])
    assert [e.ts_ns for e in events] == [DAY0 + 4 * BAR]  # breached at bar 1, 15 minutes later at bar 4


# --- consecutive losses ----------------------------------------------------------------------------------


def test_consecutive_losses_fire_on_the_nth_and_a_win_breaks_the_streak() -> None:
    rule = ConsecutiveLossesRule(settings(Action.FLATTEN, Resume.COOL_DOWN, confirm_evaluations=1), 3)
    guard = RiskGuard([rule])
    pnls = ["-5", "-3", "+1", "-2", "-2"]  # never 3 in a row
    assert [e for i, p in enumerate(pnls) for e in guard.on_round_trip(DAY0 + i * BAR, Decimal(p))] == []
    events = guard.on_round_trip(DAY0 + 5 * BAR, Decimal("-0.5"))
    assert [e.kind for e in events] == ["trigger"] and guard.mode is Mode.REDUCING


def test_consecutive_losses_cool_down_resume_starts_a_new_streak() -> None:
    rule_settings = settings(Action.HALT, Resume.COOL_DOWN, cool_down_secs=3600, confirm_evaluations=1)
    rule = ConsecutiveLossesRule(rule_settings, 2)
    guard = RiskGuard([rule])
    guard.on_round_trip(DAY0, Decimal("-1"))
    assert guard.on_round_trip(DAY0 + BAR, Decimal("-1"))  # 2 in a row, confirmed by the count itself
    assert feed_equity(guard, [9_990] * 11, start_ns=DAY0 + 2 * BAR) == []  # 55 minutes: still halted
    events = guard.on_bar(DAY0 + BAR + 3600 * SEC, Decimal("9990"), 100.0)
    assert [e.kind for e in events] == ["resume"] and rule.streak == 0
    assert guard.on_round_trip(DAY0 + 20 * BAR, Decimal("-1")) == []


# --- drawdown --------------------------------------------------------------------------------------------


def test_drawdown_from_the_running_peak_is_manual_resume_only() -> None:
    guard = RiskGuard([DrawdownRule(settings(Action.HALT, Resume.MANUAL), limit_pct=10)])
    events = feed_equity(guard, [10_000, 12_000, 11_000, 10_700, 10_750, 10_790])
    assert [e.ts_ns for e in events] == [DAY0 + 4 * BAR]  # 10,800 is -10 % of 12,000: 10,700 then 10,750
    assert feed_equity(guard, [10_000] * 3, start_ns=DAY0 + 86_400 * SEC * 3) == []  # days later: halted
    assert guard.mode is Mode.HALTED
    assert [e.kind for e in guard.resume_manually(DAY0 + 86_400 * SEC * 4)] == ["resume"]
    assert guard.mode is Mode.ACTIVE and guard.rules["drawdown"].peak == Decimal("10000")


def test_resume_manually_names_an_unknown_rule() -> None:
    guard = RiskGuard([DrawdownRule(settings(), limit_pct=10)])
    with pytest.raises(ValueError, match="unknown rule 'nope'; rules: drawdown"):
        guard.resume_manually(DAY0, "nope")


# --- volatility spike ------------------------------------------------------------------------------------


def _prices(returns: list[float], start: float = 100.0) -> list[float]:
    prices = [start]
    for r in returns:
        prices.append(prices[-1] * math.exp(r))
    return prices


def _calm(n: int, sigma: float = 0.001, seed: int = 1) -> list[float]:
    draw = random.Random(seed)
    return [draw.gauss(0, sigma) for _ in range(n)]


def _vol_guard(**kwargs) -> RiskGuard:
    rule_settings = settings(Action.REDUCE, Resume.COOL_DOWN, cool_down_secs=1800, size_scale=0.25, **kwargs)
    return RiskGuard([VolatilitySpikeRule(rule_settings, window_bars=12, baseline_bars=288, multiple=3)])


def _feed_prices(guard: RiskGuard, prices: list[float]) -> list:
    events = []
    for i, price in enumerate(prices):
        events += guard.on_bar(DAY0 + i * BAR, Decimal("10000"), price)
    return events


def test_volatility_spike_reduces_size_and_resumes_when_calm_again() -> None:
    calm, storm = _calm(300), _calm(40, sigma=0.01, seed=2)  # ten times the per-bar volatility
    events = _feed_prices(guard := _vol_guard(), _prices(calm + storm + _calm(150, seed=3)))
    kinds = [(e.kind, (e.ts_ns - DAY0) // BAR) for e in events]
    assert kinds[0][0] == "trigger" and 301 <= kinds[0][1] <= 315, kinds
    assert kinds[1][0] == "resume" and kinds[1][1] > 340, kinds  # after the storm has left the window
    assert len(kinds) == 2 and guard.mode is Mode.ACTIVE


def test_volatility_spike_size_scale_while_fired() -> None:
    guard = _vol_guard()
    events = _feed_prices(guard, _prices(_calm(300) + _calm(20, sigma=0.01, seed=2)))
    assert events and guard.mode is Mode.REDUCED and guard.size_scale == 0.25


def test_volatility_spike_one_outlier_bar_does_not_fire() -> None:
    returns = _calm(300)
    returns[250] = 0.08  # one 8 % bar (80 sigma): a bad tick
    assert _feed_prices(_vol_guard(), _prices(returns + _calm(50, seed=4))) == []


def test_volatility_spike_needs_its_baseline_first() -> None:
    assert _feed_prices(_vol_guard(), _prices(_calm(100) + _calm(40, sigma=0.05, seed=2))) == []


# --- error rate ------------------------------------------------------------------------------------------


def test_error_rate_halts_at_n_errors_in_the_window_and_clears_after_cool_down() -> None:
    rule = ErrorRateRule(
        settings(Action.HALT, Resume.COOL_DOWN, cool_down_secs=600, confirm_evaluations=1), 5, 60
    )
    guard = RiskGuard([rule])
    spread_out = [guard.on_order_error(DAY0 + i * 30 * SEC) for i in range(8)]  # 2 per minute: fine
    assert not any(spread_out)
    burst = [guard.on_order_error(DAY0 + 600 * SEC + i * SEC) for i in range(5)]
    assert [e.kind for events in burst for e in events] == ["trigger"] and guard.mode is Mode.HALTED
    assert guard.on_bar(DAY0 + 900 * SEC, Decimal(1), 1.0) == []  # errors aged out, cool-down not over
    assert [e.kind for e in guard.on_bar(DAY0 + 1300 * SEC, Decimal(1), 1.0)] == ["resume"]


def test_error_rate_waits_for_the_errors_to_clear_after_the_cool_down() -> None:
    rule = ErrorRateRule(
        settings(Action.HALT, Resume.COOL_DOWN, cool_down_secs=60, confirm_evaluations=1), 3, 300
    )
    guard = RiskGuard([rule])
    for i in range(3):
        guard.on_order_error(DAY0 + i * SEC)
    assert guard.mode is Mode.HALTED
    assert guard.on_bar(DAY0 + 120 * SEC, Decimal(1), 1.0) == []  # cool-down over, errors still in window
    assert [e.kind for e in guard.on_bar(DAY0 + 400 * SEC, Decimal(1), 1.0)] == ["resume"]


# --- model disagreement ----------------------------------------------------------------------------------


def test_model_disagreement_turns_conservative_and_back() -> None:
    rule_settings = settings(Action.CONSERVATIVE, Resume.COOL_DOWN, cool_down_secs=0, size_scale=0.5)
    guard = RiskGuard([ModelDisagreementRule(rule_settings, window=10, max_share=0.6)])
    agree = [(1, 1), (-1, -1)] * 5
    assert not any(guard.on_proposal(DAY0 + i * BAR, o, p) for i, (o, p) in enumerate(agree))
    one_off = guard.on_proposal(DAY0 + 10 * BAR, 1, -1)  # a single disagreement: 10 %
    assert one_off == []
    events = [e for i in range(8) for e in guard.on_proposal(DAY0 + (11 + i) * BAR, 1, -1)]
    assert [e.kind for e in events] == ["trigger"] and guard.mode is Mode.REDUCED and guard.size_scale == 0.5
    back = [e for i in range(10) for e in guard.on_proposal(DAY0 + (20 + i) * BAR, 1, 1)]
    assert [e.kind for e in back] == ["resume"] and guard.mode is Mode.ACTIVE


def test_flat_views_neither_agree_nor_disagree() -> None:
    guard = RiskGuard([ModelDisagreementRule(settings(Action.CONSERVATIVE), window=4, max_share=0.5)])
    assert not any(guard.on_proposal(DAY0 + i * BAR, 0, 1) for i in range(20))


# --- the guard -------------------------------------------------------------------------------------------


def test_the_most_severe_fired_action_wins() -> None:
    guard = RiskGuard(
        [
            DrawdownRule(settings(Action.REDUCE, Resume.MANUAL, size_scale=0.5), limit_pct=2),
            DailyLossRule(settings(Action.FLATTEN, Resume.NEXT_UTC_DAY), limit_pct=4),
        ]
    )
    feed_equity(guard, [10_000, 9_790, 9_780])
    assert guard.mode is Mode.REDUCED and guard.size_scale == 0.5
    feed_equity(guard, [9_590, 9_580], start_ns=DAY0 + 3 * BAR)
    assert guard.fired_rules == ["drawdown", "daily_loss"]
    assert guard.action is Action.FLATTEN and guard.mode is Mode.REDUCING and guard.size_scale == 0.0


def test_state_survives_json_round_trip_and_a_halt_stays_halted() -> None:
    def make() -> RiskGuard:
        return RiskGuard(
            [
                DailyLossRule(settings(confirm_evaluations=1), limit_pct=5),
                ConsecutiveLossesRule(settings(Action.REDUCE, Resume.MANUAL), 4),
                _vol_guard().rules["volatility_spike"],
            ]
        )

    guard = make()
    _feed_prices(guard, _prices(_calm(60)))
    guard.on_round_trip(DAY0, Decimal("-1"))
    feed_equity(guard, [10_000, 9_000], start_ns=DAY0 + 100 * BAR)
    assert guard.mode is Mode.HALTED
    saved = json.loads(json.dumps(guard.to_dict()))

    restarted = make()
    restarted.restore(saved)
    assert restarted.mode is Mode.HALTED and restarted.rules["consecutive_losses"].streak == 1
    assert restarted.to_dict() == guard.to_dict()
    assert restarted.on_bar(DAY0 + 200 * BAR, Decimal("9000"), 100.0) == []  # same UTC day: halted
    assert [e.kind for e in restarted.on_bar(DAY0 + 86_400 * SEC, Decimal("9000"), 100.0)] == ["resume"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: DailyLossRule(settings(), limit_pct=0),
        lambda: DrawdownRule(settings(), limit_pct=100),
        lambda: ConsecutiveLossesRule(settings(), 0),
        lambda: VolatilitySpikeRule(settings(), window_bars=12, baseline_bars=6, multiple=3),
        lambda: ErrorRateRule(settings(), 0, 60),
        lambda: ModelDisagreementRule(settings(), window=1, max_share=0.5),
        lambda: RuleSettings(Action.HALT, Resume.MANUAL, confirm_evaluations=0),
        lambda: RuleSettings(Action.REDUCE, Resume.MANUAL, size_scale=0),
    ],
)
def test_bad_settings_are_refused(make) -> None:
    with pytest.raises(ValueError):
        make()


def test_the_run_config_risk_section_builds_the_same_guard() -> None:
    from pydantic import ValidationError

    from qa_engine.config.models import RiskConfig
    from qa_engine.risk.kill_switches import guard_from_rules

    config = RiskConfig.model_validate(
        {
            "daily_loss": {"limit_pct": 3},
            "consecutive_losses": {},
            "volatility_spike": {"multiple": 4, "size_scale": 0.25},
            "error_rate": {"max_errors": 5},
        }
    )
    guard = guard_from_rules(config.rules())
    assert list(guard.rules) == ["daily_loss", "consecutive_losses", "volatility_spike", "error_rate"]
    assert guard.rules["daily_loss"].limit_pct == 3
    assert guard.rules["consecutive_losses"].settings.action is Action.FLATTEN
    assert guard.rules["consecutive_losses"].settings.confirm_evaluations == 1
    assert guard.rules["volatility_spike"].settings.size_scale == 0.25
    assert RiskConfig().rules() == {}
    for bad in (
        {"daily_loss": {"limit_pct": 0}},
        {"volatility_spike": {"window_bars": 50, "baseline_bars": 20}},
        {"drawdown": {"action": "panic"}},
        {"error_rate": {"max_errors": 5, "window": 60}},
    ):
        with pytest.raises(ValidationError):
            RiskConfig.model_validate(bad)
    with pytest.raises(ValueError, match="unknown kill-switch rule 'nope'"):
        guard_from_rules({"nope": {}})
