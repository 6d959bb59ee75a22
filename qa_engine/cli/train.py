"""`qa train oracle|all`: train models from run configs (configs/train/*.toml) into run folders."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from qa_engine.cli.console import stdout_console
from qa_engine.cli.console import table
from qa_engine.logging import configure_logging

train_app = typer.Typer(help="Train the models (torch) and export ONNX artifacts.", no_args_is_help=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="run config (TOML)")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="override a config value: a.b.0.c=value (repeatable)")
]
DeviceOption = Annotated[str | None, typer.Option("--device", help="cpu or cuda (default: the config's)")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="continue from the run folder's checkpoints")]
OutOption = Annotated[Path | None, typer.Option("--out", help="run folder (default runs/<utc>_<config-id>/)")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="print the resolved config and exit")]
JsonLogsOption = Annotated[bool, typer.Option("--json-logs", help="JSON log lines on stderr")]


def default_run_dir(config_id: str) -> Path:
    return Path("runs") / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}_{config_id}"


def _resume_dir(out: Path | None, resume: bool) -> None:
    from qa_engine.errors import ConfigError

    if resume and out is None:
        raise ConfigError("--resume needs --out: the run folder whose checkpoints to continue from")


@train_app.command("oracle")
def oracle_command(
    config: ConfigOption = Path("configs/train/oracle.toml"),
    set_: SetOption = None,
    device: DeviceOption = None,
    resume: ResumeOption = False,
    out: OutOption = None,
    dry_run: DryRunOption = False,
    json_logs: JsonLogsOption = False,
) -> None:
    """Train the Oracle (TFT) on every walk-forward fold, export the artifact, write the report."""
    configure_logging(json_logs=json_logs)
    _resume_dir(out, resume)
    from qa_engine.config.loader import dump_toml
    from qa_engine.config.loader import load_config
    from qa_engine.models.oracle import OracleTrainConfig
    from qa_engine.models.oracle import ensure_device

    run_config = ensure_device(load_config(OracleTrainConfig, config, set_), device)
    if dry_run:
        typer.echo(dump_toml(run_config), nl=False)
        return
    from qa_engine.models.pipeline import run_oracle_stage

    run_dir = out or default_run_dir(run_config.id)
    result = run_oracle_stage(config, list(set_ or []), run_dir, device, resume)
    summary = table(f"Oracle {run_config.id} -> {run_dir}", ["item", "value"])
    for key, value in result.summary.items():
        summary.add_row(key, value)
    summary.add_row("report", str(run_dir / "report.md"))
    stdout_console.print(summary)


@train_app.command("all")
def all_command(
    config: ConfigOption = Path("configs/train/trinity.toml"),
    device: DeviceOption = None,
    resume: ResumeOption = False,
    out: OutOption = None,
    json_logs: JsonLogsOption = False,
) -> None:
    """Run every stage of the trinity config that exists (Guardian -> Oracle -> Strategist -> evaluation)."""
    configure_logging(json_logs=json_logs)
    _resume_dir(out, resume)
    from qa_engine.config.loader import load_config
    from qa_engine.models.pipeline import STAGE_ORDER
    from qa_engine.models.pipeline import STAGES
    from qa_engine.models.pipeline import TrinityConfig

    trinity = load_config(TrinityConfig, config)
    run_dir = out or default_run_dir(trinity.id)
    rows: list[tuple[str, str, str]] = []
    for stage in STAGE_ORDER:
        stage_config = getattr(trinity, stage)
        runner = STAGES[stage]
        if runner is None:
            rows.append((stage, "NOT AVAILABLE YET", "not implemented yet; nothing was run"))
        elif stage_config is None:
            rows.append((stage, "skipped", "the trinity config names no run config for it"))
        else:
            result = runner(stage_config, [], run_dir / stage, device, resume)
            rows.append((stage, "done", "; ".join(f"{k}: {v}" for k, v in result.summary.items())))
    summary = table(f"qa train all ({trinity.id}) -> {run_dir}", ["stage", "status", "details"])
    for row in rows:
        summary.add_row(*row)
    stdout_console.print(summary)
    missing = [stage for stage, status, _ in rows if status == "NOT AVAILABLE YET"]
    if missing:
        stdout_console.print(f"Stages not available yet: {', '.join(missing)}.")


# ---- baselines (XGBoost / LSTM / MLP classifiers; qa_engine.models.baseline_training) -------------


@train_app.command("baselines")
def baselines_command(
    config: ConfigOption = Path("configs/train/baselines.toml"),
    set_: SetOption = None,
    device: DeviceOption = None,
    resume: ResumeOption = False,
    out: OutOption = None,
    publish: Annotated[
        Path | None,
        typer.Option("--publish", help="also copy models/ and the report (no checkpoints) here"),
    ] = None,
    dry_run: DryRunOption = False,
    json_logs: JsonLogsOption = False,
) -> None:
    """Train the baselines on every walk-forward fold; out-of-sample report; ONNX artifacts."""
    configure_logging(json_logs=json_logs)
    _resume_dir(out, resume)
    from qa_engine.config.loader import dump_toml
    from qa_engine.config.loader import load_config
    from qa_engine.models.baseline_training import BaselinesTrainConfig
    from qa_engine.models.baseline_training import ensure_device

    run_config = ensure_device(load_config(BaselinesTrainConfig, config, set_), device)
    if dry_run:
        typer.echo(dump_toml(run_config), nl=False)
        return
    from qa_engine.models.baseline_training import train_baselines

    run_dir = out or default_run_dir(run_config.id)
    outcome = train_baselines(run_config, run_dir, resume=resume, publish_dir=publish)
    pooled = outcome.report["pooled"]
    policy = outcome.report["position_policy"]
    summary = table(
        f"Baselines {run_config.id} -> {run_dir} (test {' .. '.join(outcome.report['pooled_test_range'])})",
        ["forecaster", "accuracy", "balanced acc.", "macro-F1", "net return %"],
    )
    for name in outcome.report["strategies"]:
        metrics = pooled["classification"].get(name)
        net = pooled["backtest"][policy][name]["total_return_pct"]
        keys = ("accuracy", "balanced_accuracy", "macro_f1")
        cells = [f"{metrics[key]:.3f}" for key in keys] if metrics else ["", "", ""]
        summary.add_row(name, *cells, f"{net:+.2f}")
    stdout_console.print(summary)
    stdout_console.print(f"report: {run_dir / 'report.md'}")
