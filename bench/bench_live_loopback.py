"""Live node on the loopback Bybit venue: bar close -> order latency, reconnect time after a websocket drop,
node memory per bar; against the same strategy's per-bar time in a backtest measured in the same run.

The node is `qa live run` (a child process, Nautilus' Rust Bybit adapter) with configs/backtest/default.toml's
EMA cross at short periods (3/8, so it trades often), on the first N bars of the January 2025 sample
(real Bybit BTCUSDT 5m bars), venue in lockstep (next bar after `quiet_ms` without order traffic).

    .venv/bin/python bench/bench_live_loopback.py [--bars 2000] [--quiet-ms 20] [--drop-every 200]

Figures:
- latency: per place_order request, the venue's wall time from publishing the bar to receiving the order
  (the founding target: p99 < 10 ms);
- reconnect: from the venue closing every websocket (drop after every `--drop-every` bars) to the node
  holding all three again (public kline subscribed, private order/execution subscribed, trade authenticated),
  as seen by the venue; the next bar waits for it (qa_engine.live.soak);
- memory: the child's VmRSS every 500 bars and the slope over the second half (KiB per 1000 bars);
- baseline: the same config through the backtest engine in-process (per-bar wall time, strategy included),
  and an idle-strategy backtest of the same bars; ratios are against these.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from qa_engine.backtest.runner import run_backtest
from qa_engine.live.soak import SoakSettings
from qa_engine.live.soak import percentiles
from qa_engine.live.soak import print_report
from qa_engine.live.soak import run_soak
from qa_engine.live.soak import soak_config


def backtest_per_bar_us(settings: SoakSettings, idle: bool = False) -> tuple[int, float]:
    config = soak_config(settings)
    if idle:  # a strategy that never becomes warm: the engine's own per-bar cost
        params = {**config.strategies[0].params, "fast_ema_period": 100_000, "slow_ema_period": 100_001}
        config = config.model_copy(
            update={"strategies": [config.strategies[0].model_copy(update={"params": params})]}
        )
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_backtest(config, run_dir=Path(tmp))
    return outcome.bars, outcome.wall_secs / max(outcome.bars, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--quiet-ms", type=int, default=20)
    parser.add_argument("--speed", default="lockstep")
    parser.add_argument("--drop-every", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args()
    settings = SoakSettings(
        bars=args.bars, speed=args.speed, quiet_ms=args.quiet_ms, drop_every_bars=args.drop_every
    )

    bt_bars, ema_us = backtest_per_bar_us(settings)
    _, idle_us = backtest_per_bar_us(settings, idle=True)
    print(
        f"backtest baseline (in-process, same bars)  bars={bt_bars:,}  EMA 3/8 {ema_us:.1f} us/bar, "
        f"idle strategy {idle_us:.1f} us/bar"
    )

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.out or Path(tmp) / "live-bench"
        started = time.monotonic()
        report = run_soak(settings, run_dir, progress=True)
        print(f"live run total incl. node start/stop {time.monotonic() - started:.1f} s")
        print_report(report)
    lat = percentiles(report.latencies_ms)
    if lat:
        print(
            f"live bar->order p50 / backtest EMA per-bar time = {lat['p50'] * 1e3 / ema_us:.1f}x; "
            f"p99 / backtest = {lat['p99'] * 1e3 / ema_us:.1f}x"
        )
    print(
        f"live wall per bar (lockstep, quiet {args.quiet_ms} ms, drops gated) "
        f"{report.wall_secs / report.bars * 1e3:.1f} ms = "
        f"{report.wall_secs / report.bars * 1e6 / ema_us:.0f}x the backtest's"
    )


if __name__ == "__main__":
    main()
