"""`qa train all`: the training stages in order (Guardian -> Oracle -> Strategist -> evaluation).

A stage is a function `(config_path, overrides, run_dir, device, resume) -> StageResult`, registered in
`STAGES` under its name; `None` marks a stage that is not implemented yet. To add a stage, write its
runner (next to `run_oracle_stage`) and put it in `STAGES`. The trinity config names one run config
per stage; `qa train all` runs the available ones in `STAGE_ORDER` and lists the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

StageName = Literal["guardian", "oracle", "strategist", "evaluation"]
STAGE_ORDER: tuple[StageName, ...] = ("guardian", "oracle", "strategist", "evaluation")


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
    evaluation: Path | None = Field(None, description="run config of the joint evaluation / backtest")


@dataclass
class StageResult:
    stage: str
    run_dir: Path
    summary: dict[str, str] = field(default_factory=dict)


StageRunner = Callable[[Path, list[str], Path, str | None, bool], StageResult]


def run_oracle_stage(
    config_path: Path, overrides: list[str], run_dir: Path, device: str | None, resume: bool
) -> StageResult:
    from qa_engine.config.loader import dump_toml
    from qa_engine.config.loader import load_config
    from qa_engine.models.oracle import OracleTrainConfig
    from qa_engine.models.oracle import ensure_device
    from qa_engine.models.oracle import train_oracle

    config = ensure_device(load_config(OracleTrainConfig, config_path, overrides), device)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(dump_toml(config), encoding="utf-8")
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
            "minutes": f"{outcome.secs / 60:.1f}",
        },
    )


STAGES: dict[str, StageRunner | None] = {
    "guardian": None,  # contrastive VAE regime detector: not implemented yet
    "oracle": run_oracle_stage,
    "strategist": None,  # Decision Transformer: not implemented yet
    "evaluation": None,  # joint evaluation / backtest of the trained stack: not implemented yet
}
