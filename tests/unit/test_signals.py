import numpy as np
import pytest
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from qa_engine.signals import Action
from qa_engine.signals import Decision
from qa_engine.signals import FeatureVector
from qa_engine.signals import Forecast
from qa_engine.signals import Regime
from qa_engine.signals import Signal
from qa_engine.signals import pack

BTC = InstrumentId.from_str("BTCUSDT-LINEAR.BYBIT")


def test_every_message_type_round_trips_through_the_catalog(tmp_path):
    catalog = ParquetDataCatalog(str(tmp_path))
    messages = {
        FeatureVector: [FeatureVector(1, 1, BTC, "abc", pack([1.5, np.nan, -2.0]), True)],
        Forecast: [Forecast(2, 2, BTC, "oracle-1", 2, pack([0.1, 0.5, 0.9]), pack(np.arange(6.0)))],
        Regime: [Regime(3, 3, BTC, "guardian-1", 2, pack([0.1, 0.2, 0.6, 0.1]), 0.25)],
        Action: [Action(4, 4, BTC, -0.5, "SELL", 70.0, "forecast below fees")],
    }
    for records in messages.values():
        catalog.write_data(records)
    for data_cls, records in messages.items():
        (back,) = [item.data for item in catalog.query(data_cls, identifiers=[BTC.value])]
        assert back.ts_event == records[0].ts_event
        assert back.to_dict() == records[0].to_dict()
    forecast = catalog.query(Forecast)[0].data
    assert forecast.values.shape == (2, 3) and forecast.values[1, 2] == 5.0
    assert catalog.query(Regime)[0].data.probabilities.tolist() == [0.1, 0.2, 0.6, 0.1]
    assert np.isnan(catalog.query(FeatureVector)[0].data.values[1])


def test_decision_rejects_out_of_range_values():
    with pytest.raises(ValueError, match="target_fraction"):
        Decision(1.5, Signal.BUY, 50.0, "too big")
    with pytest.raises(ValueError, match="confidence_pct"):
        Decision(1.0, Signal.BUY, 150.0, "too sure")
