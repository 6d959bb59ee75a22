"""Every registered strategy builds from its default parameters (plus the instrument and bar type),
runs on real fixture bars from the sample catalog, and stops cleanly."""

from __future__ import annotations

import pytest

from qa_engine.backtest.runner import run_backtest
from qa_engine.config.models import BacktestConfig
from qa_engine.plugins import strategy_registry

INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"
BAR_TYPE = f"{INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL"


def extra_setup(name: str) -> tuple[dict, list[dict]]:
    """Params and actors a plug-in needs beyond the bars. Trinity: a Strategist artifact (a tiny one
    trained on real bars by a test fixture) and a FeatureActor of its fitted feature set; its Oracle
    and Guardian inputs are switched off here (tests/integration/test_trinity_strategy.py covers them)."""
    if name != "trinity":
        return {}, []
    from tests.unit.inference.strategist_artifact import tiny_strategist_artifact

    folder = str(tiny_strategist_artifact())
    actor = {
        "name": "features",
        "params": {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE, "artifact": folder},
    }
    return {"strategist_artifact": folder, "use_oracle": False, "use_guardian": False}, [actor]


@pytest.mark.parametrize("name", sorted(strategy_registry()))
def test_registered_strategy_runs_three_days_of_real_bars_and_stops(name, sample_catalog, tmp_path):
    params, actors = extra_setup(name)
    config = BacktestConfig.model_validate(
        {
            "id": f"conformance-{name}".replace("_", "-"),
            "venues": [{"name": "BYBIT"}],
            "data": {
                "catalog": str(sample_catalog),
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "5m"}],
                "start": "2025-01-01T00:00:00Z",
                "end": "2025-01-04T00:00:00Z",
            },
            "strategies": [
                {"name": name, "params": {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE, **params}}
            ],
            "actors": actors,
        },
    )
    outcome = run_backtest(config, run_dir=tmp_path)
    assert outcome.bars == 3 * 288
    assert outcome.report.reconciliation.balanced_to_the_cent
    assert (tmp_path / "performance_metrics.json").is_file()
