"""Sweep configs and plans: search spaces, walk-forward folds, symbols, task keys; refusals with the
culprit named."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.errors import ConfigError
from qa_engine.sweep.config import SweepConfig
from qa_engine.sweep.config import WalkForwardConfig
from qa_engine.sweep.engine import SweepPlan

REPO_ROOT = Path(__file__).resolve().parents[3]
FAST = "strategies.0.params.fast_ema_period"
SLOW = "strategies.0.params.slow_ema_period"


def sweep(**overrides) -> SweepConfig:
    raw = {
        "id": "t",
        "base": str(REPO_ROOT / "configs/backtest/default.toml"),
        "search": {
            "method": "grid",
            "params": [{"path": FAST, "values": [5, 8]}, {"path": SLOW, "low": 20, "high": 40, "step": 10}],
        },
    }
    raw.update(overrides)
    return SweepConfig.model_validate(raw)


def plan(config: SweepConfig) -> SweepPlan:
    return SweepPlan.build(config, load_config(BacktestConfig, config.base, config.set))


def test_a_grid_is_the_product_of_the_values_and_ranges():
    points = plan(sweep()).points()
    assert points == [{"fast_ema_period": f, "slow_ema_period": s} for f in (5, 8) for s in (20, 30, 40)]
    assert all(isinstance(p["slow_ema_period"], int) for p in points)


def test_random_points_are_seeded_and_inside_the_space():
    search = {
        "method": "random",
        "trials": 20,
        "seed": 3,
        "params": [{"path": FAST, "low": 3, "high": 9}, {"path": SLOW, "values": [30, 50]}],
    }
    first, again = plan(sweep(search=search)).points(), plan(sweep(search=search)).points()
    assert first == again and len(first) == 20
    assert all(3 <= p["fast_ema_period"] <= 9 and p["slow_ema_period"] in (30, 50) for p in first)
    assert len({p["fast_ema_period"] for p in first}) > 3


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"method": "grid", "params": [{"path": FAST, "low": 3, "high": 9}]}, "needs a step"),
        ({"method": "tpe", "params": [{"path": FAST, "low": 3, "high": 9}]}, "needs search.trials"),
        ({"method": "grid", "params": [{"path": FAST}]}, "either values"),
        (
            {
                "method": "grid",
                "params": [{"path": FAST, "values": [1]}, {"path": "x.fast_ema_period", "values": [2]}],
            },
            "share a name",
        ),
    ],
)
def test_bad_search_spaces_name_the_culprit(search, message):
    with pytest.raises(ValidationError, match=message):
        sweep(search=search)


def test_an_unknown_metric_is_refused():
    with pytest.raises(ValidationError, match="metric 'sharp'"):
        sweep(metric="sharp")


def test_walk_forward_folds_tile_the_range_and_never_overrun_it():
    folds = WalkForwardConfig(train_days=14, test_days=7).folds(
        datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    )
    assert [(a.day, b.day, c.day) for a, b, c in folds] == [(1, 15, 22), (8, 22, 29)]
    with pytest.raises(ConfigError, match="do not fit"):
        plan(sweep(walk_forward={"train_days": 30, "test_days": 7}))


def test_each_task_has_its_window_symbol_and_parameters_and_a_stable_key():
    config = sweep(
        symbols=["BTCUSDT-LINEAR.BYBIT", "ETHUSDT-LINEAR.BYBIT"],
        walk_forward={"train_days": 14, "test_days": 7},
    )
    tasks = plan(config).search_tasks()
    assert len(tasks) == 2 * 2 * 6  # folds x symbols x points
    eth = next(t for t in tasks if t.symbol == "ETHUSDT-LINEAR.BYBIT" and t.fold == 1 and t.trial == 4)
    assert eth.config["data"]["bars"][0]["instrument_id"] == "ETHUSDT-LINEAR.BYBIT"
    assert eth.config["strategies"][0]["params"]["bar_type"].startswith("ETHUSDT-LINEAR.BYBIT-5-MINUTE")
    assert eth.config["strategies"][0]["params"]["fast_ema_period"] == 8
    assert eth.config["data"]["start"].startswith("2025-01-08") and eth.config["data"]["end"].startswith(
        "2025-01-22"
    )
    assert Path(eth.config["data"]["catalog"]).is_absolute()
    assert len({t.key for t in tasks}) == len(tasks)
    assert [t.key for t in plan(config).search_tasks()] == [t.key for t in tasks]  # reruns find them


def test_a_path_that_is_not_in_the_base_config_is_refused_before_any_backtest():
    bad = sweep(
        search={"method": "grid", "params": [{"path": "strategies.0.parms.fast_ema_period", "values": [5]}]}
    )
    with pytest.raises(
        ConfigError, match=r"'strategies.0.parms' is not in the base config \(there: \['name', 'params'\]\)"
    ):
        plan(bad)
