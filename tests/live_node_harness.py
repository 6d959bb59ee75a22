"""Shared set-up of the live-node end-to-end tests: the loopback Bybit venue in a thread, a live run config
pointing at it, and `qa live run` as a child process (a real TradingNode, Nautilus' Rust Bybit adapter).

    with venue_for(bars=100) as venue:
        node = LiveNode.start(venue, tmp_path / "run", live_config(venue))
        node.wait_for(lambda: node.fills())
        rc = node.stop(signal.SIGTERM)
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from qa_engine.config.loader import dump_toml
from qa_engine.config.models import BacktestConfig
from qa_engine.config.models import BybitEndpointsConfig
from qa_engine.config.models import LiveConfig
from qa_engine.config.models import LiveSettings
from qa_engine.live.clients import KEY_VARIABLES
from qa_engine.live.journal import JOURNAL_FILE
from qa_engine.live.journal import read_journal
from qa_engine.live.venue.faults import FaultConfig
from qa_engine.live.venue.server import LoopbackBybitThread
from qa_engine.live.venue.server import VenueConfig
from tests.pristine import pristine_catalog
from tests.unit.live.venue_harness import API_KEY
from tests.unit.live.venue_harness import API_SECRET
from tests.unit.live.venue_harness import INSTRUMENT_ID
from tests.unit.live.venue_harness import make_books
from tests.unit.live.venue_harness import sample_data

SYMBOL = INSTRUMENT_ID.split("-")[0]
BAR_TYPE = f"{INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL"
REPO_ROOT = Path(__file__).resolve().parents[1]


def venue_for(
    bars: int, *, speed: str = "lockstep", quiet_ms: int = 60, faults: FaultConfig | None = None
) -> LoopbackBybitThread:
    """The venue replaying the first `bars` sample bars; the replay starts when the node subscribes."""
    data = sample_data(bars)
    config = VenueConfig(
        api_key=API_KEY,
        api_secret=API_SECRET,
        speed=speed,
        quiet_ms=quiet_ms,
        start_on="subscribe",
        faults=faults or FaultConfig(),
    )
    return LoopbackBybitThread(config, data, make_books(data))


def live_config(
    venue: LoopbackBybitThread,
    *,
    fast: int = 3,
    slow: int = 8,
    notional_pct: float = 50.0,
    flatten_on_stop: bool = False,
    log_level: str = "WARNING",
    risk: dict[str, Any] | None = None,
    output_dir: Path | None = None,
) -> LiveConfig:
    """EMA cross (short periods: it trades often) on BTCUSDT 5m, every endpoint on the loopback venue."""
    backtest = BacktestConfig.model_validate(
        {
            "id": "live-node-e2e",
            "venues": [
                {
                    "name": "BYBIT",
                    "oms_type": "NETTING",
                    "account_type": "MARGIN",
                    "starting_balance": 10_000.0,
                    "currency": "USDT",
                    "leverage": 3.0,
                    "latency_ms": 0.0,
                }
            ],
            "data": {
                "catalog": str(pristine_catalog()),
                "start": "2025-01-01T00:00:00Z",
                "end": "2025-01-02T00:00:00Z",
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "5m"}],
            },
            "strategies": [
                {
                    "name": "ema_cross",
                    "params": {
                        "instrument_id": INSTRUMENT_ID,
                        "bar_type": BAR_TYPE,
                        "fast_ema_period": fast,
                        "slow_ema_period": slow,
                        "notional_pct_of_equity": notional_pct,
                    },
                }
            ],
            "engine": {"trader_id": "QA-001", "log_level": log_level},
            "risk": risk or {},
            **({"output": {"directory": str(output_dir)}} if output_dir else {}),
        }
    )
    settings = LiveSettings(
        environment="testnet",
        flatten_on_stop=flatten_on_stop,
        reconciliation_lookback_mins=None,  # the venue's clock is January 2025: read every order and fill
        bybit=BybitEndpointsConfig(
            http=venue.http_url,
            ws_public=venue.ws_public_url,
            ws_private=venue.ws_private_url,
            ws_trade=venue.ws_trade_url,
        ),
    )
    return LiveConfig.from_backtest(backtest, settings)


@dataclass
class LiveNode:
    """One `qa live run` child process and its run folder."""

    process: subprocess.Popen
    run_dir: Path
    stdout_path: Path

    @classmethod
    def start(
        cls,
        venue: LoopbackBybitThread,
        run_dir: Path,
        config: LiveConfig,
        env: dict[str, str] | None = None,  # more environment variables (alert secrets...)
    ) -> LiveNode:
        del venue  # the config already points at it; kept in the signature so calls read as they run
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        toml = run_dir.parent / f"{run_dir.name}.toml"
        toml.write_text(dump_toml(config))
        key_name, secret_name = KEY_VARIABLES["testnet"]
        env = os.environ | {key_name: API_KEY, secret_name: API_SECRET} | (env or {})
        stdout_path = run_dir.parent / f"{run_dir.name}.stdout"
        with stdout_path.open("w") as stdout:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "qa_engine.cli.main",
                    "live",
                    "run",
                    "--config",
                    str(toml),
                    "--out",
                    str(run_dir),
                ],
                env=env,
                cwd=REPO_ROOT,
                stdout=stdout,
                stderr=subprocess.STDOUT,
            )
        atexit.register(lambda: process.poll() is None and process.kill())  # a test timed out mid-run
        return cls(process, run_dir, stdout_path)

    # --- what the node wrote ---------------------------------------------------------------------

    def journal(self) -> list[dict[str, Any]]:
        return read_journal(self.run_dir / JOURNAL_FILE)

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [record for record in self.journal() if record["event"] == kind]

    def fills(self) -> list[dict[str, Any]]:
        return self.events("fill")

    def summary(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "summary.json").read_text())

    @property
    def config_path(self) -> Path:
        """The live config TOML the node was started with (written beside its run folder)."""
        return self.run_dir.parent / f"{self.run_dir.name}.toml"

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    # --- control ---------------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], Any], timeout_secs: float = 60.0, what: str = "") -> Any:
        """Poll `predicate()` until truthy; AssertionError (with the node output tail) on timeout or exit."""
        deadline = time.monotonic() + timeout_secs
        while True:
            value = predicate()
            if value:
                return value
            if self.process.poll() is not None:
                raise AssertionError(
                    f"node exited (rc {self.process.returncode}) waiting for {what}:\n{self.output()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout_secs: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout_secs)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no stop, no cancel, no summary
        self.process.wait()


def venue_position(venue: LoopbackBybitThread) -> Decimal:
    position = venue.state()["books"]["positions"].get(SYMBOL)
    return Decimal(str(position[0])) if position else Decimal(0)


def venue_order_link_ids(venue: LoopbackBybitThread) -> list[str]:
    """The client order ids of every order the venue accepted into its books (rejections never enter)."""

    async def read() -> list[str]:
        return [record["orderLinkId"] for record in venue.venue.books.order_history()]

    return venue._call(read())


def node_position(summary: dict[str, Any]) -> Decimal:
    return Decimal(summary["positions_open"].get(INSTRUMENT_ID, "0"))


def wait_for_venue(venue: LoopbackBybitThread, node: LiveNode, timeout_secs: float = 90.0) -> None:
    """Until the venue has replayed every bar, then a moment for the last bar's orders."""
    node.wait_for(venue.done.is_set, timeout_secs, "the venue to replay every bar")
    time.sleep(1.0)


def assert_no_secrets(*paths: Path) -> None:
    """Neither the API secret nor the key appears in any file under `paths` (folders walked)."""
    files = []
    for path in paths:
        files.extend(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else files.append(path)
    assert files, "nothing to check"
    for file in files:
        text = file.read_bytes()
        assert API_SECRET.encode() not in text, f"the API secret is written in {file}"
        assert API_KEY.encode() not in text, f"the API key is written in {file}"
