"""What the trading components say to each other: decisions, and the custom Data types published
on the message bus and stored in the catalog (FeatureVector, Forecast, Regime, Action, Proposal).

A decision is a target position as a fraction of the strategy's maximum position (-1 full short,
0 flat, +1 full long; None keeps what is held), with the signal, the confidence and a readable
reasoning string that is recorded with the order it causes.

The message types use Nautilus' @customdataclass, which maps field annotations to Arrow types by
their runtime names: this module therefore does not use `from __future__ import annotations`, and
vectors travel as float64 bytes (Arrow binary) with a decoding property.
"""

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from nautilus_trader.core.data import Data
from nautilus_trader.model.custom import customdataclass
from nautilus_trader.model.identifiers import InstrumentId

# Model components publish one `InferenceTime` per model call on this bus topic (plain Python objects, not
# Data): the operations actor turns them into the `qa_model_inference_seconds` histogram.
INFERENCE_TOPIC = "qa.inference"


@dataclass(frozen=True)
class InferenceTime:
    model_id: str
    secs: float


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


def subscribe_bus(component, data_type) -> None:
    """Deliver the `data_type` messages published on the message bus (by our actors, or replayed from
    the catalog by the backtest data engine) to `component.on_data`.

    Nautilus 1.231's `subscribe_data(data_type)` subscribes the same topic (`data.<DataType.topic>`) but,
    given neither a client id nor an instrument id, logs an error, because it would also ask a data
    client for the data. Our signal messages come from no data client, so only the bus is subscribed.
    """
    component.msgbus.subscribe(topic=f"data.{data_type.topic}", handler=component.handle_data)


def hold(reasoning: str) -> Decision:
    """Keep whatever position is held."""
    return Decision(target_fraction=None, signal=Signal.HOLD, confidence_pct=0.0, reasoning=reasoning)


def pack(values) -> bytes:
    """A float vector or matrix as little-endian float64 bytes (row-major)."""
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


def unpack(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f8")


def _records_from_arrow(cls, table) -> list:
    """A table of `cls` records -> the records, column by column: what Nautilus' generic
    `from_arrow` (`[cls.from_dict(row) for row in table.to_pylist()]`) gives for these classes, whose
    fields are all plain values (no dict annotations) but `instrument_id` (one InstrumentId per distinct
    string), at a fraction of its per-row cost (a replayed 5m year is ~100k records)."""
    names = [name for name in table.column_names if name not in ("type", "data_type")]
    columns = [table.column(name).to_pylist() for name in names]
    if "instrument_id" in names:
        index = names.index("instrument_id")
        ids = {value: InstrumentId.from_str(value) for value in set(columns[index])}
        columns[index] = [ids[value] for value in columns[index]]
    return [cls(**dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]


@customdataclass
class FeatureVector(Data):
    """Streaming features of one bar, in the feature set's order; `warm` is False during warm-up."""

    from_arrow = classmethod(_records_from_arrow)

    instrument_id: InstrumentId = InstrumentId.from_str("NONE.NONE")
    feature_set_hash: str = ""
    values_f8: bytes = b""
    warm: bool = False

    @property
    def values(self) -> np.ndarray:
        return unpack(self.values_f8)


@customdataclass
class Forecast(Data):
    """Quantile forecast of forward log returns: a (horizon_bars, len(quantiles)) matrix."""

    from_arrow = classmethod(_records_from_arrow)

    instrument_id: InstrumentId = InstrumentId.from_str("NONE.NONE")
    model_id: str = ""
    horizon_bars: int = 0
    quantiles_f8: bytes = b""
    values_f8: bytes = b""

    @property
    def quantiles(self) -> np.ndarray:
        return unpack(self.quantiles_f8)

    @property
    def values(self) -> np.ndarray:
        return unpack(self.values_f8).reshape(self.horizon_bars, -1)  # (horizon, quantiles)


@customdataclass
class Regime(Data):
    """Market regime from the Guardian: id, probabilities per regime, and the risk scale in [0, 1]."""

    from_arrow = classmethod(_records_from_arrow)

    instrument_id: InstrumentId = InstrumentId.from_str("NONE.NONE")
    model_id: str = ""
    regime_id: int = -1
    probabilities_f8: bytes = b""
    risk_scale: float = 0.0

    @property
    def probabilities(self) -> np.ndarray:
        return unpack(self.probabilities_f8)


@customdataclass
class Action(Data):
    """A strategy's decision as a message: target position fraction, signal, confidence, reasoning."""

    from_arrow = classmethod(_records_from_arrow)

    instrument_id: InstrumentId = InstrumentId.from_str("NONE.NONE")
    target_position: float = 0.0
    signal: str = "HOLD"
    confidence_pct: float = 0.0
    reasoning: str = ""


@customdataclass
class Proposal(Data):
    """The Strategist's own proposal at a bar, before the gates: its target position and probability.
    The risk guard compares its direction with the Oracle's (the model-disagreement kill switch)."""

    from_arrow = classmethod(_records_from_arrow)

    instrument_id: InstrumentId = InstrumentId.from_str("NONE.NONE")
    model_id: str = ""
    target_position: float = 0.0
    probability: float = 0.0
