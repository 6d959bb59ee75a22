"""The plug-in interface for bar-driven strategies: decide a target position, the base trades to it.

Write a strategy by subclassing TargetPositionStrategy (and its config) and implementing two hooks:

    def indicators(self) -> list[Indicator]      # Nautilus indicators, updated from the bars
    def decide(self, bar: Bar) -> Decision       # called once every indicator is warm

Everything else has a safe default: sizing as a share of equity (rounded down to the lot step, never
over the venue's maximum) when the target changes, no re-sizing while it stays the same, one order at
a time (no new order while one is in flight), and the Decision's signal, confidence and reasoning
tagged onto the order (the run's fills.csv shows them). `confidence_threshold_pct` ignores decisions
below it.

Margin, as the venue checks it: an order that adds exposure beyond what the free margin covers at the
account's leverage (initial margin = notional / leverage) is denied before it is sent, like Bybit's
retCode 110007; the strategy receives an OrderDenied (`on_order_denied`), the run's report counts it.
Nautilus' own RiskEngine does no margin check for margin accounts (qa_engine/risk/margin.py).

The boundary: an exception raised by `decide` or `indicators` is caught, logged with the plug-in's
name, recorded in `plugin_errors`, and the strategy stops; the backtest then fails with a clear
PluginError naming the plug-in instead of a traceback from inside the engine.

Volatility targeting (`sizing = "vol_target"`, any strategy): the notional of a position becomes
notional_pct_of_equity/100 x |fraction| x min(max_leverage, sigma_target_per_bar / sigma_bar) x equity,
with sigma_target_per_bar = vol_target_annual_pct/100 / sqrt(bars per year of the bar type, 365 days).
sigma_bar is the standard deviation of one-bar log returns: `vol_source = "realized"` takes the last
`vol_lookback_bars` returns of the strategy's own bars (no position is taken before that many returns are
in), `"forecast"` the band of the Oracle's latest Forecast for the instrument (qa_engine.risk.sizing.
sigma_from_quantiles), realized until one arrives. The wanted size changes every bar: the position is
re-sized only when it differs from the held one by more than `rebalance_band_pct` % (fees). The risk
guard's size_scale and max_position apply on top. `sizing = "fixed"` (the default) is the plain share of
equity above.
"""

from __future__ import annotations

import json
import math
from collections import deque
from datetime import UTC
from datetime import datetime
from decimal import Decimal

from nautilus_trader.config import NonNegativeFloat
from nautilus_trader.config import PositiveFloat
from nautilus_trader.config import StrategyConfig
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.indicators import Indicator
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import DataType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import PriceType
from nautilus_trader.model.events import OrderDenied
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from qa_engine.lifecycle import stop_after_start
from qa_engine.risk.kill_switches import LIMITS_CACHE_KEY as RISK_LIMITS_CACHE_KEY
from qa_engine.risk.kill_switches import STATE_CACHE_KEY as RISK_STATE_CACHE_KEY
from qa_engine.risk.kill_switches import STATE_TOPIC as RISK_STATE_TOPIC
from qa_engine.risk.margin import check_initial_margin
from qa_engine.risk.sizing import bars_per_year
from qa_engine.risk.sizing import outside_band
from qa_engine.risk.sizing import quantity_for_notional
from qa_engine.risk.sizing import realized_sigma
from qa_engine.risk.sizing import sigma_from_quantiles
from qa_engine.risk.sizing import vol_target_leverage
from qa_engine.signals import Decision
from qa_engine.signals import Forecast


def trade_from_ns(text: str | None) -> int:
    """`trade_from` as UNIX nanoseconds (0 when not set); a time without a zone is UTC."""
    if text is None:
        return 0
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"trade_from must be an ISO time like 2026-01-01T00:00:00Z, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000


STOPPED_MODES = ("reducing", "halted")  # the risk guard's modes in which no new position is taken
SIZINGS = ("fixed", "vol_target")
VOL_SOURCES = ("realized", "forecast")


class TargetPositionStrategyConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    notional_pct_of_equity: PositiveFloat = 100.0  # notional of a full (fraction 1.0) position
    confidence_threshold_pct: NonNegativeFloat = 0.0  # decisions below it are ignored
    # Sizing (module docstring): "fixed" share of equity, or "vol_target" (the fields below).
    sizing: str = "fixed"
    vol_target_annual_pct: float = 20.0  # annualised volatility of the position's returns aimed at
    vol_source: str = "realized"  # "realized" (own bars) or "forecast" (the Oracle's Forecast band)
    vol_lookback_bars: int = 48  # one-bar log returns in the realized sigma
    max_leverage: float = 3.0  # cap of the vol-target notional, as a multiple of equity
    rebalance_band_pct: float = 25.0  # re-size only when the wanted size differs by more than this
    # ISO time (e.g. "2026-01-01T00:00:00Z"): bars before it only warm up the indicators; no decision is
    # acted on before it (walk-forward tests trade their test range only, warmed up on the bars before).
    trade_from: str | None = None

    def __post_init__(self) -> None:
        if self.bar_type.instrument_id != self.instrument_id:
            raise ValueError(f"bar_type {self.bar_type} is not a bar of {self.instrument_id}")
        if self.confidence_threshold_pct > 100:
            raise ValueError(f"confidence_threshold_pct must be <= 100, got {self.confidence_threshold_pct}")
        if self.sizing not in SIZINGS:
            raise ValueError(f"sizing must be one of {', '.join(SIZINGS)}, got '{self.sizing}'")
        if self.vol_source not in VOL_SOURCES:
            raise ValueError(f"vol_source must be one of {', '.join(VOL_SOURCES)}, got '{self.vol_source}'")
        for field in ("vol_target_annual_pct", "max_leverage"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{field} must be a positive number, got {value}")
        if not (math.isfinite(self.rebalance_band_pct) and 0 <= self.rebalance_band_pct < 100):
            raise ValueError(f"rebalance_band_pct must be in [0, 100), got {self.rebalance_band_pct}")
        trade_from_ns(self.trade_from)  # a malformed time fails here, naming the field
        if self.vol_lookback_bars < 2:
            raise ValueError(f"vol_lookback_bars must be >= 2, got {self.vol_lookback_bars}")
        if self.sizing == "vol_target" and not self.bar_type.spec.is_time_aggregated():
            raise ValueError(
                f"sizing 'vol_target' needs time bars (bars per year), bar_type is {self.bar_type}"
            )


class TargetPositionStrategy(Strategy):
    """Base of the bar strategies: subclasses implement `indicators()` and `decide(bar)`."""

    def __init__(self, config: TargetPositionStrategyConfig) -> None:
        super().__init__(config)
        self.instrument = None
        self.plugin_errors: list[str] = []
        self._indicators: list[Indicator] = []
        self.last_decision: Decision | None = None
        self._held_fraction: float | None = None  # target fraction of the position now held
        self._warm = False  # every indicator initialized
        self.margin_denials: list[str] = []
        self.risk_state: dict = {"mode": "active", "size_scale": 1.0, "fired": []}  # actors/risk_guard.py
        self.max_position: Decimal | None = None  # [risk.limits] of the run config, via the risk guard
        self.risk_per_trade_pct: float | None = None
        self.max_notional_per_order: Decimal | None = None
        self._trade_from_ns = trade_from_ns(getattr(config, "trade_from", None))
        # vol targeting (sizing = "vol_target"): closes for the realized sigma, the Forecast's sigma.
        # Read with defaults: a strategy with a config of its own (trinity) sizes "fixed".
        self.vol_target = getattr(config, "sizing", "fixed") == "vol_target"
        self._vol_lookback = getattr(config, "vol_lookback_bars", 48)
        self._closes: deque[float] = deque(maxlen=self._vol_lookback + 1)
        self.forecast_sigma: float | None = None
        self._fallback_logged = False
        self.last_sigma: float | None = None  # sigma_bar of the last sizing
        self.last_vol_leverage: float | None = None  # its min(max_leverage, target / sigma_bar)
        self._bars_per_year = (
            bars_per_year(config.bar_type.spec.timedelta.total_seconds())
            if config.bar_type.spec.is_time_aggregated()
            else None
        )

    # --- hooks for plug-in authors -------------------------------------------------------------

    def indicators(self) -> list[Indicator]:
        """Nautilus indicators to update from the strategy's bars (default: none)."""
        return []

    def decide(self, bar: Bar) -> Decision:
        raise NotImplementedError(f"{type(self).__name__} must implement decide(bar) -> Decision")

    # --- lifecycle -----------------------------------------------------------------------------

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        if self.instrument is None:
            self.log.error(f"instrument {self.config.instrument_id} not in the cache: stopping")
            stop_after_start(self, "plugin")
            return
        self._indicators = self._guarded("indicators", self.indicators) or []
        self._warm = False
        for indicator in self._indicators:
            self.register_indicator_for_bars(self.config.bar_type, indicator)
        cached = self.cache.get(RISK_STATE_CACHE_KEY)
        if cached:
            self.risk_state = json.loads(cached)
        limits = json.loads(self.cache.get(RISK_LIMITS_CACHE_KEY) or b"{}")
        max_position = (limits.get("max_position") or {}).get(self.config.instrument_id.value)
        self.max_position = Decimal(max_position) if max_position is not None else None
        self.risk_per_trade_pct = limits.get("risk_per_trade_pct")
        max_notional = (limits.get("max_notional_per_order") or {}).get(self.config.instrument_id.value)
        self.max_notional_per_order = Decimal(max_notional) if max_notional is not None else None
        self.msgbus.subscribe(topic=RISK_STATE_TOPIC, handler=self.on_risk_state)
        if self.vol_target and self.config.vol_source == "forecast":
            # Own handler, not on_data: subclasses (ml_signal, trinity) keep their on_data.
            forecasts = DataType(Forecast, metadata={"instrument_id": self.config.instrument_id.value})
            self.msgbus.subscribe(topic=f"data.{forecasts.topic}", handler=self.on_forecast)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        if self.plugin_errors:
            return
        vol_target = self.vol_target
        if vol_target:
            self._closes.append(float(bar.close))
        if not self._warm:  # indicators stay initialized once they are (until a reset and restart)
            if not all(indicator.initialized for indicator in self._indicators):
                return
            self._warm = True
        if bar.ts_event < self._trade_from_ns:
            return
        if self.has_pending_orders() or self.risk_state["mode"] in STOPPED_MODES:
            return
        decision = self._guarded("decide", self.decide, bar)
        if decision is None:
            return
        self.last_decision = decision
        if decision.target_fraction is None or decision.confidence_pct < self.config.confidence_threshold_pct:
            return
        current = self.signed_position_quantity()
        same_target = decision.target_fraction == self._held_fraction and (
            current != 0 or decision.target_fraction == 0
        )
        if not vol_target:
            if same_target:
                return  # same target as the position held: no re-sizing on every bar
            target = self.target_quantity(bar.close.as_decimal(), decision.target_fraction)
            self._held_fraction = decision.target_fraction
            self.trade_towards(target, current, decision)
            return
        if same_target and decision.target_fraction == 0:
            return
        if decision.target_fraction != 0 and self.vol_scale() is None:
            return  # no sigma yet (fewer than vol_lookback_bars returns): no position
        target = self.target_quantity(bar.close.as_decimal(), decision.target_fraction)
        if same_target and not outside_band(target, current, self.config.rebalance_band_pct):
            return  # within the rebalance band: keep the position (fees)
        self._held_fraction = decision.target_fraction
        self.trade_towards(target, current, decision)

    def on_stop(self) -> None:
        if self.instrument is not None:
            self.cancel_all_orders(self.config.instrument_id)

    def on_risk_state(self, state: dict) -> None:
        """The account's kill switches changed mode (actors/risk_guard.py): reducing / halted close this
        strategy's position and cancel its orders; back to active, the next decision sizes afresh."""
        previous, self.risk_state = self.risk_state["mode"], state
        if self.instrument is None or state["mode"] == previous:
            return
        self._held_fraction = None
        if state["mode"] in STOPPED_MODES:
            self.log.warning(
                f"risk guard {state['mode']} ({', '.join(state['fired'])}): closing the position"
            )
            self.cancel_all_orders(self.config.instrument_id)
            self.close_all_positions(self.config.instrument_id, reduce_only=True)

    def on_forecast(self, forecast: Forecast) -> None:
        """The Oracle's Forecast for the instrument: the per-bar sigma its band implies at the horizon."""
        if forecast.instrument_id != self.config.instrument_id or forecast.horizon_bars < 1:
            return
        sigma = sigma_from_quantiles(forecast.quantiles, forecast.values[-1], forecast.horizon_bars)
        if sigma is not None:
            self.forecast_sigma = sigma

    # --- helpers -------------------------------------------------------------------------------

    def sigma_bar(self) -> float | None:
        """Standard deviation of one-bar log returns for vol targeting: the Forecast's while one has come
        (vol_source "forecast"), else realized over the last vol_lookback_bars returns (None before)."""
        if self.config.vol_source == "forecast":
            if self.forecast_sigma is not None:
                return self.forecast_sigma
            if not self._fallback_logged:
                self._fallback_logged = True
                self.log.warning(
                    f"vol_source 'forecast': no Forecast for {self.config.instrument_id} yet, "
                    "sizing on the realized sigma until one arrives"
                )
        if len(self._closes) <= self._vol_lookback:
            return None
        return realized_sigma(self._closes)

    def vol_scale(self) -> float | None:
        """min(max_leverage, sigma_target_per_bar / sigma_bar); 1.0 with fixed sizing; None without sigma."""
        if not self.vol_target:
            return 1.0
        sigma = self.sigma_bar()
        if sigma is None:
            return None
        self.last_sigma = sigma
        self.last_vol_leverage = vol_target_leverage(
            sigma,
            self.config.vol_target_annual_pct / 100,
            self._bars_per_year,
            self.config.max_leverage,
        )
        return self.last_vol_leverage

    def _guarded(self, hook: str, function, *args):
        try:
            return function(*args)
        except Exception as exc:  # the plug-in boundary: user code must not crash the engine
            message = f"plug-in {type(self).__name__} ({self.id}) raised in {hook}(): {exc!r}"
            self.plugin_errors.append(message)
            self.log.error(message)
            stop_after_start(self, "plugin")
            return None

    def has_pending_orders(self) -> bool:
        """An order sent but not yet filled: wait for it instead of sending another."""
        # Positional (venue, instrument_id): the cheaper call of these per-bar Cython queries.
        instrument_id = self.config.instrument_id
        return bool(
            self.cache.orders_inflight_count(None, instrument_id)
            or self.cache.orders_open_count(None, instrument_id),
        )

    def signed_position_quantity(self) -> Decimal:
        return self.portfolio.net_position(self.config.instrument_id)

    def equity(self, price: Decimal) -> Decimal:
        account = self.portfolio.account(self.config.instrument_id.venue)
        balance = account.balance_total(self.instrument.settlement_currency).as_decimal()
        # venue=None: the (venue, instrument) cache queries intersect sets of every order ever placed.
        positions = self.cache.positions_open(venue=None, instrument_id=self.config.instrument_id)
        multiplier = self.instrument.multiplier.as_decimal()
        unrealised = sum(
            ((price - Decimal(str(p.avg_px_open))) * p.signed_decimal_qty() * multiplier for p in positions),
            Decimal(0),
        )
        return balance + unrealised

    def target_quantity(self, price: Decimal, fraction: float) -> Decimal:
        notional_pct = (
            Decimal(str(self.config.notional_pct_of_equity))
            * Decimal(str(abs(fraction)))
            * Decimal(str(self.risk_state["size_scale"]))
        )
        if self.vol_target and fraction != 0:
            scale = self.vol_scale()
            notional_pct *= Decimal(str(scale)) if scale is not None else Decimal(0)
        size = quantity_for_notional(
            equity=self.equity(price),
            price=price,
            notional_pct_of_equity=notional_pct,
            size_increment=self.instrument.size_increment.as_decimal(),
            min_quantity=self.instrument.min_quantity.as_decimal()
            if self.instrument.min_quantity
            else Decimal(0),
            max_quantity=self.instrument.max_quantity.as_decimal() if self.instrument.max_quantity else None,
        )
        if self.max_position is not None:
            size = min(size, self.max_position)
        return size if fraction >= 0 else -size

    def trade_towards(self, target: Decimal, current: Decimal, decision: Decision) -> None:
        delta = target - current
        last_bar = self.cache.bar(self.config.bar_type)
        if self.risk_per_trade_pct is not None and last_bar is not None:
            delta = self._capped_order(delta, last_bar.close.as_decimal())
        if delta == 0:
            return
        order = self.order_factory.market(
            instrument_id=self.config.instrument_id,
            order_side=OrderSide.BUY if delta > 0 else OrderSide.SELL,
            quantity=self.instrument.make_qty(abs(delta)),
            tags=[f"{decision.signal}|{decision.confidence_pct:.0f}|{decision.reasoning}"],
        )
        denial = self.margin_denial(delta, last_bar.close.as_decimal()) if last_bar is not None else None
        if denial is None and self.max_notional_per_order is not None and last_bar is not None:
            notional = abs(delta) * last_bar.close.as_decimal() * self.instrument.multiplier.as_decimal()
            if notional > self.max_notional_per_order:
                denial = f"NOTIONAL_EXCEEDS_MAX_PER_ORDER: max {self.max_notional_per_order}, {notional:.2f}"
        if denial is not None:
            self.deny(order, denial)
            self._held_fraction = None  # try again on the next decision
            return
        self.submit_order(order)

    def _capped_order(self, delta: Decimal, price: Decimal) -> Decimal:
        """`delta` with its notional capped at risk_per_trade_pct of equity (lot step, rounded down)."""
        largest = quantity_for_notional(
            equity=self.equity(price),
            price=price,
            notional_pct_of_equity=Decimal(str(self.risk_per_trade_pct)),
            size_increment=self.instrument.size_increment.as_decimal(),
        )
        return max(-largest, min(largest, delta))

    def margin_denial(self, order_signed_quantity: Decimal, price: Decimal) -> str | None:
        """The venue's initial-margin check of an order of `order_signed_quantity` at `price`: the
        denial reason, or None when it passes (orders that do not add exposure always pass)."""
        venue = self.config.instrument_id.venue
        account = self.portfolio.account(venue)
        if account is None or not account.is_margin_account:
            return None
        leverage = Decimal(str(account.leverage(self.config.instrument_id) or account.default_leverage))
        own = self.config.instrument_id.value
        exposures = {own: (self.signed_position_quantity(), price * self.instrument.multiplier.as_decimal())}
        equity = self.equity(price)
        for position in self.cache.positions_open(venue=venue):
            other = position.instrument_id
            if other.value == own:
                continue
            instrument = self.cache.instrument(other)
            last = self.cache.price(other, PriceType.LAST) or position.avg_px_open
            unit = Decimal(str(last)) * instrument.multiplier.as_decimal()
            held, _ = exposures.get(other.value, (Decimal(0), unit))
            exposures[other.value] = (held + position.signed_decimal_qty(), unit)
            unrealised = self.portfolio.unrealized_pnl(other)
            equity += unrealised.as_decimal() if unrealised is not None else Decimal(0)
        check = check_initial_margin(
            equity=equity,
            leverage=leverage,
            exposures=exposures,
            instrument_id=own,
            order_signed_quantity=order_signed_quantity,
        )
        if check is None or not check.denied:
            return None
        return check.reason(self.instrument.settlement_currency.code)

    def deny(self, order, reason: str) -> None:
        """Deny `order` before it is sent, as Nautilus' own Strategy._deny_order does (cdef, not callable
        from Python): the order is cached, moves to DENIED, and OrderDenied goes out on the bus."""
        self.margin_denials.append(reason)
        self.log.warning(f"order {order.client_order_id} denied: {reason}")
        if not self.cache.order_exists(order.client_order_id):
            self.cache.add_order(order)
        event = OrderDenied(
            trader_id=order.trader_id,
            strategy_id=order.strategy_id,
            instrument_id=order.instrument_id,
            client_order_id=order.client_order_id,
            reason=reason,
            event_id=UUID4(),
            ts_init=self.clock.timestamp_ns(),
        )
        order.apply(event)
        self.cache.update_order(order)
        self.msgbus.publish(topic=f"events.order.{order.strategy_id}", msg=event)
