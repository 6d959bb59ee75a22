"""Sweep configs: a base backtest config, a search space, optional symbols and walk-forward folds.

id = "ema-cross-grid"
base = "configs/backtest/default.toml"      # relative to this file's folder, else the working dir
metric = "sharpe_ratio"                     # what "best" means (PerformanceMetrics field)

[search]
method = "grid"                             # grid | random | tpe (Optuna)
[[search.params]]
path = "strategies.0.params.fast_ema_period"  # a `--set` path into the base config
values = [6, 9, 12]
[[search.params]]
path = "strategies.0.params.slow_ema_period"
low = 20
high = 40
step = 10                                   # grid over a range needs a step; random / tpe do not

[walk_forward]                              # optional: choose on train windows, report on test ones
train_days = 14
test_days = 7
"""

from __future__ import annotations

import math
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import field_validator
from pydantic import model_validator

# PerformanceMetrics fields a sweep may rank by, and which way is better
METRICS: dict[str, str] = {
    "sharpe_ratio": "maximize",
    "sortino_ratio": "maximize",
    "calmar_ratio": "maximize",
    "total_return_pct": "maximize",
    "annualised_return_pct": "maximize",
    "profit_factor": "maximize",
    "final_equity": "maximize",
    "max_drawdown_pct": "minimize",
}
Scalar = int | float | str | bool


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParamSpace(_Model):
    path: str = Field(
        description="`--set` path into the base config, e.g. strategies.0.params.fast_ema_period"
    )
    name: str | None = Field(None, description="short column name (default: the path's last part)")
    values: list[Scalar] | None = Field(None, min_length=1, description="the values to try (any method)")
    low: float | None = None
    high: float | None = None
    step: float | None = Field(None, gt=0, description="grid spacing of low..high (needed by grid)")
    log: bool = Field(False, description="random / tpe: sample low..high on a log scale")
    integer: bool | None = Field(None, description="default: true when low, high and step are whole")

    @model_validator(mode="after")
    def _check(self) -> ParamSpace:
        ranged = self.low is not None or self.high is not None
        if (self.values is None) == (not ranged):
            raise ValueError(f"{self.path}: give either values = [...] or low and high")
        if ranged and (self.low is None or self.high is None or self.low > self.high):
            raise ValueError(f"{self.path}: low and high are both needed, low <= high")
        if self.log and ranged and self.low <= 0:
            raise ValueError(f"{self.path}: log = true needs low > 0")
        return self

    @property
    def label(self) -> str:
        return self.name or self.path.rsplit(".", 1)[-1]

    @property
    def is_integer(self) -> bool:
        if self.integer is not None:
            return self.integer
        parts = [self.low, self.high] + ([self.step] if self.step is not None else [])
        return all(p is not None and float(p).is_integer() for p in parts)

    def grid(self) -> list[Scalar]:
        if self.values is not None:
            return list(self.values)
        if self.step is None:
            raise ValueError(f"{self.path}: a grid over low..high needs a step")
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        points = [self.low + i * self.step for i in range(count)]
        return [round(p) for p in points] if self.is_integer else [round(p, 12) for p in points]


class SearchConfig(_Model):
    method: Literal["grid", "random", "tpe"] = "grid"
    trials: int | None = Field(None, ge=1, description="random / tpe: trials per window (grid: all points)")
    seed: int = 42
    params: list[ParamSpace] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        if self.method != "grid" and self.trials is None:
            raise ValueError(f"search.method = '{self.method}' needs search.trials")
        labels = [p.label for p in self.params]
        if len(set(labels)) != len(labels):
            raise ValueError(f"two parameters share a name: {labels}; set `name` on one")
        if self.method == "grid":
            for param in self.params:
                param.grid()  # raises for a range without a step
        return self


class WalkForwardConfig(_Model):
    train_days: int = Field(ge=1, description="each fold chooses its parameters on this many days")
    test_days: int = Field(ge=1, description="... and is reported on the next this many days")
    step_days: int | None = Field(
        None, ge=1, description="fold start to next fold start (default: test_days)"
    )

    def folds(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, datetime]]:
        """(train start, train end = test start, test end) of each fold inside start..end."""
        step = timedelta(days=self.step_days or self.test_days)
        train, test = timedelta(days=self.train_days), timedelta(days=self.test_days)
        folds, at = [], start
        while at + train + test <= end:
            folds.append((at, at + train, at + train + test))
            at += step
        return folds


class SweepConfig(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$", description="names the sweep folder (resume key)")
    description: str = ""
    base: Path = Field(description="the backtest config every trial starts from")
    set: list[str] = Field(default_factory=list, description="`--set` overrides applied to the base first")
    metric: str = Field("sharpe_ratio", description=f"what ranks trials: {', '.join(METRICS)}")
    search: SearchConfig
    symbols: list[str] | None = Field(
        None, description="instrument ids: each replaces the base's single instrument (bars and params)"
    )
    walk_forward: WalkForwardConfig | None = None
    output: Path | str = Field(
        Path("runs/sweeps"),
        description="parent of the sweep folder <output>/<id>/: a folder or s3://bucket/prefix",
    )

    @field_validator("output", mode="before")
    @classmethod
    def _output(cls, value: Any) -> Path | str:
        from qa_engine.data.location import parse_catalog

        return parse_catalog(value)  # the same forms as a catalog: a folder, file:///..., s3://...

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        if self.metric not in METRICS:
            raise ValueError(f"metric '{self.metric}': choose one of {', '.join(METRICS)}")
        return self

    @property
    def maximize(self) -> bool:
        return METRICS[self.metric] == "maximize"


def resolve_base(sweep: SweepConfig, sweep_file: Path) -> Path:
    """The base config path: relative to the sweep file's folder when it exists there, else as given."""
    beside = sweep_file.parent / sweep.base
    return beside if not sweep.base.is_absolute() and beside.is_file() else sweep.base


def sweep_folder(sweep: SweepConfig) -> Path | str:
    """<output>/<id>: a Path, or a URI under an s3:// output."""
    from qa_engine.data.location import join

    return join(sweep.output, sweep.id)
