"""Kill switches in backtests on real data: Bybit BTCUSDT 5m, October 2025 (the 10-10 crash), the EMA
12/26 baseline (default.toml: always in the market, 3x). Each rule fires on a real episode, acts as
configured (halt / flatten: the position is closed at the trigger and nothing is traded until the resume;
reduce: positions opened meanwhile are smaller) and resumes as configured; the final equity is compared
with the same run without the guard (printed, and they must differ: the guard changed what was traded).

    .venv/bin/python -m pytest tests/integration/test_risk_guard_backtest.py -s   # prints the table
"""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from qa_engine.backtest.runner import run_backtest
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from tests.real_catalogs import october_2025_catalog

ROOT = Path(__file__).resolve().parents[2]
DAY_NS = 86_400 * 10**9


@pytest.fixture(scope="module")
def october(tmp_path_factory) -> Path:
    return october_2025_catalog(tmp_path_factory.mktemp("october") / "catalog")


@pytest.fixture(scope="module")
def unguarded(october, tmp_path_factory) -> dict:
    return _run(october, tmp_path_factory.mktemp("unguarded"))


def _run(catalog: Path, run_dir: Path, *overrides: str) -> dict:
    config = load_config(
        BacktestConfig,
        ROOT / "configs/backtest/default.toml",
        [
            f'data.catalog="{catalog}"',
            "data.start=2025-10-01T00:00:00Z",
            "data.end=2025-11-01T00:00:00Z",
            *overrides,
        ],
    )
    orders: list[tuple[str, int]] = []

    def inspect(engine) -> None:  # (status, last event ns) of every order still cached at the end
        orders.extend((order.status_string(), order.ts_last) for order in engine.cache.orders())

    run_backtest(config, run_dir=run_dir, inspect=inspect)
    metrics = json.loads((run_dir / "performance_metrics.json").read_text())
    fills_csv = run_dir / "fills.csv"
    if fills_csv.stat().st_size > 1:  # a run without fills writes an empty fills.csv
        fills = pl.read_csv(fills_csv, try_parse_dates=True)
    else:  # nothing filled
        fills = pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "side": pl.Utf8, "quantity": pl.Float64})
    signed = pl.when(pl.col("side") == "BUY").then(pl.col("quantity")).otherwise(-pl.col("quantity"))
    fills = fills.with_columns(pl.col("ts").dt.epoch("ns").alias("ts_ns"), signed.cum_sum().alias("position"))
    events = pl.read_csv(run_dir / "risk_events.csv", try_parse_dates=True)
    events = events.with_columns(pl.col("ts").dt.epoch("ns").alias("ts_ns"))
    return {"metrics": metrics, "fills": fills, "events": events, "run_dir": run_dir, "orders": orders}


def _windows(events: pl.DataFrame, rule: str) -> list[tuple[int, int | None]]:
    """(trigger ns, resume ns or None) of each firing of `rule`."""
    windows, fired = [], None
    for row in events.filter(pl.col("rule") == rule).iter_rows(named=True):
        if row["kind"] == "trigger":
            fired = row["ts_ns"]
        else:
            windows.append((fired, row["ts_ns"]))
            fired = None
    if fired is not None:
        windows.append((fired, None))
    return windows


def _assert_flat_and_idle(run: dict, windows: list[tuple[int, int | None]]) -> None:
    """Within each window: the only fills are the closing one at the trigger, and the position is 0."""
    fills = run["fills"]
    for fired, resumed in windows:
        end = resumed if resumed is not None else 2**63 - 1
        inside = fills.filter((pl.col("ts_ns") >= fired) & (pl.col("ts_ns") < end))
        assert (inside["ts_ns"] == fired).all(), f"traded while stopped: {inside}"
        before = fills.filter(pl.col("ts_ns") <= fired)
        assert before.height == 0 or before["position"][-1] == pytest.approx(0, abs=1e-9), "not flat"


def _equity(run: dict) -> float:
    return run["metrics"]["reconciliation"]["final_equity"]


def _report(rule: str, episode: str, action: str, guarded: dict, unguarded: dict) -> None:
    print(
        f"\n{rule:<20} {episode:<44} {action:<8} equity guarded {_equity(guarded):>10,.2f}"
        f"  unguarded {_equity(unguarded):>10,.2f}"
    )


def _stamp(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M")


def test_daily_loss_halts_until_the_next_utc_day(october, unguarded, tmp_path) -> None:
    run = _run(october, tmp_path, "risk.daily_loss.limit_pct=3")
    windows = _windows(run["events"], "daily_loss")
    assert len(windows) >= 5
    for fired, resumed in windows:
        assert resumed == (fired // DAY_NS + 1) * DAY_NS, "resumed at the next UTC midnight"
    _assert_flat_and_idle(run, windows)
    # the day after the crash: 2025-10-11 lost 3 % of its first equity by the morning
    assert any(_stamp(fired).startswith("2025-10-11") for fired, _ in windows)
    assert run["metrics"]["reconciliation"]["balanced_to_the_cent"]
    assert _equity(run) != _equity(unguarded)
    _report("daily_loss 3 %", f"{len(windows)} days, first {_stamp(windows[0][0])}", "halt", run, unguarded)


def test_consecutive_losses_flatten_for_a_cool_down(october, unguarded, tmp_path) -> None:
    run = _run(
        october,
        tmp_path,
        "risk.consecutive_losses.max_losses=6",
        "risk.consecutive_losses.cool_down_secs=21600",
    )
    windows = _windows(run["events"], "consecutive_losses")
    assert len(windows) >= 5
    for fired, resumed in windows:
        assert resumed is None or resumed - fired == 21_600 * 10**9
    _assert_flat_and_idle(run, windows)
    trades = pl.read_csv(run["run_dir"] / "trades.csv", try_parse_dates=True)
    first = windows[0][0]
    closed = trades.with_columns(pl.col("exit_ts").dt.epoch("ns").alias("exit_ns")).filter(
        pl.col("exit_ns") <= first
    )
    assert (closed["net_pnl"].tail(6) < 0).all(), "the six round trips before the trigger all lost"
    assert _equity(run) != _equity(unguarded)
    _report(
        "consecutive_losses 6", f"{len(windows)} streaks, first {_stamp(first)}", "flatten", run, unguarded
    )


def test_drawdown_halts_and_resumes_after_its_cool_down(october, unguarded, tmp_path) -> None:
    run = _run(
        october,
        tmp_path,
        "risk.drawdown.limit_pct=8",
        'risk.drawdown.resume="cool_down"',
        "risk.drawdown.cool_down_secs=172800",
    )
    windows = _windows(run["events"], "drawdown")
    assert len(windows) >= 2
    for fired, resumed in windows:
        assert resumed is None or resumed - fired == 2 * DAY_NS
    _assert_flat_and_idle(run, windows)
    # the crash: the drawdown from the peak passed 8 % in the evening of 2025-10-10
    assert any(_stamp(fired).startswith("2025-10-10") for fired, _ in windows)
    assert _equity(run) != _equity(unguarded)
    _report("drawdown 8 %", f"{len(windows)} halts, incl. 2025-10-10 crash", "halt", run, unguarded)


def test_drawdown_with_manual_resume_stays_halted(october, tmp_path) -> None:
    run = _run(october, tmp_path, "risk.drawdown.limit_pct=8")
    windows = _windows(run["events"], "drawdown")
    assert len(windows) == 1 and windows[0][1] is None
    _assert_flat_and_idle(run, windows)


def test_volatility_spike_reduces_size_through_the_crash(october, unguarded, tmp_path) -> None:
    run = _run(october, tmp_path, "risk.volatility_spike.multiple=4", "risk.volatility_spike.size_scale=0.25")
    windows = _windows(run["events"], "volatility_spike")
    crash = [w for w in windows if _stamp(w[0]).startswith("2025-10-10 21")]
    assert crash, "the 2025-10-10 21:00 UTC crash must fire the volatility rule"
    for fired, resumed in windows:
        assert resumed is not None and resumed - fired >= 1_800 * 10**9  # cool-down, then calm
    fills = run["fills"]
    typical = fills["position"].abs().median()
    reduced = [
        abs(row["position"])
        for fired, resumed in windows
        for row in fills.filter((pl.col("ts_ns") > fired) & (pl.col("ts_ns") < resumed)).iter_rows(named=True)
    ]
    assert reduced, "no position was opened while the rule was fired: the test proves nothing"
    assert max(reduced) <= 0.3 * typical, (reduced, typical)
    assert _equity(run) != _equity(unguarded)
    _report("volatility_spike 4x", "2025-10-10 21:25 crash (11x median)", "reduce", run, unguarded)


def test_error_rate_halts_when_the_venue_keeps_rejecting(october, tmp_path) -> None:
    """A strategy whose every order the venue rejects (a post-only buy above the market, on the real
    bars of 2025-10-01): 5 rejections in 30 minutes halt trading for 2 hours, during which Nautilus'
    RiskEngine denies the orders (TradingState HALTED) before they reach the venue."""
    strategy = (
        'strategies.0.name="tests.plugins.rejected:PostOnlyTaker"',
        'strategies.0.params={instrument_id="BTCUSDT-LINEAR.BYBIT", '
        'bar_type="BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL"}',
    )
    run = _run(
        october,
        tmp_path,
        *strategy,
        "data.end=2025-10-02T00:00:00Z",
        "risk.error_rate.max_errors=5",
        "risk.error_rate.window_secs=1800",
        "risk.error_rate.cool_down_secs=7200",
    )
    windows = _windows(run["events"], "error_rate")
    assert len(windows) >= 5
    rejected = sorted(ts for status, ts in run["orders"] if status == "REJECTED")
    denied = sorted(ts for status, ts in run["orders"] if status == "DENIED")
    assert rejected[:5] == [t for t in rejected if t <= windows[0][0]], "fired on the 5th rejection"
    for fired, resumed in windows:
        end = resumed if resumed is not None else 2**63 - 1
        assert resumed is None or resumed - fired == 7_200 * 10**9
        assert not [t for t in rejected if fired < t < end], "an order reached the venue while halted"
        assert [t for t in denied if fired < t < end], "the halt denied nothing: the test proves nothing"
    print(
        f"\nerror_rate 5 / 30 min: {len(windows)} halts of 2 h on 2025-10-01 (a strategy the venue rejects)"
    )


def test_limits_cap_the_position_and_each_order_and_nautilus_denies_oversized_notional(october, tmp_path):
    capped = _run(october, tmp_path / "capped", 'risk.limits.max_position={"BTCUSDT-LINEAR.BYBIT" = 0.05}')
    positions = capped["fills"]["position"].abs()
    assert positions.max() == pytest.approx(0.05) and capped["fills"].height > 100

    per_trade = _run(october, tmp_path / "per_trade", "risk.limits.risk_per_trade_pct=20")
    fills = per_trade["fills"]
    notional = (fills["quantity"] * fills["price"]).to_list()
    equity_bound = 10_000 * 1.05  # the account never got above 5 % over its start in October
    assert max(notional) <= 0.2 * equity_bound and len(notional) > 100

    denied = _run(
        october,
        tmp_path / "denied",
        "data.end=2025-10-03T00:00:00Z",
        'risk.limits.max_notional_per_order={"BTCUSDT-LINEAR.BYBIT" = 5000}',
    )
    statuses = {status for status, _ in denied["orders"]}
    assert "DENIED" in statuses and "FILLED" not in statuses  # every order is ~10,000 USDT notional
    reasons = denied["metrics"]["venue_simulation"]["orders_denied_first"]
    assert "NOTIONAL" in reasons[0]["reason"].upper(), reasons[0]
