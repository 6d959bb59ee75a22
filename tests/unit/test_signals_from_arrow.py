"""The signal classes read Arrow tables column by column (`_records_from_arrow`): the same records as
Nautilus' generic per-row `from_dict`, for every class and field."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from nautilus_trader.model.identifiers import InstrumentId

from qa_engine.signals import Action
from qa_engine.signals import FeatureVector
from qa_engine.signals import Forecast
from qa_engine.signals import Proposal
from qa_engine.signals import Regime
from qa_engine.signals import pack


def records(cls) -> list:
    rng = np.random.default_rng(7)
    ids = [InstrumentId.from_str("BTCUSDT-PERP.BINANCE"), InstrumentId.from_str("ETHUSDT-PERP.BYBIT")]
    out = []
    for i in range(6):
        common = {"ts_event": 300 * i + 1, "ts_init": 300 * i + 2, "instrument_id": ids[i % 2]}
        if cls is FeatureVector:
            out.append(
                cls(**common, feature_set_hash=f"h{i % 3}", values_f8=pack(rng.normal(size=4)), warm=i > 2)
            )
        elif cls is Forecast:
            out.append(
                cls(
                    **common,
                    model_id="oracle",
                    horizon_bars=2,
                    quantiles_f8=pack([0.1, 0.5, 0.9]),
                    values_f8=pack(rng.normal(size=6)),
                )
            )
        elif cls is Regime:
            out.append(
                cls(
                    **common,
                    model_id="g",
                    regime_id=i % 3,
                    probabilities_f8=pack(rng.random(3)),
                    risk_scale=float(rng.random()),
                )
            )
        elif cls is Action:
            out.append(
                cls(
                    **common,
                    target_position=float(i % 3 - 1),
                    signal="HOLD",
                    confidence_pct=61.5,
                    reasoning=f"why {i}",
                )
            )
        else:
            out.append(cls(**common, model_id="strategist", target_position=-1.0, probability=0.7))
    return out


@pytest.mark.parametrize("cls", [FeatureVector, Forecast, Regime, Action, Proposal])
def test_columnar_from_arrow_equals_the_generic_per_row_decoding(cls):
    table = pa.Table.from_batches([record.to_arrow() for record in records(cls)])
    fast = cls.from_arrow(table)
    generic = [cls.from_dict(row) for row in table.to_pylist()]
    assert len(fast) == len(generic) == 6
    for a, b in zip(fast, generic, strict=True):
        assert type(a) is cls and isinstance(a.instrument_id, InstrumentId)
        assert a.to_dict() == b.to_dict()
        assert (a.ts_event, a.ts_init) == (b.ts_event, b.ts_init)
