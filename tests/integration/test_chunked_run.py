"""`engine.chunk_size_bars`: the run streamed from the catalog in windows makes the same orders, fills,
round trips and equity curve as the one-shot run (the whole range loaded first), funding included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_engine.backtest.runner import run_backtest
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from tests.pristine import pristine_catalog

FILES = ("fills.csv", "trades.csv", "funding.csv", "equity_curve.csv")


def _run(root: Path, run_dir: Path, overrides: tuple[str, ...] = ()):
    config = load_config(
        BacktestConfig,
        root / "configs/backtest/default.toml",
        [f'data.catalog="{pristine_catalog()}"', *overrides],
    )
    return run_backtest(config, run_dir=run_dir)


@pytest.fixture(scope="module")
def one_shot(tmp_path_factory, request):
    return _run(Path(request.config.rootpath), tmp_path_factory.mktemp("one-shot"))


# 1,000 bars: windows that cut the month in 9, one ending in the middle of a funding period; 777: an
# odd size whose windows end at arbitrary bars
@pytest.mark.parametrize("chunk_bars", [1_000, 777])
def test_chunked_run_equals_the_one_shot_run(one_shot, chunk_bars, tmp_path, request):
    chunked = _run(Path(request.config.rootpath), tmp_path, (f"engine.chunk_size_bars={chunk_bars}",))
    assert chunked.bars == one_shot.bars == 8_928
    for name in FILES:
        assert (chunked.run_dir / name).read_bytes() == (one_shot.run_dir / name).read_bytes(), name
    metrics = json.loads((chunked.run_dir / "performance_metrics.json").read_text())
    assert metrics == json.loads((one_shot.run_dir / "performance_metrics.json").read_text())
    assert len((chunked.run_dir / "funding.csv").read_text().splitlines()) > 10  # funding was streamed too


def test_chunk_size_below_100_bars_is_refused():
    with pytest.raises(Exception, match="chunk_size_bars"):
        BacktestConfig.model_validate(
            {
                "id": "x",
                "venues": [{"name": "BYBIT"}],
                "data": {
                    "catalog": "catalog",
                    "bars": [{"instrument_id": "BTCUSDT-LINEAR.BYBIT", "interval": "5m"}],
                    "start": "2025-01-01T00:00:00Z",
                    "end": "2025-01-02T00:00:00Z",
                },
                "strategies": [{"name": "ema_cross"}],
                "engine": {"chunk_size_bars": 10},
            }
        )
