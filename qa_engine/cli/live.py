"""`qa live run`: a Nautilus TradingNode on Bybit from a live run config; `run_live.py` is a shim over it.

Testnet by default; `--environment mainnet` prints what it is about to trade and refuses to start
without `--yes`. API keys come from the environment only (BYBIT_TESTNET_API_KEY / _SECRET,
BYBIT_DEMO_API_KEY / _SECRET, BYBIT_API_KEY / _SECRET); `--paper` needs none for orders.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from qa_engine.cli.backtest import DryRunOption
from qa_engine.cli.backtest import JsonLogsOption
from qa_engine.cli.backtest import SetOption
from qa_engine.cli.backtest import check_out_folder
from qa_engine.cli.console import stdout_console
from qa_engine.cli.console import table
from qa_engine.config.loader import dump_toml
from qa_engine.config.loader import load_config
from qa_engine.config.models import LiveConfig
from qa_engine.errors import ConfigError
from qa_engine.logging import configure_logging

live_app = typer.Typer(
    help="Live trading on Bybit (testnet by default) or paper trading.", no_args_is_help=True
)


def _banner(plan) -> None:
    banner = table(f"Live run {plan.config.id}", ["", ""])
    for key, value in plan.banner.items():
        banner.add_row(key, str(value))
    banner.add_row("run folder", str(plan.run_dir))
    stdout_console.print(banner)


@live_app.command("run")
def run_command(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="live run config (TOML), e.g. configs/live/*.toml")
    ],
    environment: Annotated[
        str | None, typer.Option("--environment", help="testnet | demo | mainnet (default: the config's)")
    ] = None,
    paper: Annotated[
        bool, typer.Option("--paper", help="sandbox execution on live data with the backtest's venue rules")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="confirm trading real money on mainnet")] = False,
    set_: SetOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="run folder (default runs/<utc>_<config-id>/)")
    ] = None,
    dry_run: DryRunOption = False,
    json_logs: JsonLogsOption = False,
) -> None:
    """Start a TradingNode; SIGINT / SIGTERM cancel open orders (and flatten if configured) and exit."""
    from qa_engine.live.clients import KEY_VARIABLES
    from qa_engine.ops.alerts import ALERT_SECRET_VARIABLES
    from qa_engine.ops.logs import secret_values

    # every key and alert secret the process can see is redacted from its own log lines
    configure_logging(
        json_logs=json_logs,
        redact=secret_values(
            [*(n for pair in KEY_VARIABLES.values() for n in pair), *ALERT_SECRET_VARIABLES]
        ),
    )
    overrides = list(set_ or [])
    if environment is not None:
        if environment not in ("testnet", "demo", "mainnet"):
            raise ConfigError(f"--environment {environment}: choose testnet, demo or mainnet")
        overrides.append(f"live.environment={environment}")
    if paper:
        overrides.append("live.execution=paper")
    run_config = load_config(LiveConfig, config, overrides)
    if dry_run:
        typer.echo(dump_toml(run_config), nl=False)
        return
    if out is not None:
        check_out_folder(out)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = out or run_config.output.directory / f"{stamp}_{run_config.id}_live"

    from qa_engine.live.node import plan_live_run
    from qa_engine.live.node import run_live_node

    plan = plan_live_run(run_config, run_dir)
    _banner(plan)
    live = run_config.live
    if live.environment == "mainnet" and live.execution == "bybit" and not yes:
        raise ConfigError("mainnet trades real money: check the table above and run again with --yes")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(dump_toml(run_config))
    summary = run_live_node(plan)
    result = table("Stopped", ["", ""])
    for key in ("runtime_secs", "orders", "orders_open", "fills", "positions_open", "accounts"):
        result.add_row(key, str(summary[key]))
    stdout_console.print(result)


@live_app.command("resume")
def resume_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="the live run config of the halted node")],
    rule: Annotated[
        list[str] | None, typer.Option("--rule", help="the fired rule to resume (repeat; default: all)")
    ] = None,
    set_: SetOption = None,
) -> None:
    """Resume trading after a kill switch fired (the operator's decision, whatever the rule's resume).

    Writes a resume request beside the guard's state (runs/<config-id>.risk_guard.json): a running node
    takes it at its next bar, a stopped one when it starts."""
    import json
    import os

    from qa_engine.live.node import guard_state_file
    from qa_engine.risk.kill_switches import RESUME_REQUEST_SUFFIX

    configure_logging()
    live_config = load_config(LiveConfig, config, set_)
    state_path = guard_state_file(live_config)
    if not state_path.exists():
        raise ConfigError(
            f"{state_path}: no kill-switch state for config '{live_config.id}' (nothing to resume)"
        )
    try:
        trackers = json.loads(state_path.read_text(encoding="utf-8"))["trackers"]
    except (ValueError, KeyError) as error:
        raise ConfigError(f"{state_path}: unreadable kill-switch state ({error})") from None
    fired = [name for name, tracker in trackers.items() if tracker.get("fired_at_ns") is not None]
    if not fired:
        raise ConfigError(f"no kill switch of '{live_config.id}' is fired (state {state_path})")
    unknown = [name for name in rule or [] if name not in fired]
    if unknown:
        raise ConfigError(f"--rule {unknown[0]}: not fired; fired: {', '.join(fired)}")
    request = Path(str(state_path) + RESUME_REQUEST_SUFFIX)
    partial = Path(str(request) + ".partial")
    partial.write_text(json.dumps({"rules": rule or None}), encoding="utf-8")
    os.replace(partial, request)
    chosen = ", ".join(rule or fired)
    stdout_console.print(
        f"resume requested for {chosen}: a running node resumes at its next bar, a stopped one at start"
    )
