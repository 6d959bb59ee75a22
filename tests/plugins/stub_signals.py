"""Stand-ins for the Oracle and Guardian in strategy tests: a Forecast and a Regime per bar, stamped
with the bar's close, from fixed patterns (not models, and they say nothing about the market).

Bars are counted from the first one the actor sees; bar i belongs to block i // block_bars. The
Forecast's median (every horizon step) is `median_bps[block % len]` basis points, the 0.1 / 0.9
quantiles 20 bp below / above it; the Regime's risk_scale is `risk_scales[block % len]` and its
regime_id the index into that list. `stub_pattern` reproduces both for a test's expectations.
"""

from __future__ import annotations

import numpy as np
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.config import PositiveInt
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import DataType
from nautilus_trader.model.identifiers import InstrumentId

from qa_engine.signals import Forecast
from qa_engine.signals import Regime
from qa_engine.signals import pack


class StubSignalsActorConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    block_bars: PositiveInt = 48
    median_bps: tuple[float, ...] = (30.0, -30.0, 5.0)
    risk_scales: tuple[float, ...] = (1.0, 1.0, 0.5, 0.0)
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    horizon_bars: PositiveInt = 12


def stub_pattern(config: StubSignalsActorConfig, bar_index: int) -> tuple[float, int, float]:
    """(forecast median as a log return, regime id, risk scale) of the bar_index-th bar."""
    block = bar_index // config.block_bars
    regime = block % len(config.risk_scales)
    return config.median_bps[block % len(config.median_bps)] / 1e4, regime, config.risk_scales[regime]


def stub_forecast(config: StubSignalsActorConfig, ts: int, median: float) -> Forecast:
    offsets = np.array([-0.002 if q < 0.5 else 0.002 if q > 0.5 else 0.0 for q in config.quantiles])
    values = np.tile(median + offsets, (config.horizon_bars, 1))  # (H, Q)
    return Forecast(
        ts_event=ts,
        ts_init=ts,
        instrument_id=config.instrument_id,
        model_id="stub",
        horizon_bars=config.horizon_bars,
        quantiles_f8=pack(np.asarray(config.quantiles)),
        values_f8=pack(values),
    )


def stub_regime(config: StubSignalsActorConfig, ts: int, regime: int, risk_scale: float) -> Regime:
    probabilities = np.eye(len(config.risk_scales))[regime]
    return Regime(
        ts_event=ts,
        ts_init=ts,
        instrument_id=config.instrument_id,
        model_id="stub",
        regime_id=regime,
        probabilities_f8=pack(probabilities),
        risk_scale=risk_scale,
    )


class StubSignalsActor(Actor):
    def __init__(self, config: StubSignalsActorConfig) -> None:
        super().__init__(config)
        metadata = {"instrument_id": config.instrument_id.value}
        self.forecast_type = DataType(Forecast, metadata=metadata)
        self.regime_type = DataType(Regime, metadata=metadata)
        self.bars = 0

    def on_start(self) -> None:
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        median, regime, risk_scale = stub_pattern(self.config, self.bars)
        self.bars += 1
        self.publish_data(self.forecast_type, stub_forecast(self.config, bar.ts_event, median))
        self.publish_data(self.regime_type, stub_regime(self.config, bar.ts_event, regime, risk_scale))

    def on_stop(self) -> None:
        """Nothing to release."""
