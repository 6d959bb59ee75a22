"""VolatilityRegimeActor: the naive regime, realised-volatility quartiles, published as Regime.

The Guardian's reports compare its regimes with this baseline (qa_engine/models/guardian/baseline.py):
on BTCUSDT 5m and 1h the quartiles of realised volatility separate future volatility better and are far
more stable between refits. Issue 18 asks that the stronger of the two scale the Trinity's risk, so this
actor publishes the same `Regime` message the GuardianActor does (DataType(Regime, metadata=
{"instrument_id": ...}), stamped with the bar's ts_event): a strategy reading regimes (TrinityStrategy
with use_guardian = true) takes either, unchanged.

Per bar t (all causal): the realised volatility is the standard deviation of the last `window_bars`
one-bar log returns up to t; its quartile edges are the 25/50/75 % quantiles of the realised
volatilities of the previous `edges_lookback_bars` bars (the bar itself included), published once
`min_history_bars` of them exist; regime 0 is the calmest quartile, 3 the wildest; risk_scale =
`risk_scales[regime]`. A gap in the bars (a step longer than the bar interval) restarts the returns.
Written by hand: a rolling standard deviation and a quantile (numpy), no library offers this as an actor.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.config import PositiveInt
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import DataType
from nautilus_trader.model.identifiers import InstrumentId

from qa_engine.signals import Regime
from qa_engine.signals import pack

QUARTILES = np.array([0.25, 0.5, 0.75])


class VolatilityRegimeActorConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    window_bars: PositiveInt = 24  # returns in one realised volatility (one day of 1h bars)
    edges_lookback_bars: PositiveInt = (
        2160  # realised volatilities the quartile edges are taken from (90 days of 1h)
    )
    min_history_bars: PositiveInt = 240  # no regime before this many realised volatilities exist
    risk_scales: tuple[float, float, float, float] = (1.0, 1.0, 0.75, 0.5)  # per quartile, calm -> wild
    model_id: str = "rv-quartiles"
    keep_history: bool = False  # keep (ts_event, regime, volatility) of every published Regime (tests)

    def __post_init__(self) -> None:
        if self.bar_type.instrument_id != self.instrument_id:
            raise ValueError(f"bar_type {self.bar_type} is not a bar type of {self.instrument_id}")
        if len(self.risk_scales) != 4 or not all(0.0 <= scale <= 1.0 for scale in self.risk_scales):
            raise ValueError(f"risk_scales must be four values in [0, 1], got {self.risk_scales}")
        if self.window_bars < 2:
            raise ValueError(f"window_bars must be >= 2, got {self.window_bars}")


class VolatilityRegimeActor(Actor):
    def __init__(self, config: VolatilityRegimeActorConfig) -> None:
        super().__init__(config)
        self.output_type = DataType(Regime, metadata={"instrument_id": config.instrument_id.value})
        self._step_ns = int(config.bar_type.spec.timedelta.total_seconds() * 1e9)
        self._returns: deque[float] = deque(maxlen=config.window_bars)
        self._history: deque[float] = deque(maxlen=config.edges_lookback_bars)
        self._last_close: float | None = None
        self._last_ts: int | None = None
        self.published = 0
        self.history: list[tuple[int, int, float]] = []

    def on_start(self) -> None:
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        close = bar.close.as_double()
        if self._last_ts is not None and bar.ts_event - self._last_ts != self._step_ns:
            self._returns.clear()  # a gap: returns across it are not one-bar returns
        elif self._last_close is not None and close > 0 and self._last_close > 0:
            self._returns.append(float(np.log(close / self._last_close)))
        self._last_close, self._last_ts = close, bar.ts_event
        config = self.config
        if len(self._returns) < config.window_bars:
            return
        volatility = float(np.std(self._returns, ddof=1))
        self._history.append(volatility)
        if len(self._history) < config.min_history_bars:
            return
        edges = np.quantile(np.fromiter(self._history, dtype=np.float64), QUARTILES)
        regime = int(np.searchsorted(edges, volatility, side="right"))
        probabilities = np.zeros(4)
        probabilities[regime] = 1.0
        self.publish_data(
            self.output_type,
            Regime(
                ts_event=bar.ts_event,
                ts_init=bar.ts_init,
                instrument_id=config.instrument_id,
                model_id=config.model_id,
                regime_id=regime,
                probabilities_f8=pack(probabilities),
                risk_scale=float(config.risk_scales[regime]),
            ),
        )
        self.published += 1
        if config.keep_history:
            self.history.append((bar.ts_event, regime, volatility))
