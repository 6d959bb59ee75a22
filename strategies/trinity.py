"""Trinity: the Strategist (Decision Transformer, ONNX) proposes, the Oracle's forecast and the
Guardian's regime gate, ATR sizes, bracket orders protect.

Inputs of bar t, all stamped ts_event = t (the bar's close): the Bar, the FeatureVector of the
Strategist's fitted feature set (a FeatureActor with `artifact=<strategist folder>`), the Forecast
(OracleActor, `use_oracle`) and the Regime (GuardianActor, `use_guardian`). Where they come from
(actors, or records replayed from the catalog) does not matter.

Join (same-timestamp ordering). The message bus gives no order between the bar, the actors' messages
and replayed records of one timestamp, so the strategy joins the pieces by ts_event
(`TimestampJoin`) and decides exactly once per bar, when every required piece of that ts AND the bar
itself have arrived: the decision then always runs after the matching engine saw bar t, and a market
order fills at bar t's close whatever the delivery order. A piece of an older ts than the one being
collected is stale and dropped (`join.stale_dropped`). A ts that never completes (a model still
warming up) is closed when a piece of a later ts arrives: it still feeds the Strategist's context
when its bar and features are there, but it trades nothing.

Decision per bar (`decide`, a pure function):
- the Strategist proposes a target position (action levels: -1 short, 0 flat, +1 long with 3
  actions) with confidence = the probability of its argmax action x 100;
- below `confidence_threshold_pct`: nothing (HOLD, the position and its bracket stay);
- new risk (entering, flipping, growing a position) needs (a) the Forecast's distribution at the gate
  horizon (row `forecast_horizon_bars`, default the last: cumulative ln(close[t+h] / close[t])) to give
  the move beyond the cost in the position's direction a probability above `min_clear_probability` and
  above the opposite move's (`clear_probability`: the CDF read linearly between the forecast's
  quantiles), the cost being the round trip 2 x taker fee + `cost_margin_bps` plus the funding that side
  would pay over the horizon at the last settled rate (`funding_in_cost`); at 0.5 this is exactly "the
  median clears the cost" (property-tested), the 5m presets' rule; and (b) the regime's risk_scale > 0.
  When (a) or (b) fails, reducing is still allowed: a flip becomes a close, an entry becomes nothing.
  risk_scale = 0 means "no new risk"; exits stay allowed;
- missing inputs (warm-up: features, context, ATR, forecast or regime not there yet): no new risk.
Signal rule: no trade -> HOLD; a trade that raises the signed position (flat -> long, short -> flat,
short -> long) is a BUY, one that lowers it a SELL; it is STRONG_ when it opens a full position
(|target| = 1) with confidence >= `strong_confidence_pct` and (without the Oracle, or) a forecast
median of at least twice the cost. Exits are never strong. The reasoning string names every input,
e.g. "DT long p=0.71; q50(+12)=+18.3bp > cost 14.0bp; regime 1 risk 0.94; ATR 85.2 -> enter long",
and is tagged on every order ("SIGNAL|confidence|reasoning", recorded in fills.csv). Every decision is
also published as an Action on DataType(Action, metadata={"instrument_id": ...}).

Sizing, `sizing = "risk"` (risk per trade, `risk_sized_quantity`): quantity = equity x risk_per_trade_pct%
x risk_scale / stop distance, capped at max_leverage x equity / price and the venue's limits, rounded
down to the lot step (qa_engine.risk.sizing). `sizing = "vol_target"`: notional = equity x
min(max_leverage, target sigma / the Oracle's sigma) x risk_scale, the Oracle's sigma per bar implied by
its outermost quantiles at the gate horizon (`sigma_from_quantiles`), the target `vol_target_annual_pct`
a year. The stop distance is atr_stop_multiple x ATR (Nautilus AverageTrueRange, simple mean of
`atr_period_bars` true ranges) but never closer than `min_stop_cost_multiple` round-trip costs
(`bracket_distances`); the take-profit keeps its ratio to the stop. `trade_from` (an ISO time): bars before
it only warm up features, models and the Strategist's context (walk-forward test ranges).

Orders: an entry is a bracket (market entry + stop-market stop-loss at atr_stop_multiple x ATR + limit
take-profit at atr_take_profit_multiple x ATR from the decision bar's close; the exchange cancels the
other child when one fills). An exit or a flip closes the position with a reduce-only market order and
cancels the bracket's open children first. When a stop or a take-profit fills, the venue cancels its
sibling (the children are linked one-updates-the-other; Nautilus' simulated exchange does it in the
same step); whatever child is still open when the strategy next sees a flat position is cancelled
then: no orphan stop stays open. With more than 3 actions a resize closes and re-enters (one extra
round trip of fees). Confidence applies to exits too: a proposal under the threshold changes nothing,
the bracket keeps protecting the position.

Speed: the Strategist runs (onnxruntime) only when its output can matter: while a position is held,
or while flat when an entry could pass the gates (risk_scale > 0 and |forecast median| > cost). Every
bar still enters its context, which records the position actually held (a vetoed proposal or a stop
is what the context sees). Counters: `policy.calls`, `policy.inference_secs`, `decisions`,
`inference_skipped`. `skip_idle_inference = False` calls it every bar (same decisions, tested).

Presets (`preset`; any explicitly given parameter overrides the preset's value):

| preset       | conf. | risk | stop    | take-profit | horizon | margin | lev. | P(clear) | floor | sizing |
|--------------|------:|-----:|--------:|------------:|---------|-------:|-----:|---------:|------:|--------|
| full         | 60%   | 2%   | 2.0 ATR | 3.0 ATR     | last    | 2 bp   | 3x   | 0.5      | 2     | risk   |
| fast         | 60%   | 2%   | 1.0 ATR | 1.5 ATR     | 6 bars  | 2 bp   | 3x   | 0.5      | 2     | risk   |
| conservative | 75%   | 1%   | 2.5 ATR | 3.75 ATR    | last    | 5 bp   | 2x   | 0.55     | 3     | risk   |
| aggressive   | 50%   | 5%   | 1.5 ATR | 3.0 ATR     | last    | 0 bp   | 5x   | 0.5      | 1.5   | risk   |
| swing (1h)   | 50%   | 2%   | 2.0 ATR | 3.0 ATR     | last    | 2 bp   | 2x   | 0.45     | 3     | vol 30%|

(horizon: the forecast step the gate reads, "last" = the forecast's horizon, 12 bars; floor: the stop's
minimum distance in round-trip costs; vol 30%: vol-target sizing at a 30 % annual target.)

Confidence and risk per trade are REQUIREMENTS.md's (60/60/75/50%, 2/2/1/5%), stops lie in its
1.0-2.5 ATR range. "fast" means quick trades: the tightest stop and take-profit (1.5 R) and a gate on
the median 30 minutes ahead instead of an hour; "conservative" a wide stop (smaller size for the same
risk), a higher bar for confidence and cost; "aggressive" 2 R targets with more risk and leverage (its
run config raises the venue's leverage to 5x to match).

"swing" is the hourly Trinity (artifacts/hourly, configs/backtest/trinity_1h.toml): 12 hours is where the
move clears the cost (docs/COST_HORIZON.md); its out-of-sample record is docs/WALKFORWARD.md.

What the committed 5m artifacts do with this (configs/backtest/trinity*.toml on the January 2025 sample,
inside the models' training range): no 5m preset trades. The Oracle's 12-bar median stays within
-0.4 .. +4.4 bp (1st .. 99th percentile of 8,367 forecasts), never near the 12-17 bp cost, so the
forecast gate never opens (the Strategist is then never run while flat); with `use_oracle = false`
the Strategist proposes flat with p = 0.97-0.99 on every bar (behaviour cloning learnt persistence;
its own out-of-sample rollouts change position 2-4 times in 7 weeks). The trading mechanics are
tested with stub forecasts (tests/integration/test_trinity_strategy.py).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from dataclasses import fields
from decimal import ROUND_DOWN
from decimal import Decimal
from pathlib import Path

import numpy as np
from nautilus_trader.config import PositiveInt
from nautilus_trader.config import StrategyConfig
from nautilus_trader.indicators import AverageTrueRange
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import DataType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId

from qa_engine.features.io import nautilus_bar_spec
from qa_engine.inference.strategist import PolicyAction
from qa_engine.inference.strategist import StrategistPolicy
from qa_engine.lifecycle import stop_after_start
from qa_engine.risk.sizing import bars_per_year
from qa_engine.risk.sizing import quantity_for_notional
from qa_engine.risk.sizing import sigma_from_quantiles
from qa_engine.risk.sizing import vol_target_leverage
from qa_engine.signals import INFERENCE_TOPIC
from qa_engine.signals import Action
from qa_engine.signals import Decision
from qa_engine.signals import FeatureVector
from qa_engine.signals import Forecast
from qa_engine.signals import InferenceTime
from qa_engine.signals import Proposal
from qa_engine.signals import Regime
from qa_engine.signals import Signal
from qa_engine.signals import hold
from qa_engine.signals import subscribe_bus
from strategies.base import STOPPED_MODES
from strategies.base import TargetPositionStrategy
from strategies.base import trade_from_ns

# ---- presets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrinitySettings:
    """The values a preset fills in (every one overridable in the strategy's config)."""

    confidence_threshold_pct: float
    risk_per_trade_pct: float
    atr_stop_multiple: float
    atr_take_profit_multiple: float
    forecast_horizon_bars: int | None  # the forecast step the gate reads; None: its last step
    cost_margin_bps: float  # on top of the round trip's 2 x taker fee
    max_leverage: float
    min_clear_probability: float  # the gate: P(move beyond the cost in the trade's direction) must exceed it
    min_stop_cost_multiple: float  # the stop is never closer than this many round-trip costs
    sizing: str  # "risk": risk per trade over the stop; "vol_target": the Oracle's band sizes the position
    vol_target_annual_pct: float  # with sizing = "vol_target"


PRESETS: dict[str, TrinitySettings] = {
    "full": TrinitySettings(60.0, 2.0, 2.0, 3.0, None, 2.0, 3.0, 0.5, 2.0, "risk", 30.0),
    "fast": TrinitySettings(60.0, 2.0, 1.0, 1.5, 6, 2.0, 3.0, 0.5, 2.0, "risk", 30.0),
    "conservative": TrinitySettings(75.0, 1.0, 2.5, 3.75, None, 5.0, 2.0, 0.55, 3.0, "risk", 30.0),
    "aggressive": TrinitySettings(50.0, 5.0, 1.5, 3.0, None, 0.0, 5.0, 0.5, 1.5, "risk", 30.0),
    "swing": TrinitySettings(50.0, 2.0, 2.0, 3.0, None, 2.0, 2.0, 0.45, 3.0, "vol_target", 30.0),
}
SIZINGS = ("risk", "vol_target")
MAX_LEVERAGE = 10.0  # risk policy (REQUIREMENTS.md)
FUNDING_PERIOD_SECS = 8 * 3600  # Bybit and Binance settle perpetual funding every 8 hours


class TrinityStrategyConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    strategist_artifact: str = "artifacts/strategist"  # model folder: model.onnx + manifest.json
    preset: str = "full"  # full | fast | conservative | aggressive (PRESETS)
    use_oracle: bool = True  # wait for a Forecast per bar and gate entries on it
    use_guardian: bool = True  # wait for a Regime per bar; its risk_scale scales and gates risk
    target_return: str | float | None = None  # Strategist's target: None = manifest default, "q0.99", 0.02
    # None: the preset's value
    confidence_threshold_pct: float | None = None
    risk_per_trade_pct: float | None = None
    atr_stop_multiple: float | None = None
    atr_take_profit_multiple: float | None = None
    forecast_horizon_bars: int | None = None
    cost_margin_bps: float | None = None
    max_leverage: float | None = None
    min_clear_probability: float | None = None
    min_stop_cost_multiple: float | None = None
    sizing: str | None = None
    vol_target_annual_pct: float | None = None
    funding_in_cost: bool = True  # the last settled funding rate, over the horizon, adds to the cost
    trade_from: str | None = None  # ISO time: bars before it only warm up features, models and context
    taker_fee_rate: float | None = None  # None: the instrument's taker fee
    strong_confidence_pct: float = 80.0  # STRONG_BUY / STRONG_SELL from this confidence (and 2x cost)
    atr_period_bars: PositiveInt = 14
    skip_idle_inference: bool = True  # run the Strategist only when its output can matter
    keep_history: bool = False  # keep every published Action in memory (tests, research)

    def __post_init__(self) -> None:
        if self.bar_type.instrument_id != self.instrument_id:
            raise ValueError(f"bar_type {self.bar_type} is not a bar of {self.instrument_id}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset '{self.preset}'; presets: {', '.join(PRESETS)}")
        settings = self.settings()
        checks = [
            ("confidence_threshold_pct", 0.0 <= settings.confidence_threshold_pct <= 100.0, "in [0, 100]"),
            ("strong_confidence_pct", 0.0 <= self.strong_confidence_pct <= 100.0, "in [0, 100]"),
            ("risk_per_trade_pct", 0.0 < settings.risk_per_trade_pct <= 100.0, "in (0, 100]"),
            ("atr_stop_multiple", settings.atr_stop_multiple > 0, "> 0"),
            ("atr_take_profit_multiple", settings.atr_take_profit_multiple > 0, "> 0"),
            ("cost_margin_bps", settings.cost_margin_bps >= 0, ">= 0"),
            ("max_leverage", 0.0 < settings.max_leverage <= MAX_LEVERAGE, f"in (0, {MAX_LEVERAGE:g}]"),
            (
                "forecast_horizon_bars",
                (settings.forecast_horizon_bars or 0) >= 1 or settings.forecast_horizon_bars is None,
                ">= 1 (or None: the forecast's last step)",
            ),
            ("taker_fee_rate", 0 <= (self.taker_fee_rate or 0.0) < 0.01, "in [0, 0.01)"),
            ("min_clear_probability", 0.0 <= settings.min_clear_probability < 1.0, "in [0, 1)"),
            ("min_stop_cost_multiple", settings.min_stop_cost_multiple >= 0, ">= 0"),
            ("sizing", settings.sizing in SIZINGS, f"one of {', '.join(SIZINGS)}"),
            ("vol_target_annual_pct", 0 < settings.vol_target_annual_pct <= 500, "in (0, 500]"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {getattr(settings, name, getattr(self, name))}")
        if self.trade_from is not None:
            trade_from_ns(self.trade_from)  # a malformed time fails here, naming the field
        if settings.sizing == "vol_target" and not self.use_oracle:
            raise ValueError(
                "sizing 'vol_target' needs use_oracle = true: the Oracle's band is the volatility forecast"
            )

    def settings(self) -> TrinitySettings:
        """The preset's values with every explicitly given parameter in their place."""
        preset = PRESETS[self.preset]
        values = {}
        for item in fields(TrinitySettings):
            explicit = getattr(self, item.name)
            values[item.name] = getattr(preset, item.name) if explicit is None else explicit
        return TrinitySettings(**values)


# ---- pure logic: join, gates, sizing ---------------------------------------------------------------


@dataclass
class BarInputs:
    """The pieces of one bar (ts = its close) collected so far."""

    ts: int
    bar: Bar | None = None
    features: FeatureVector | None = None
    forecast: Forecast | None = None
    regime: Regime | None = None


class TimestampJoin:
    """Collects the pieces of one timestamp and releases it once: complete when every required kind
    has arrived, or incomplete when a piece of a later timestamp arrives first. Older pieces are stale
    and dropped; a second piece of a kind already held (or of a released timestamp) is ignored."""

    def __init__(self, required: tuple[str, ...]) -> None:
        unknown = set(required) - {"bar", "features", "forecast", "regime"}
        if unknown:
            raise ValueError(f"unknown input kinds {sorted(unknown)}")
        self.required = required
        self.current: BarInputs | None = None
        self.missing = len(required)  # required pieces the current timestamp still lacks
        self.released = False
        self.stale_dropped = 0
        self.duplicates = 0
        self.incomplete = 0

    def add(self, kind: str, ts: int, item: object) -> list[tuple[BarInputs, bool]]:
        """Returns the timestamps released by this piece, oldest first, each with `complete`."""
        released: list[tuple[BarInputs, bool]] = []
        current = self.current
        if current is not None and ts < current.ts:
            self.stale_dropped += 1
            return released
        if current is not None and ts > current.ts:
            if not self.released:
                self.incomplete += 1
                released.append((current, False))
            current = None
        if current is None:
            current = self.current = BarInputs(ts)
            self.released = False
            self.missing = len(self.required)
        if self.released or getattr(current, kind) is not None:
            self.duplicates += 1
            return released
        setattr(current, kind, item)
        self.missing -= kind in self.required
        if self.missing == 0:
            self.released = True
            released.append((current, True))
        return released


@dataclass(frozen=True)
class GateInputs:
    """What the gates read at one bar. Forecast and regime are None when not used."""

    held: float  # the position held now, as an action level in [-1, 1]
    forecast_median: float | None  # ln(close[t+h] / close[t]) at the gate horizon (q0.5)
    horizon_bars: int | None
    cost: float  # round trip in log-return units: 2 x taker fee + margin
    regime_id: int | None
    risk_scale: float  # 1.0 without the Guardian
    atr: float | None  # None while the ATR warms up
    confidence_threshold_pct: float
    strong_confidence_pct: float
    clear_long: float | None = None  # P(ln move over the horizon > cost + funding a long pays)
    clear_short: float | None = None  # P(ln move < -(cost + funding a short pays))
    min_clear_probability: float = 0.5
    funding: float = 0.0  # expected funding over the horizon for a LONG (log units; a short pays -funding)


def clear_probability(levels: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """P(X > threshold) of a distribution given by quantiles (`levels` ascending, `values` their values
    at one horizon step). The CDF is linear between the quantiles and continues the outer segments'
    slopes beyond them (clipped to [0, 1]); crossed quantiles are sorted first (monotone
    rearrangement). Written here because it is four lines of numpy over the forecast's own quantiles.
    With the median among the quantiles, P > 0.5 exactly when the median is above the threshold.

    Per bar it reads a handful of quantiles twice, so it runs on Python floats (the same IEEE double
    operations as `np.interp`, whose code it follows: `tests/unit/strategies/test_trinity_cost_aware.py`
    checks it bit for bit against the numpy form); a NaN quantile takes the numpy form."""
    x = sorted(np.asarray(values, dtype=np.float64).tolist())
    p = np.asarray(levels, dtype=np.float64).tolist()
    if any(value != value for value in x):  # NaN: numpy's sort order and interp
        return _clear_probability_numpy(levels, values, threshold)
    if threshold <= x[0]:
        slope = (p[1] - p[0]) / max(x[1] - x[0], 1e-12)
        cdf = p[0] - (x[0] - threshold) * slope
    elif threshold >= x[-1]:
        slope = (p[-1] - p[-2]) / max(x[-1] - x[-2], 1e-12)
        cdf = p[-1] + (threshold - x[-1]) * slope
    else:  # np.interp: x[j] <= threshold < x[j + 1]
        j = bisect_right(x, threshold) - 1
        if x[j] == threshold:
            cdf = p[j]
        else:
            slope = (p[j + 1] - p[j]) / (x[j + 1] - x[j])
            cdf = slope * (threshold - x[j]) + p[j]
            if cdf != cdf:
                cdf = slope * (threshold - x[j + 1]) + p[j + 1]
                if cdf != cdf and p[j] == p[j + 1]:
                    cdf = p[j]
    return float(min(1.0, max(0.0, 1.0 - cdf)))


def _clear_probability_numpy(levels: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """`clear_probability` in numpy (the reference form; NaN quantiles)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    p = np.asarray(levels, dtype=np.float64)
    if threshold <= x[0]:
        slope = (p[1] - p[0]) / max(x[1] - x[0], 1e-12)
        cdf = p[0] - (x[0] - threshold) * slope
    elif threshold >= x[-1]:
        slope = (p[-1] - p[-2]) / max(x[-1] - x[-2], 1e-12)
        cdf = p[-1] + (threshold - x[-1]) * slope
    else:
        cdf = float(np.interp(threshold, x, p))
    return float(min(1.0, max(0.0, 1.0 - cdf)))


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _direction(level: float) -> str:
    return "long" if level > 0 else "short" if level < 0 else "flat"


def is_new_risk(held: float, target: float) -> bool:
    """Entering, growing or flipping a position (anything but keeping or reducing it)."""
    return target != 0 and (_sign(target) != _sign(held) or abs(target) > abs(held))


def entry_could_pass(gates: GateInputs) -> bool:
    """Whether some entry from flat could pass the forecast and regime gates at this bar (if not, the
    Strategist's output cannot matter while flat)."""
    if gates.risk_scale <= 0 or gates.atr is None:
        return False
    return gates.forecast_median is None or forecast_allows(gates, 1) or forecast_allows(gates, -1)


def forecast_allows(gates: GateInputs, side: int) -> bool:
    """The forecast gate for new risk on `side` (+1 long, -1 short): the probability that the move
    clears the cost (fees, margin and the funding this side pays) in that direction exceeds
    `min_clear_probability` and the probability of the opposite move (the distribution leans that way).
    Without a forecast (use_oracle = false) it always allows."""
    if gates.forecast_median is None:
        return True
    if gates.clear_long is None or gates.clear_short is None:  # a median-only forecast
        return side * gates.forecast_median > gates.cost + side * gates.funding
    mine, other = (gates.clear_long, gates.clear_short) if side > 0 else (gates.clear_short, gates.clear_long)
    return mine > gates.min_clear_probability and mine > other


def decide(proposal: PolicyAction | None, gates: GateInputs, context_note: str = "") -> Decision:
    """The Strategist's proposal through the gates (see the module docstring) -> Decision.

    proposal None: the Strategist did not run (context warming up, or flat with no entry possible).
    target_fraction None in the result keeps the position and its bracket as they are."""
    if proposal is None:
        return hold(f"{'; '.join([context_note or 'DT not run', *_describe_inputs(gates)])} -> hold")
    target = proposal.target_position
    confidence = 100.0 * float(proposal.probabilities[proposal.action_index])
    dt = f"DT {_direction(target)} p={confidence / 100:.2f}"
    if confidence < gates.confidence_threshold_pct:
        note = f"{dt} < {gates.confidence_threshold_pct:.0f}% threshold"
        return hold(f"{'; '.join([note, *_describe_inputs(gates)])} -> hold")
    held, final, blocked = gates.held, target, ""
    if is_new_risk(held, target):
        if gates.atr is None:
            blocked = "ATR warming up"
        elif gates.risk_scale <= 0:
            blocked = f"regime risk {gates.risk_scale:.2f}: no new risk"
        elif not forecast_allows(gates, _sign(target)):
            blocked = f"forecast does not clear cost {_direction(target)}"
        if blocked:  # reducing stays allowed: a flip becomes a close, an entry nothing
            final = 0.0 if _sign(held) != _sign(target) and held != 0 else held
    parts = [dt, *_describe_inputs(gates, target if target != 0 else None)]
    if final == held:
        outcome = f"blocked: {blocked} -> hold" if blocked else "-> hold"
        return Decision(None, Signal.HOLD, confidence, f"{'; '.join(parts)} {outcome}")
    outcome = _outcome(held, final) + (f" (blocked: {blocked})" if blocked else "")
    reasoning = f"{'; '.join(parts)} {outcome}"
    return Decision(final, _signal(held, final, confidence, gates), confidence, reasoning)


def outcome_kind(ready: bool, proposal: PolicyAction | None, decision: Decision) -> str:
    """A short category of a decision, for the end-of-run tally (why the strategy did or did not trade)."""
    if decision.target_fraction is not None:
        return "trade"
    if not ready:
        return "warming up"
    if proposal is None:
        return "flat, no entry can pass the gates (Strategist not run)"
    reasoning = decision.reasoning
    if "% threshold" in reasoning:
        return "below the confidence threshold"
    if "blocked: forecast" in reasoning:
        return "blocked by the forecast (does not clear the cost)"
    if "blocked: regime" in reasoning:
        return "blocked by the regime (no new risk)"
    if "blocked: ATR" in reasoning:
        return "blocked: ATR warming up"
    return "Strategist keeps the position"


def _signal(held: float, target: float, confidence: float, gates: GateInputs) -> Signal:
    buying = target > held
    strong = (
        abs(target) == 1.0
        and is_new_risk(held, target)
        and confidence >= gates.strong_confidence_pct
        and (gates.forecast_median is None or _sign(target) * gates.forecast_median >= 2 * gates.cost)
    )
    if buying:
        return Signal.STRONG_BUY if strong else Signal.BUY
    return Signal.STRONG_SELL if strong else Signal.SELL


def _outcome(held: float, target: float) -> str:
    if target == 0:
        return f"-> close {_direction(held)}"
    if held == 0:
        return f"-> enter {_direction(target)}"
    if _sign(held) != _sign(target):
        return f"-> flip {_direction(held)} to {_direction(target)}"
    return f"-> resize {held:+g} to {target:+g}"


def _describe_inputs(gates: GateInputs, target: float | None = None) -> list[str]:
    """The inputs as text; the forecast relation is stated for the target's direction, if any:
    "q50(+12)=+18.3bp > cost 14.0bp" (long), "q50(+12)=-5.0bp > -cost -14.0bp" (short, fails)."""
    parts = []
    if gates.forecast_median is not None:
        median_bp, cost_bp = 1e4 * gates.forecast_median, 1e4 * gates.cost
        text = f"q50(+{gates.horizon_bars})={median_bp:+.1f}bp"
        if target is not None and target > 0:
            text += f" {'>' if gates.forecast_median > gates.cost else '<='} cost {cost_bp:.1f}bp"
        elif target is not None and target < 0:
            text += f" {'<' if gates.forecast_median < -gates.cost else '>='} -cost -{cost_bp:.1f}bp"
        else:
            text += f" (cost {cost_bp:.1f}bp)"
        parts.append(text)
        if gates.clear_long is not None and gates.clear_short is not None:
            funding = f", funding {1e4 * gates.funding:+.1f}bp" if gates.funding else ""
            parts.append(f"P(clear) long {gates.clear_long:.2f} short {gates.clear_short:.2f}{funding}")
    if gates.regime_id is not None:
        parts.append(f"regime {gates.regime_id} risk {gates.risk_scale:.2f}")
    parts.append("ATR warming up" if gates.atr is None else f"ATR {gates.atr:.1f}")
    return parts


def risk_sized_quantity(
    equity: Decimal,
    price: Decimal,
    atr: float,
    *,
    risk_per_trade_pct: float,
    risk_scale: float,
    atr_stop_multiple: float,
    max_leverage: float,
    size_increment: Decimal,
    min_quantity: Decimal = Decimal(0),
    max_quantity: Decimal | None = None,
) -> Decimal:
    """Risk per trade: equity x risk% x risk_scale / (atr_stop_multiple x ATR), capped at
    max_leverage x equity / price and the venue's limits, rounded down to the lot step (0 if under
    the venue's minimum). Expressed as a notional share of equity for `quantity_for_notional`:
    q x price / equity x 100 = risk% x risk_scale x price / stop distance."""
    stop_distance = atr_stop_multiple * atr
    if not (math.isfinite(stop_distance) and stop_distance > 0) or risk_scale <= 0:
        return Decimal(0)
    risk_notional_pct = risk_per_trade_pct * min(risk_scale, 1.0) * float(price) / stop_distance
    notional_pct = min(risk_notional_pct, 100.0 * max_leverage)
    return quantity_for_notional(
        equity=equity,
        price=price,
        notional_pct_of_equity=Decimal(repr(notional_pct)),
        size_increment=size_increment,
        min_quantity=min_quantity,
        max_quantity=max_quantity,
    )


def bracket_distances(
    settings: TrinitySettings, atr: float, cost: float, price: float
) -> tuple[float, float, bool]:
    """(stop distance, take-profit distance, floored) in price units: atr_stop_multiple x ATR, but never
    closer than min_stop_cost_multiple round trips (cost x price), so a stop cannot sit inside the fees
    it pays; the take-profit keeps its ratio to the stop (atr_take_profit_multiple / atr_stop_multiple)."""
    stop = settings.atr_stop_multiple * atr
    floor = settings.min_stop_cost_multiple * cost * price
    floored = floor > stop
    stop = max(stop, floor)
    return stop, stop * settings.atr_take_profit_multiple / settings.atr_stop_multiple, floored


# ---- the strategy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bracket:
    entry: ClientOrderId
    children: tuple[ClientOrderId, ...]  # stop-loss, take-profit


class TrinityStrategy(TargetPositionStrategy):
    """See the module docstring. Resources (the Strategist artifact) are loaded in `on_start`; a
    failure goes to `config_errors` (the backtest fails with a ConfigError) and the strategy stops."""

    def __init__(self, config: TrinityStrategyConfig) -> None:
        super().__init__(config)
        self.settings = config.settings()
        self.atr = AverageTrueRange(config.atr_period_bars)
        self.config_errors: list[str] = []
        self.policy: StrategistPolicy | None = None
        required = ("bar", "features") + ("forecast",) * config.use_oracle + ("regime",) * config.use_guardian
        self.join = TimestampJoin(required)
        self.action_type = DataType(Action, metadata={"instrument_id": config.instrument_id.value})
        self.proposal_type = DataType(Proposal, metadata={"instrument_id": config.instrument_id.value})
        self.history: list[Action] = []
        self.brackets: list[Bracket] = []
        self.decisions = 0
        self.orders_submitted = 0
        self.inference_skipped = 0
        self.outcomes: Counter[str] = Counter()  # why each bar traded or not (logged at stop)
        self.handler_secs = 0.0
        self.taker_fee = 0.0
        self._held_target = 0.0  # action level of the position we traded to
        self.bars_seen = 0
        self.vectors_seen = 0  # of the Strategist's feature set
        self._vector_deadline_bars = 0  # bars without one vector of our set before it is a config error
        self._median_index: int | None = None
        self._funding_rate = 0.0  # last settled rate of the instrument (0 until one is seen)
        self._bar_sigma: float | None = (
            None  # the Oracle's volatility forecast (per bar, at the gate horizon)
        )
        self._bar_secs = config.bar_type.spec.timedelta.total_seconds()
        self._trade_from_ns = trade_from_ns(config.trade_from)

    def indicators(self):
        return [self.atr]

    # --- lifecycle ---------------------------------------------------------------------------

    def on_start(self) -> None:
        super().on_start()  # instrument, ATR registration, bar subscription
        if self.instrument is None or self.plugin_errors:
            return
        config = self.config
        try:
            folder = Path(config.strategist_artifact)
            self.policy = StrategistPolicy(folder, target_return=config.target_return)
            interval = self.policy.manifest.window.interval
            if not str(config.bar_type.spec).startswith(nautilus_bar_spec(interval) + "-"):
                raise ValueError(
                    f"the Strategist was trained on {interval} bars, the strategy trades {config.bar_type}"
                )
        except Exception as exc:  # a resource resolved in on_start: report, log and stop
            message = (
                f"TrinityStrategy ({self.id}): cannot use the Strategist "
                f"'{config.strategist_artifact}': {exc}"
            )
            self.config_errors.append(message)
            self.log.error(message)
            stop_after_start(self, "strategist")
            return
        # A FeatureActor publishes from the first bar; replayed records may start once warm.
        self._vector_deadline_bars = self.policy.manifest.feature_set.warmup_bars + 1
        fee = config.taker_fee_rate
        self.taker_fee = float(self.instrument.taker_fee) if fee is None else fee
        instrument = config.instrument_id.value
        subscribe_bus(self, DataType(FeatureVector, metadata={"instrument_id": instrument}))
        if config.use_oracle:
            subscribe_bus(self, DataType(Forecast, metadata={"instrument_id": instrument}))
        if config.use_guardian:
            subscribe_bus(self, DataType(Regime, metadata={"instrument_id": instrument}))
        if config.funding_in_cost:  # what the data engine publishes (backtest: the catalog's funding rates)
            venue, symbol = config.instrument_id.venue, config.instrument_id.symbol
            self.msgbus.subscribe(topic=f"data.funding_rates.{venue}.{symbol}", handler=self._on_funding_rate)

    def on_bar(self, bar: Bar) -> None:  # the ATR is already updated with this bar
        self.bars_seen += 1
        if not self.vectors_seen and self.policy is not None and self.bars_seen > self._vector_deadline_bars:
            self._refuse_missing_features()
            return
        self._add("bar", bar.ts_event, bar)

    def on_data(self, data) -> None:
        if isinstance(data, FeatureVector):
            if self.policy is not None and data.feature_set_hash == self.policy.feature_set_hash:
                self.vectors_seen += 1
                self._add("features", data.ts_event, data)
        elif isinstance(data, Forecast) and self.config.use_oracle:
            self._add("forecast", data.ts_event, data)
        elif isinstance(data, Regime) and self.config.use_guardian:
            self._add("regime", data.ts_event, data)

    def _refuse_missing_features(self) -> None:
        config = self.config
        message = (
            f"TrinityStrategy ({self.id}): {self.bars_seen} bars of {config.instrument_id} arrived but no "
            f"FeatureVector of the Strategist's fitted feature set (hash "
            f'{self.policy.feature_set_hash[:12]}...): add to `actors` {{name = "features", params = '
            f'{{instrument_id = "{config.instrument_id}", bar_type = "{config.bar_type}", '
            f'artifact = "{config.strategist_artifact}"}}}}'
        )
        self.config_errors.append(message)
        self.log.error(message)
        stop_after_start(self, "strategist")

    # --- per bar -----------------------------------------------------------------------------

    def _add(self, kind: str, ts: int, item) -> None:
        if self.policy is None or self.plugin_errors:
            return
        started = time.perf_counter()
        for inputs, complete in self.join.add(kind, ts, item):
            self._guarded("decide", self._on_joined, inputs, complete)
        self.handler_secs += time.perf_counter() - started

    def _on_joined(self, inputs: BarInputs, complete: bool) -> None:
        policy = self.policy
        held = self._held_level()
        if self.brackets and held == 0:
            self._cancel_brackets(True)  # a stop or take-profit closed the position: no orphan child
        ready = self._observe(inputs)
        if complete:
            gates = self._gates(inputs, held)
            proposal, note = None, "DT context warming up" if not ready else ""
            if ready and (held != 0 or not self.config.skip_idle_inference or entry_could_pass(gates)):
                started = time.perf_counter()
                proposal = policy.act()
                self.msgbus.publish(
                    topic=INFERENCE_TOPIC, msg=InferenceTime("strategist", time.perf_counter() - started)
                )
                self._publish_proposal(inputs.ts, proposal)
            elif ready:
                self.inference_skipped += 1
                note = "DT skipped (flat, no entry can pass)"
            decision = decide(proposal, gates, note)
            self.last_decision = decision
            self.decisions += 1
            self.outcomes[outcome_kind(ready, proposal, decision)] += 1
            if decision.target_fraction is not None and inputs.ts < self._trade_from_ns:
                self.outcomes["before trade_from (warm-up)"] += 1
                self.outcomes["trade"] -= 1
            elif decision.target_fraction is not None and self.risk_state["mode"] in STOPPED_MODES:
                self.log.info(f"kill switch {self.risk_state['mode']} at {inputs.ts}: decision not executed")
            elif decision.target_fraction is not None:
                if self.has_pending_orders():
                    self.log.warning(f"order in flight at {inputs.ts}: decision not executed")
                else:
                    held = self._execute(decision, inputs.bar, gates, held)
            self._publish(inputs.ts, decision, held)
        if policy.awaiting_commit:
            policy.commit(policy.nearest_action(held))

    def _observe(self, inputs: BarInputs) -> bool:
        vector, bar = inputs.features, inputs.bar
        if vector is None or bar is None or not vector.warm:
            self.policy.reset()  # a bar without usable features breaks the context, as a gap does
            return False
        return self.policy.observe(vector.values, bar.close.as_double(), inputs.ts)

    def _gates(self, inputs: BarInputs, held: float) -> GateInputs:
        settings = self.settings
        median, horizon, clear_long, clear_short, funding = None, None, None, None, 0.0
        cost = 2 * self.taker_fee + settings.cost_margin_bps / 1e4
        self._bar_sigma = None
        if inputs.forecast is not None:
            forecast = inputs.forecast
            median, horizon = self._forecast_median(forecast)
            funding = self._funding_rate * horizon * self._bar_secs / FUNDING_PERIOD_SECS
            row, levels = forecast.values[horizon - 1], forecast.quantiles
            clear_long = clear_probability(levels, row, cost + funding)
            clear_short = 1.0 - clear_probability(levels, row, -(cost - funding))
            if settings.sizing == "vol_target":  # only vol-target sizing reads it (in _enter)
                self._bar_sigma = sigma_from_quantiles(levels, row, horizon)
        regime = inputs.regime
        return GateInputs(
            held=held,
            forecast_median=median,
            horizon_bars=horizon,
            cost=cost,
            regime_id=None if regime is None else regime.regime_id,
            risk_scale=1.0 if regime is None else float(regime.risk_scale),
            atr=self.atr.value if self.atr.initialized else None,
            confidence_threshold_pct=settings.confidence_threshold_pct,
            strong_confidence_pct=self.config.strong_confidence_pct,
            clear_long=clear_long,
            clear_short=clear_short,
            min_clear_probability=settings.min_clear_probability,
            funding=funding,
        )

    def _on_funding_rate(self, update) -> None:
        """The last settled funding rate: the estimate of the next ones (a long pays a positive rate)."""
        self._funding_rate = float(update.rate)

    def _forecast_median(self, forecast: Forecast) -> tuple[float, int]:
        if self._median_index is None:
            quantiles = forecast.quantiles
            index = int(np.abs(quantiles - 0.5).argmin()) if len(quantiles) else -1
            if index < 0 or abs(quantiles[index] - 0.5) > 1e-9:
                raise ValueError(f"Forecast {forecast.model_id} has no 0.5 quantile (quantiles {quantiles})")
            self._median_index = index
        horizon = min(self.settings.forecast_horizon_bars or forecast.horizon_bars, forecast.horizon_bars)
        return float(forecast.values[horizon - 1, self._median_index]), horizon

    def _held_level(self) -> float:
        quantity = self.signed_position_quantity()
        if quantity == 0:
            self._held_target = 0.0
        elif _sign(float(quantity)) != _sign(self._held_target):
            self._held_target = float(_sign(float(quantity)))  # a position we did not open: its sign
        return self._held_target

    # --- orders ------------------------------------------------------------------------------

    def has_pending_orders(self) -> bool:
        """An entry or close in flight (the open bracket children do not count)."""
        instrument_id = self.config.instrument_id
        if self.cache.orders_inflight_count(venue=None, instrument_id=instrument_id):
            return True
        children = {child for bracket in self.brackets for child in bracket.children}
        open_orders = self.cache.orders_open(venue=None, instrument_id=instrument_id, strategy_id=self.id)
        return any(order.client_order_id not in children for order in open_orders)

    def _execute(self, decision: Decision, bar: Bar, gates: GateInputs, held: float) -> float:
        """Trade from `held` to the decision's target; returns the action level now held."""
        target = decision.target_fraction
        tag = f"{decision.signal}|{decision.confidence_pct:.0f}|{decision.reasoning}"
        if held != 0:
            self._cancel_brackets(False)
            quantity = self.signed_position_quantity()
            if quantity != 0:
                self.submit_order(
                    self.order_factory.market(
                        instrument_id=self.config.instrument_id,
                        order_side=OrderSide.SELL if quantity > 0 else OrderSide.BUY,
                        quantity=self.instrument.make_qty(abs(quantity)),
                        reduce_only=True,
                        tags=[tag],
                    )
                )
                self.orders_submitted += 1
            held = self._held_target = 0.0
        if target != 0 and self._enter(target, bar, gates, tag):
            held = self._held_target = target
        return held

    def _enter(self, target: float, bar: Bar, gates: GateInputs, tag: str) -> bool:
        settings, instrument = self.settings, self.instrument
        close = bar.close.as_decimal()
        price = bar.close.as_double()
        stop, take, floored = bracket_distances(settings, gates.atr, gates.cost, price)
        limits = {
            "size_increment": instrument.size_increment.as_decimal(),
            "min_quantity": instrument.min_quantity.as_decimal() if instrument.min_quantity else Decimal(0),
            "max_quantity": instrument.max_quantity.as_decimal() if instrument.max_quantity else None,
        }
        if settings.sizing == "vol_target":
            sigma = self._bar_sigma
            leverage = (
                0.0
                if sigma is None
                else vol_target_leverage(
                    sigma,
                    settings.vol_target_annual_pct / 100.0,
                    bars_per_year(self._bar_secs),
                    settings.max_leverage,
                )
            )
            full = quantity_for_notional(
                equity=self.equity(close),
                price=close,
                notional_pct_of_equity=Decimal(repr(100.0 * leverage * min(gates.risk_scale, 1.0))),
                **limits,
            )
        else:
            full = risk_sized_quantity(
                self.equity(close),
                close,
                stop / settings.atr_stop_multiple,  # the ATR the stop distance implies (floored)
                risk_per_trade_pct=settings.risk_per_trade_pct,
                risk_scale=gates.risk_scale,
                atr_stop_multiple=settings.atr_stop_multiple,
                max_leverage=settings.max_leverage,
                **limits,
            )
        step = instrument.size_increment.as_decimal()
        scale = Decimal(repr(abs(target))) * Decimal(repr(self.risk_state["size_scale"]))  # the kill switches
        quantity = (full * scale / step).to_integral_value(rounding=ROUND_DOWN) * step
        if self.max_position is not None:
            quantity = min(quantity, self.max_position)
        if quantity <= 0:
            self.log.warning(f"entry {_direction(target)} at {bar.ts_event}: size rounds to 0 (equity/ATR)")
            return False
        side = 1.0 if target > 0 else -1.0
        stop_price = instrument.make_price(price - side * stop)
        take_price = instrument.make_price(price + side * take)
        signal, confidence = tag.split("|", 2)[:2]
        prefix, atr_text = f"{signal}|{confidence}|", f"{gates.atr:.1f}"
        if floored:
            atr_text += f" (floored at {settings.min_stop_cost_multiple:g} x cost)"
        orders = self.order_factory.bracket(
            instrument_id=self.config.instrument_id,
            order_side=OrderSide.BUY if target > 0 else OrderSide.SELL,
            quantity=instrument.make_qty(quantity),
            sl_trigger_price=stop_price,
            tp_price=take_price,
            entry_tags=[tag],
            sl_tags=[f"{prefix}stop-loss {settings.atr_stop_multiple:g} x ATR {atr_text} at {stop_price}"],
            tp_tags=[
                f"{prefix}take-profit {settings.atr_take_profit_multiple:g} x ATR {atr_text} at {take_price}"
            ],
        )
        entry, stop_loss, take_profit = orders.orders
        children = (stop_loss.client_order_id, take_profit.client_order_id)
        self.brackets.append(Bracket(entry.client_order_id, children))
        self.submit_order_list(orders)
        self.orders_submitted += 1
        return True

    def _cancel_brackets(self, only_filled_entries: bool) -> None:
        """Cancel the open children of our brackets (all, or those whose entry has filled). A bracket's
        children are linked one-updates-the-other: cancelling one cancels its sibling (the venue or
        Nautilus' order manager does it), so one cancel per bracket; a sibling still open is cancelled
        at the next sweep. Brackets whose children are all closed are forgotten."""
        kept = []
        for bracket in self.brackets:
            children = [self.cache.order(child) for child in bracket.children]
            open_children = [child for child in children if child is not None and child.is_open]
            if not open_children and all(child is None or child.is_closed for child in children):
                continue  # done: filled or cancelled
            kept.append(bracket)
            entry = self.cache.order(bracket.entry)
            if only_filled_entries and (entry is None or not entry.is_closed):
                continue  # not filled yet (e.g. the new leg of a flip): its children protect it
            if open_children and not any(child.is_pending_cancel for child in open_children):
                self.cancel_order(open_children[0])
        self.brackets = kept

    def _publish_proposal(self, ts: int, proposal: PolicyAction) -> None:
        """The Strategist's raw proposal, for the risk guard (model disagreement with the Oracle)."""
        probability = float(proposal.probabilities[proposal.action_index])
        self.publish_data(
            self.proposal_type,
            Proposal(
                ts_event=ts,
                ts_init=ts,
                instrument_id=self.config.instrument_id,
                model_id="strategist",
                target_position=float(proposal.target_position),
                probability=probability,
            ),
        )

    def _publish(self, ts: int, decision: Decision, held: float) -> None:
        target = held if decision.target_fraction is None else decision.target_fraction
        action = Action(
            ts_event=ts,
            ts_init=ts,
            instrument_id=self.config.instrument_id,
            target_position=float(target),
            signal=str(decision.signal),
            confidence_pct=decision.confidence_pct,
            reasoning=decision.reasoning,
        )
        self.publish_data(self.action_type, action)
        if self.config.keep_history:
            self.history.append(action)

    def on_stop(self) -> None:
        super().on_stop()
        if self.decisions:
            tally = ", ".join(f"{kind}: {count:,}" for kind, count in self.outcomes.most_common())
            if self.outcomes["trade"] == 0:  # a silent zero-trade run is the first thing a user asks about
                self.log.warning(f"Trinity made no trade in {self.decisions:,} decisions ({tally})")
            else:
                self.log.info(f"Trinity decisions: {tally}")
        if self.policy is not None:
            self.log.info(
                f"Trinity: {self.decisions} decisions, {self.policy.calls} Strategist calls "
                f"({self.policy.inference_secs:.3f} s), {self.inference_skipped} skipped, "
                f"{self.join.incomplete} incomplete bars, {self.join.stale_dropped} stale pieces dropped",
            )
