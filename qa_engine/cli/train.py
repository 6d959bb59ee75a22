"""`qa train oracle|guardian|strategist|evaluation|all|baselines`: train models from run configs
(configs/train/*.toml) into run folders.

Every command checks its output folders before it loads data or trains (`pipeline.guard_output`): a
folder under `artifacts/` (committed) or one that already holds a finished artifact/report needs
`--overwrite` (also a `--publish` folder), and `--resume` needs a checkpoint in `--out`; otherwise exit 2
with one line naming the folder, and nothing is written."""

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
ForceOption = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="allow writing into a committed artifact folder (under artifacts/) or a folder that already "
        "holds a finished artifact/report (manifest.json, report.md, ...): its files are overwritten",
    ),
]


def default_run_dir(config_id: str) -> Path:
    return Path("runs") / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}_{config_id}"


def _resume_dir(out: Path | None, resume: bool) -> None:
    from qa_engine.errors import ConfigError

    if resume and out is None:
        raise ConfigError("--resume needs --out: the run folder whose checkpoints to continue from")


def _guard(
    run_dir: Path, publish: Path | None, force: bool, resume: bool, checkpoints: tuple[str, ...]
) -> None:
    """Before any work: the run folder (and the --publish folder) may be written (see the module doc)."""
    from qa_engine.models.pipeline import guard_output

    guard_output(run_dir, force=force, resume=resume, checkpoints=checkpoints)
    if publish is not None:
        guard_output(publish, force=force, option="--publish")


PublishOption = Annotated[
    Path | None,
    typer.Option("--publish", help="also copy the artifact, config, report and curves (no checkpoints) here"),
]


def _stage_command(stage: str, default_config: str, doc: str):
    """`qa train <stage>` for a model stage (oracle, guardian, strategist): the same options, one body."""

    def command(
        config: ConfigOption = Path(default_config),
        set_: SetOption = None,
        device: DeviceOption = None,
        resume: ResumeOption = False,
        out: OutOption = None,
        publish: PublishOption = None,
        force: ForceOption = False,
        dry_run: DryRunOption = False,
        json_logs: JsonLogsOption = False,
    ) -> None:
        configure_logging(json_logs=json_logs)
        _single_stage(stage, config, set_, device, resume, out, dry_run, publish, force)

    command.__doc__ = doc
    command.__name__ = f"{stage}_command"
    return train_app.command(stage)(command)


oracle_command = _stage_command(
    "oracle",
    "configs/train/oracle.toml",
    "Train the Oracle (TFT) on every walk-forward fold, export the artifact, write the report.",
)


def _print_summary(title: str, summary: dict[str, str], extra: dict[str, str]) -> None:
    result = table(title, ["item", "value"])
    for key, value in {**summary, **extra}.items():
        result.add_row(key, value)
    stdout_console.print(result)


def _single_stage(
    stage: str,
    config: Path,
    set_: list[str] | None,
    device: str | None,
    resume: bool,
    out: Path | None,
    dry_run: bool,
    publish: Path | None,
    force: bool,
) -> None:
    """`qa train oracle|guardian|strategist|evaluation`: one pipeline stage from its own run config."""
    import importlib

    from qa_engine.config.loader import dump_toml
    from qa_engine.config.loader import load_config
    from qa_engine.models import pipeline

    _resume_dir(out, resume)
    module_name, _, class_name = pipeline.STAGE_CONFIG_TYPES[stage].partition(":")
    model = getattr(importlib.import_module(module_name), class_name)
    run_config = load_config(model, config, set_)
    if stage != "evaluation":
        run_config = pipeline.with_device(run_config, device)
    if dry_run:
        typer.echo(dump_toml(run_config), nl=False)
        return
    runner = pipeline.STAGES[stage]
    assert runner is not None
    run_dir = out or default_run_dir(run_config.id)
    _guard(run_dir, publish, force, resume, pipeline.CHECKPOINTS[stage])
    result = runner(config, list(set_ or []), run_dir, device, resume)
    extra: dict[str, str] = {}
    if (run_dir / "report.md").exists():
        extra["report"] = str(run_dir / "report.md")
    if publish is not None:
        pipeline.publish(run_dir, publish, pipeline.PUBLISHED_FILES[stage])
        extra["published to"] = str(publish)
    _print_summary(f"{stage.capitalize()} {run_config.id} -> {run_dir}", result.summary, extra)


guardian_command = _stage_command(
    "guardian",
    "configs/train/guardian.toml",
    "Train the Guardian (contrastive VAE regimes) on every fold; artifact/, regimes report (test ranges).",
)
strategist_command = _stage_command(
    "strategist",
    "configs/train/strategist.toml",
    "Train the Strategist (Decision Transformer) on its fold; artifact/, out-of-sample rollouts, report.",
)


@train_app.command("evaluation")
def evaluation_command(
    config: ConfigOption = Path("configs/train/evaluation.toml"),
    set_: SetOption = None,
    out: OutOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
    json_logs: JsonLogsOption = False,
) -> None:
    """Evaluate trained Oracle / Guardian / Strategist artifacts on their common out-of-sample test range
    (nothing is trained): one report (Markdown, JSON, plots) in a fresh runs/<utc>_<config-id>/ folder
    (the committed one, artifacts/trinity, only with --out artifacts/trinity --overwrite)."""
    configure_logging(json_logs=json_logs)
    _single_stage("evaluation", config, set_, None, False, out, dry_run, None, force)


@train_app.command("all")
def all_command(
    config: ConfigOption = Path("configs/train/trinity.toml"),
    device: DeviceOption = None,
    resume: ResumeOption = False,
    out: OutOption = None,
    stages: Annotated[
        str | None,
        typer.Option(
            "--stages",
            help="comma-separated stages to run, e.g. 'evaluation' to re-evaluate the stage folders already "
            "in --out (default: all)",
        ),
    ] = None,
    force: ForceOption = False,
    json_logs: JsonLogsOption = False,
) -> None:
    """Guardian -> Oracle -> Strategist -> evaluation, each in <out>/<stage>/, then a summary table."""
    configure_logging(json_logs=json_logs)
    _resume_dir(out, resume)
    from qa_engine.config.loader import load_config
    from qa_engine.errors import ConfigError
    from qa_engine.models import pipeline
    from qa_engine.models.pipeline import StageFailed
    from qa_engine.models.pipeline import TrinityConfig
    from qa_engine.models.pipeline import parse_stages

    selected = parse_stages(stages)
    trinity = load_config(TrinityConfig, config)
    if stages is not None and out is None:
        raise ConfigError("--stages needs --out: the run folder whose stage folders to use")
    run_dir = out or default_run_dir(trinity.id)
    written = tuple(stage for stage in selected if getattr(trinity, stage) is not None)
    checkpoints = tuple(f"{stage}/{pattern}" for stage in written for pattern in pipeline.CHECKPOINTS[stage])
    pipeline.guard_output(run_dir, force=force, resume=resume, checkpoints=checkpoints, written=written)
    try:
        rows = pipeline.run_pipeline(trinity, run_dir, selected, device, resume)
    except StageFailed as failure:
        _print_stage_rows(trinity.id, run_dir, failure.rows)
        raise
    _print_stage_rows(trinity.id, run_dir, rows)
    missing = [stage for stage, status, _ in rows if status == "NOT AVAILABLE YET"]
    if missing:
        stdout_console.print(f"Stages not available yet: {', '.join(missing)}.")


def _print_stage_rows(config_id: str, run_dir: Path, rows: list[tuple[str, str, str]]) -> None:
    summary = table(f"qa train all ({config_id}) -> {run_dir}", ["stage", "status", "details"])
    for row in rows:
        summary.add_row(*row)
    stdout_console.print(summary)


# ---- baselines (XGBoost / LSTM / MLP classifiers; qa_engine.models.baselines.train) -------------


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
    force: ForceOption = False,
    dry_run: DryRunOption = False,
    json_logs: JsonLogsOption = False,
) -> None:
    """Train the baselines on every walk-forward fold; out-of-sample report; ONNX artifacts."""
    configure_logging(json_logs=json_logs)
    _resume_dir(out, resume)
    from qa_engine.config.loader import dump_toml
    from qa_engine.config.loader import load_config
    from qa_engine.models.baselines.train import BaselinesTrainConfig
    from qa_engine.models.pipeline import with_device

    run_config = with_device(load_config(BaselinesTrainConfig, config, set_), device)
    if dry_run:
        typer.echo(dump_toml(run_config), nl=False)
        return
    from qa_engine.models.baselines.train import train_baselines
    from qa_engine.models.pipeline import CHECKPOINTS

    run_dir = out or default_run_dir(run_config.id)
    _guard(run_dir, publish, force, resume, CHECKPOINTS["baselines"])
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
