"""`qa train all`: the training stages in order (Guardian -> Oracle -> Strategist -> evaluation).

A stage is a function `(config_path, overrides, run_dir, device, resume) -> StageResult`, registered in
`STAGES` under its name, with the run-config model it reads in `STAGE_CONFIG_TYPES` ("module:Class",
so `qa train all` validates every stage's config before it trains anything). The trinity config names
one run config per stage; `run_pipeline` runs the named ones in `STAGE_ORDER`, each in its own
subfolder `<run>/<stage>/`, and the evaluation stage reads the other stages' folders of the same run
(for a stage the trinity config leaves out, the evaluation config's own artifact path is used).

Stage folders:
    guardian/    config.toml, artifact/{model.onnx,manifest.json}, regimes.{json,md}, plots/, folds/<fold>/
    oracle/      config.toml, model.onnx, manifest.json, report.{md,json}, plots/, folds/<fold>/
    strategist/  config.toml, artifact/{model.onnx,manifest.json}, report.{md,json}, out_of_sample.json, ...
    evaluation/  config.toml, report.{md,json}, plots/   (nothing is trained: it reads the artifacts)
"""

from __future__ import annotations

import importlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

from qa_engine.errors import ConfigError
from qa_engine.errors import QAError

StageName = Literal["guardian", "oracle", "strategist", "evaluation"]
STAGE_ORDER: tuple[StageName, ...] = ("guardian", "oracle", "strategist", "evaluation")
MODEL_STAGES: tuple[StageName, ...] = ("guardian", "oracle", "strategist")


class TrinityConfig(BaseModel):
    """configs/train/trinity.toml: one run config per stage (a stage left out is skipped)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field("trinity", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    guardian: Path | None = Field(None, description="run config of the Guardian (contrastive VAE)")
    oracle: Path | None = Field(
        None, description="run config of the Oracle (TFT), e.g. configs/train/oracle.toml"
    )
    strategist: Path | None = Field(None, description="run config of the Strategist (Decision Transformer)")
    evaluation: Path | None = Field(
        None, description="run config of the joint out-of-sample evaluation of the trained stack"
    )


@dataclass
class StageResult:
    stage: str
    run_dir: Path
    summary: dict[str, str] = field(default_factory=dict)
    secs: float = 0.0


StageRunner = Callable[[Path, list[str], Path, str | None, bool], StageResult]


class StageFailed(QAError):
    """A stage of `qa train all` failed; the exit code is its cause's (2 for bad config or data)."""

    def __init__(self, stage: str, cause: BaseException, rows: list[tuple[str, str, str]]) -> None:
        kind = "" if isinstance(cause, QAError) else f"{type(cause).__name__}: "
        super().__init__(f"stage '{stage}' failed: {kind}{cause}")
        self.stage = stage
        self.cause = cause
        self.rows = rows
        self.exit_code = cause.exit_code if isinstance(cause, QAError) else 1


def with_device(config: Any, device: str | None) -> Any:
    """A run config with its `trainer.device` replaced (the CLI's --device); None keeps the config's."""
    if device is None:
        return config
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got {device}")
    trainer = type(config.trainer)(**{**asdict(config.trainer), "device": device})
    return config.model_copy(update={"trainer": trainer})


def _write_config(config: BaseModel, run_dir: Path) -> None:
    from qa_engine.config.loader import dump_toml

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(dump_toml(config), encoding="utf-8")


# ---- the stages --------------------------------------------------------------------------------


def run_guardian_stage(
    config_path: Path, overrides: list[str], run_dir: Path, device: str | None, resume: bool
) -> StageResult:
    from qa_engine.config.loader import load_config
    from qa_engine.models.guardian.train import GuardianTrainConfig
    from qa_engine.models.guardian.train import train_guardian_from_config

    config = with_device(load_config(GuardianTrainConfig, config_path, overrides), device)
    _write_config(config, run_dir)
    outcome = train_guardian_from_config(config, run_dir, resume=resume)
    fold = outcome.report["folds"][outcome.report["artifact_fold"]]
    stats = fold["out_of_sample_test"]
    summary = {
        "artifact": str(run_dir / "artifact"),
        "parameters": f"{fold['parameters']:,}",
        "secs/epoch": f"{fold['secs_per_epoch']:.1f}",
        "test bars": f"{stats['bars']:,}",
        "test regime shares": " / ".join(f"{row['share']:.2f}" for row in stats["regimes"]),
        "test switches": f"{stats['switches']:,}",
    }
    for pair, entry in outcome.report.get("stability", {}).get("pairs", {}).items():
        summary[f"ARI {pair}"] = f"{entry['guardian_reported']['adjusted_rand_index']:.3f}"
    for key, item in outcome.report.get("skill_vs_strongest_baseline", {}).items():
        summary[f"{key} vs strongest baseline"] = (
            f"{item['guardian']:.3f} vs {item['baseline']:.3f} "
            f"({item['strongest_baseline']}, {item['skill']:+.0%})"
        )
    summary["minutes"] = f"{outcome.secs / 60:.1f}"
    return StageResult("guardian", run_dir, summary, outcome.secs)


def run_oracle_stage(
    config_path: Path, overrides: list[str], run_dir: Path, device: str | None, resume: bool
) -> StageResult:
    from qa_engine.config.loader import load_config
    from qa_engine.models.oracle.train import OracleTrainConfig
    from qa_engine.models.oracle.train import train_oracle

    config = with_device(load_config(OracleTrainConfig, config_path, overrides), device)
    _write_config(config, run_dir)
    outcome = train_oracle(config, run_dir, resume=resume)
    pooled = outcome.report["pooled"]
    best_baseline = min(metrics["pinball_mean"] for name, metrics in pooled.items() if name != "tft")
    return StageResult(
        "oracle",
        run_dir,
        {
            "artifact": str(run_dir / "model.onnx"),
            "test windows": f"{pooled['tft']['windows']:,}",
            "TFT pinball (bp)": f"{pooled['tft']['pinball_mean'] * 1e4:.3f}",
            "best baseline pinball (bp)": f"{best_baseline * 1e4:.3f}",
            "TFT coverage": f"{pooled['tft']['coverage']:.3f}",
            "skill vs strongest baseline": f"{outcome.report['tft_skill_vs_strongest_baseline']:+.2%} "
            f"({outcome.report['strongest_baseline']})",
            "minutes": f"{outcome.secs / 60:.1f}",
        },
        outcome.secs,
    )


def run_strategist_stage(
    config_path: Path, overrides: list[str], run_dir: Path, device: str | None, resume: bool
) -> StageResult:
    from qa_engine.config.loader import load_config
    from qa_engine.models.strategist.train import StrategistTrainConfig
    from qa_engine.models.strategist.train import train_strategist_from_config
    from qa_engine.models.strategist.train import write_strategist_report

    began = time.perf_counter()
    config = with_device(load_config(StrategistTrainConfig, config_path, overrides), device)
    _write_config(config, run_dir)
    # --resume continues from the checkpoint when there is one; a stage that never started starts fresh
    resume_here = resume and (run_dir / "checkpoints" / "last.pt").is_file()
    result = train_strategist_from_config(config, run_dir, resume=resume_here)
    secs = time.perf_counter() - began
    report = write_strategist_report(config, result, run_dir, secs)
    summary = {
        "artifact": str(run_dir / "artifact"),
        "parameters": f"{int(result.validation_metrics['parameters']):,}",
        "secs/epoch": f"{result.training.secs_per_epoch:.1f}",
        "validation acc. (last step)": f"{result.validation_metrics['validation_accuracy_last_step']:.3f}",
    }
    policies = report.get("out_of_sample", {}).get("policies", {})
    for name, values in policies.items():
        if name.startswith("decision_transformer") or name in ("always_long", "always_short"):
            summary[f"test {name.split('=')[0]} log return"] = f"{values['log_return']:+.4f}"
    summary["minutes"] = f"{secs / 60:.1f}"
    return StageResult("strategist", run_dir, summary, secs)


def run_evaluation_stage(
    config_path: Path, overrides: list[str], run_dir: Path, device: str | None, resume: bool
) -> StageResult:
    """Reads artifacts only (device and resume do not apply: nothing is trained)."""
    from qa_engine.config.loader import load_config
    from qa_engine.models.trinity_evaluation import EvaluationConfig
    from qa_engine.models.trinity_evaluation import evaluate_trinity

    began = time.perf_counter()
    config = load_config(EvaluationConfig, config_path, overrides)
    _write_config(config, run_dir)
    report = evaluate_trinity(config, run_dir)
    secs = time.perf_counter() - began
    return StageResult("evaluation", run_dir, {**report["summary"], "minutes": f"{secs / 60:.1f}"}, secs)


STAGES: dict[str, StageRunner | None] = {
    "guardian": run_guardian_stage,
    "oracle": run_oracle_stage,
    "strategist": run_strategist_stage,
    "evaluation": run_evaluation_stage,
}
STAGE_CONFIG_TYPES: dict[str, str] = {
    "guardian": "qa_engine.models.guardian.train:GuardianTrainConfig",
    "oracle": "qa_engine.models.oracle.train:OracleTrainConfig",
    "strategist": "qa_engine.models.strategist.train:StrategistTrainConfig",
    "evaluation": "qa_engine.models.trinity_evaluation:EvaluationConfig",
}


# ---- the pipeline ------------------------------------------------------------------------------


def parse_stages(text: str | None) -> tuple[StageName, ...]:
    """'guardian,evaluation' -> those stages in STAGE_ORDER; None = every stage."""
    if text is None:
        return STAGE_ORDER
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in STAGE_ORDER]
    if unknown or not names:
        raise ConfigError(f"--stages: unknown stage(s) {unknown or [text]}; valid: {', '.join(STAGE_ORDER)}")
    return tuple(stage for stage in STAGE_ORDER if stage in names)


def stage_overrides(stage: str, trinity: TrinityConfig, run_dir: Path) -> list[str]:
    """The evaluation stage reads the model stages of the same run: their folders override the
    evaluation config's artifact paths (for the stages the trinity config names)."""
    if stage != "evaluation":
        return []
    return [
        f"{name}={json.dumps(str(run_dir / name))}"
        for name in MODEL_STAGES
        if getattr(trinity, name) is not None
    ]


def validate_stage_configs(trinity: TrinityConfig, stages: tuple[StageName, ...], run_dir: Path) -> None:
    """Load every selected stage's run config before anything trains: a typo fails in a second, not
    after an hour of training."""
    from qa_engine.config.loader import load_config

    for stage in stages:
        path = getattr(trinity, stage)
        if path is None or STAGES.get(stage) is None:
            continue
        module_name, _, class_name = STAGE_CONFIG_TYPES[stage].partition(":")
        model = getattr(importlib.import_module(module_name), class_name)
        try:
            load_config(model, path, stage_overrides(stage, trinity, run_dir))
        except ConfigError as exc:
            raise ConfigError(f"stage '{stage}': {exc}") from None


def run_pipeline(
    trinity: TrinityConfig,
    run_dir: Path,
    stages: tuple[StageName, ...] = STAGE_ORDER,
    device: str | None = None,
    resume: bool = False,
) -> list[tuple[str, str, str]]:
    """Run the selected stages in order, each in `run_dir/<stage>`; returns (stage, status, details)
    rows. A failing stage raises `StageFailed` carrying the rows so far (later stages do not run)."""
    validate_stage_configs(trinity, stages, run_dir)
    rows: list[tuple[str, str, str]] = []
    timings: dict[str, float] = {}
    for stage in STAGE_ORDER:
        stage_config = getattr(trinity, stage)
        runner = STAGES[stage]
        if stage not in stages:
            rows.append((stage, "not selected", "left out by --stages"))
        elif runner is None:
            rows.append((stage, "NOT AVAILABLE YET", "not implemented yet; nothing was run"))
        elif stage_config is None:
            rows.append((stage, "skipped", "the trinity config names no run config for it"))
        else:
            try:
                result = runner(
                    stage_config, stage_overrides(stage, trinity, run_dir), run_dir / stage, device, resume
                )
            except Exception as exc:
                rows.append((stage, "FAILED", str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
                rows += [(later, "not run", "an earlier stage failed") for later in STAGE_ORDER[len(rows) :]]
                write_summary(trinity, run_dir, rows, timings)
                raise StageFailed(stage, exc, rows) from exc
            timings[stage] = result.secs
            rows.append((stage, "done", "; ".join(f"{k}: {v}" for k, v in result.summary.items())))
    write_summary(trinity, run_dir, rows, timings)
    return rows


def write_summary(
    trinity: TrinityConfig, run_dir: Path, rows: list[tuple[str, str, str]], timings: dict[str, float]
) -> None:
    """`summary.md` / `summary.json` in the run folder: every stage's status, its figures and how long it
    trained (wall seconds of this run; a stage not run here has none)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "id": trinity.id,
        "stages": [
            {"stage": stage, "status": status, "details": details, "secs": timings.get(stage)}
            for stage, status, details in rows
        ],
        "total_secs": sum(timings.values()),
    }
    (run_dir / "summary.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    lines = [
        f"# qa train all: {trinity.id}",
        "",
        "| stage | status | training time | details |",
        "|---|---|---:|---|",
    ]
    for entry in data["stages"]:
        secs = entry["secs"]
        took = "" if secs is None else f"{secs / 60:.1f} min"
        lines.append(f"| {entry['stage']} | {entry['status']} | {took} | {entry['details']} |")
    lines += ["", f"Total: {data['total_secs'] / 60:.1f} min."]
    (run_dir / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---- publishing a run folder (the committed artifacts/<model>/ folders) ---------------------------


def publish(run_dir: Path, target: Path, files: list[str]) -> list[Path]:
    """Copy the artifact (`run_dir/artifact/{model.onnx,manifest.json}`, or the run folder's own) to the
    top of `target`, plus the listed files/folders of the run (glob patterns), never checkpoints.
    Existing files in `target` (e.g. a README) stay unless overwritten by name."""
    artifact = run_dir / "artifact" if (run_dir / "artifact" / "manifest.json").is_file() else run_dir
    if not (artifact / "manifest.json").is_file():
        raise ConfigError(f"{run_dir} holds no artifact (manifest.json) to publish")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("model.onnx", "manifest.json"):
        shutil.copy2(artifact / name, target / name)
        written.append(target / name)
    for pattern in files:
        for source in sorted(run_dir.glob(pattern)):
            relative = source.relative_to(run_dir)
            if "checkpoints" in relative.parts or source.suffix == ".pt":
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(
                    source, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.pt")
                )
            else:
                shutil.copy2(source, destination)
            written.append(destination)
    return written


PUBLISHED_FILES: dict[str, list[str]] = {
    "oracle": [
        "config.toml",
        "report.md",
        "report.json",
        "plots",
        "folds/*/curves.csv",
        "folds/*/curves.png",
    ],
    "guardian": [
        "config.toml",
        "regimes.json",
        "regimes.md",
        "plots",
        "folds/*/curves.csv",
        "folds/*/curves.png",
    ],
    "strategist": [
        "config.toml",
        "report.md",
        "report.json",
        "out_of_sample.json",
        "validation_metrics.json",
        "curves.csv",
        "curves.png",
        "plots",
    ],
}


# ---- output folders: committed artifacts need --overwrite, --resume needs a checkpoint -------------

# What a finished run or a published artifact leaves at the top of its folder (glob patterns).
FINISHED_MARKERS: tuple[str, ...] = (
    "manifest.json",
    "model.onnx",
    "report.md",
    "report.json",
    "regimes.json",
    "artifact/manifest.json",
    "models/*/manifest.json",
)
# Where each command's trainer leaves the checkpoints that --resume continues from (under the run folder).
CHECKPOINTS: dict[str, tuple[str, ...]] = {
    "guardian": ("folds/*/checkpoints/last.pt",),
    "oracle": ("folds/*/checkpoints/last.pt",),
    "strategist": ("checkpoints/last.pt",),
    "evaluation": (),
    "baselines": ("folds/*/*/checkpoints/last.pt", "folds/*/xgboost/booster.json"),
}


def committed_artifact_roots() -> list[Path]:
    """The folders whose contents are committed artifacts: the repository's `artifacts/` (beside this
    package) and `./artifacts` of the working directory."""
    roots = [Path(__file__).resolve().parents[2] / "artifacts", Path.cwd().resolve() / "artifacts"]
    return list(dict.fromkeys(roots))


def _under_committed_artifacts(folder: Path) -> bool:
    resolved = folder.resolve()
    return any(resolved == root or root in resolved.parents for root in committed_artifact_roots())


def finished_outputs(folder: Path) -> list[str]:
    """The finished artifact / report files at the top of `folder` (relative paths; [] if none)."""
    if not folder.is_dir():
        return []
    return sorted(
        {str(path.relative_to(folder)) for pattern in FINISHED_MARKERS for path in folder.glob(pattern)}
    )


def find_checkpoints(run_dir: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted(path for pattern in patterns for path in run_dir.glob(pattern) if path.is_file())


def guard_output(
    folder: Path,
    *,
    force: bool,
    resume: bool = False,
    checkpoints: tuple[str, ...] = (),
    written: tuple[str, ...] = (".",),
    option: str = "--out",
) -> None:
    """Refuse (ConfigError, exit 2) before any work a command whose writes would replace committed or
    finished results, or that asks to --resume with nothing to resume from.

    - `folder` (the --out or --publish folder) under `artifacts/`: committed files; needs `force`.
    - `--resume`: `folder` must hold a checkpoint (`checkpoints`, glob patterns under `folder`).
    - Otherwise a written subfolder (`written`, relative to `folder`) that already holds a finished
      artifact or report (manifest.json, report.md, ...) needs `force`; a resumed run continues its
      own checkpoints, so its finished files may be rewritten."""
    if not force and _under_committed_artifacts(folder):
        raise ConfigError(
            f"refusing to write into {folder}: a committed artifact folder (under artifacts/); "
            f"add --overwrite to overwrite it, or pick another {option} folder"
        )
    if resume:
        if not checkpoints:
            raise ConfigError(
                f"--resume: nothing to resume in {folder}: the selected stages keep no checkpoints"
            )
        if not find_checkpoints(folder, checkpoints):
            raise ConfigError(
                f"--resume: no checkpoint in {folder} (looked for {' or '.join(checkpoints)}); "
                "leave out --resume to start afresh"
            )
        return
    if force:
        return
    for name in written:
        target = folder / name if name != "." else folder
        found = finished_outputs(target)
        if found:
            raise ConfigError(
                f"refusing to write into {target}: it already holds a finished artifact/report "
                f"({', '.join(found)}); add --overwrite to overwrite it, or pick another {option} folder"
            )
