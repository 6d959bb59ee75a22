"""`qa research walk-forward` without the models (their training is `qa train all`'s own tests): the
catalog it builds from the repository's real Bybit 1h bars and funding, one engine run per strategy and
fold, warm-up bars that trade nothing, figures measured from the test start, the report."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest

from qa_engine.cli.main import main
from qa_engine.research.walkforward import load_walkforward_config
from qa_engine.research.walkforward import run_walkforward

REPO = Path(__file__).resolve().parents[2]


def _configs(tmp_path: Path, strategies: str, folds: str = '["a", "b"]') -> Path:
    oracle = tmp_path / "oracle.toml"
    oracle.write_text(
        """
[data]
[[data.folds]]
name = "a"
train_start = 2025-01-01T00:00:00Z
validation_start = 2025-02-01T00:00:00Z
test_start = 2025-03-01T00:00:00Z
test_end = 2025-03-15T00:00:00Z
[[data.folds]]
name = "b"
train_start = 2025-01-01T00:00:00Z
validation_start = 2025-02-15T00:00:00Z
test_start = 2025-03-15T00:00:00Z
test_end = 2025-04-01T00:00:00Z
"""
    )
    trinity = tmp_path / "trinity.toml"
    trinity.write_text(f'id = "t"\noracle = "{oracle}"\n')
    config = tmp_path / "wf.toml"
    config.write_text(
        f"""
id = "wf-test"
trinity = "{trinity}"
folds = {folds}
klines = "{REPO / "data/klines/bybit_linear_BTCUSDT_1h.parquet"}"
funding = "{REPO / "data/funding/bybit_linear_BTCUSDT_funding.parquet"}"
warmup_days = 5
{strategies}
"""
    )
    return config


STRATEGIES = """
[[strategies]]
label = "buy_and_hold"
name = "buy_and_hold"
kind = "benchmark"

[[strategies]]
label = "ema_cross"
name = "ema_cross"

[[strategies]]
label = "ema_cross-vol-target"
name = "ema_cross"
kind = "variant"
params = { sizing = "vol_target", vol_target_annual_pct = 30.0 }
"""


def test_every_fold_is_backtested_from_its_test_start_after_a_warm_up_that_trades_nothing(tmp_path):
    config = load_walkforward_config(_configs(tmp_path, STRATEGIES))
    out = tmp_path / "out"
    results = run_walkforward(config, out, log=lambda *_: None)

    assert (out / "catalog" / "data").is_dir()
    bars = pl.read_parquet(REPO / "data/klines/bybit_linear_BTCUSDT_1h.parquet")
    for fold, start, end in (("a", "2025-03-01", "2025-03-15"), ("b", "2025-03-15", "2025-04-01")):
        runs = results["folds"][fold]["runs"]
        assert set(runs) == {"buy_and_hold", "ema_cross", "ema_cross-vol-target"}
        for label in runs:
            with (out / fold / "backtests" / label / "fills.csv").open() as file:
                fills = list(csv.DictReader(file))
            assert fills, f"{label} traded nothing in fold {fold}"
            assert min(row["ts"] for row in fills) >= start  # nothing during the warm-up days
        # buy-and-hold from the first test bar's close to the last: the market's move, less the fees
        first = bars.filter(
            pl.col("ts_open") == pl.lit(start).str.to_datetime(time_zone="UTC") - pl.duration(hours=1)
        )
        last = bars.filter(
            pl.col("ts_open") == pl.lit(end).str.to_datetime(time_zone="UTC") - pl.duration(hours=1)
        )
        market = 100 * (last["close"][0] / first["close"][0] - 1)
        assert runs["buy_and_hold"]["return_pct"] == pytest.approx(market, abs=0.15)
        assert runs["buy_and_hold"]["fees"] > 0 and runs["ema_cross"]["round_trips"] > 0
        assert (out / f"equity_{fold}.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "## Fold b: test 2025-03-15 .. 2025-04-01" in report and "| ema_cross | classic |" in report
    assert "No Trinity run in this fold." in report
    assert results["folds"]["b"]["verdict"]["best_classic"] == "ema_cross"  # the only classic


def test_a_fold_the_oracle_config_lacks_is_refused_with_exit_2(tmp_path, capsys):
    config = _configs(tmp_path, STRATEGIES, folds='["a", "2027"]')
    assert main(["research", "walk-forward", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "folds ['2027'] are not in" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
