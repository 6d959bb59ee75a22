"""VolatilityRegimeActor (the naive regime) inside the engine on the sample catalog's real Bybit 1h bars:
each published regime is the quartile of the causal realised volatility among the previous ones, and a
run cut short publishes exactly the same regimes up to its end (nothing reads a later bar)."""

from __future__ import annotations

import numpy as np
import pytest

from actors.volatility_regime import VolatilityRegimeActor
from qa_engine.features.io import load_catalog_bars

INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"
BAR_TYPE = f"{INSTRUMENT_ID}-1-HOUR-LAST-EXTERNAL"


def _run(sample_catalog, tmp_path, end: str) -> list[tuple[int, int, float]]:
    from qa_engine.backtest.runner import run_backtest
    from qa_engine.config.models import BacktestConfig

    common = {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE}
    config = BacktestConfig.model_validate(
        {
            "id": "rv-regime",
            "venues": [{"name": "BYBIT"}],
            "data": {
                "catalog": str(sample_catalog),
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "1h"}],
                "start": "2025-12-01T00:00:00Z",
                "end": end,
            },
            "strategies": [{"name": "buy_and_hold", "params": common}],
            "actors": [
                {
                    "name": "volatility_regime",
                    "params": {**common, "min_history_bars": 48, "keep_history": True},
                }
            ],
        }
    )
    captured = {}

    def inspect(engine):
        actor = next(a for a in engine.trader.actors() if isinstance(a, VolatilityRegimeActor))
        captured["history"] = list(actor.history)

    run_backtest(config, run_dir=tmp_path / end[:10], inspect=inspect)
    return captured["history"]


def test_regimes_are_quartiles_of_past_realised_volatility_and_never_read_ahead(sample_catalog, tmp_path):
    history = _run(sample_catalog, tmp_path, "2026-01-15T00:00:00Z")
    bars, _ = load_catalog_bars(sample_catalog, INSTRUMENT_ID, "1h")
    ts = bars["ts"].cast(int).to_numpy()
    returns = np.diff(np.log(bars["close"].to_numpy()))
    volatility = {
        int(ts[i + 1]): float(np.std(returns[i - 23 : i + 1], ddof=1)) for i in range(23, len(returns))
    }
    ordered = sorted(volatility)
    assert len(history) == sum(1 for t in ordered if t <= history[-1][0]) - 47  # from the 48th volatility
    regimes = []
    for ts_event, regime, value in history:
        assert value == pytest.approx(volatility[ts_event], rel=1e-12)
        past = [volatility[t] for t in ordered if t <= ts_event][-2160:]
        edges = np.quantile(past, [0.25, 0.5, 0.75])
        expected = int(np.searchsorted(edges, value, side="right"))
        on_an_edge = np.isclose(edges, value, rtol=1e-12, atol=0).any()  # the bar's own volatility is an edge
        assert regime == expected or (on_an_edge and abs(regime - expected) == 1)
        regimes.append(regime)
    assert set(regimes) == {0, 1, 2, 3}

    shorter = _run(sample_catalog, tmp_path, "2026-01-05T00:00:00Z")
    assert shorter == history[: len(shorter)]  # a run that ends earlier saw the same regimes
