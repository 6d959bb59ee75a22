"""Oracle evaluation on out-of-sample windows: pinball loss per quantile against naive baselines,
interval coverage, calibration and directional accuracy; Markdown + JSON + plots.

Only splits the model never trained on go in (each fold's test split; the manifest's validation
metrics come from the validation split, which chose the epoch). The metric functions are plain numpy
on (N, H, Q) forecasts and (N, H) realised log returns, so other forecasters reuse them.

Baselines, all fitted on the fold's training labels only:
- zero_median: median 0; other quantiles = the training labels' quantiles per horizon step;
- historical_quantiles: every quantile = the training labels' quantile per horizon step;
- persistence: the last k-bar return ln(close[t] / close[t-k]) as the median for step k, with the
  training quantiles' offsets from their median as bands;
- vol_rolling_48, vol_rolling_288, vol_ewma, garch_11: centre 0, bands scaled by a causal volatility
  forecast (rolling, RiskMetrics EWMA, GARCH(1,1) fitted on the training returns); see
  `volatility_baselines`.

The report gives the TFT's pinball skill, 1 - TFT / baseline, against every baseline (pooled and per
horizon step) and against the strongest one (the lowest pooled pinball loss of the test windows:
choosing it on the test windows favours the baselines, never the model).

Windows overlap (one per bar), so neighbouring errors are strongly correlated: counts overstate the
effective sample size. Directional accuracy is therefore also given on non-overlapping windows
(every H-th window for step H), with a binomial 95% interval.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa_engine.models.data import WindowedDataset
from qa_engine.models.data import iso
from qa_engine.models.volatility_baselines import volatility_forecasts

LEAKAGE_SUSPICION_ACCURACY = 0.60  # directional accuracy above this out of sample: hunt for leakage first


# ---- forecasts ----------------------------------------------------------------------------------


def baseline_forecasts(
    train: WindowedDataset, target: WindowedDataset, quantiles: tuple[float, ...]
) -> dict[str, np.ndarray]:
    """(N, H, Q) forecasts of the naive baselines for `target`'s windows, fitted on `train` labels."""
    train_labels = train.labels_raw[train.ends]  # (M, H)
    levels = np.quantile(train_labels, quantiles, axis=0).T  # (H, Q)
    centre = np.quantile(train_labels, 0.5, axis=0)  # (H,)
    count = len(target)
    historical = np.broadcast_to(levels, (count, *levels.shape)).copy()  # (N, H, Q)
    zero = historical.copy()
    zero[..., np.isclose(quantiles, 0.5)] = 0.0
    if 0.5 not in quantiles:  # no median among the quantiles: centre the bands on zero instead
        zero = historical - centre[None, :, None]
    past = target.past_returns[target.ends]  # (N, H)
    persistence = past[:, :, None] + (levels - centre[:, None])[None]  # (N, H, Q)
    naive = {"zero_median": zero, "historical_quantiles": historical, "persistence": persistence}
    return {**naive, **volatility_forecasts(train, target, quantiles)}


def realised_returns(dataset: WindowedDataset) -> np.ndarray:
    return dataset.labels_raw[dataset.ends]  # (N, H)


# ---- metrics ------------------------------------------------------------------------------------


def pinball(forecast: np.ndarray, realised: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """Mean pinball loss per horizon step and quantile: (N, H, Q), (N, H) -> (H, Q)."""
    q = np.asarray(quantiles)
    error = realised[..., None] - forecast  # (N, H, Q)
    return np.maximum(q * error, (q - 1.0) * error).mean(axis=0)


def coverage(forecast: np.ndarray, realised: np.ndarray, lower: int, upper: int) -> np.ndarray:
    """(H,) share of realised returns inside [quantile `lower`, quantile `upper`]."""
    inside = (realised >= forecast[..., lower]) & (realised <= forecast[..., upper])
    return inside.mean(axis=0)


def calibration(forecast: np.ndarray, realised: np.ndarray) -> np.ndarray:
    """(Q,) share of realised returns at or below each forecast quantile (ideal: the quantile level)."""
    return (realised[..., None] <= forecast).mean(axis=(0, 1))


def directional(median: np.ndarray, realised: np.ndarray, step: int, stride: int = 1) -> dict[str, Any]:
    """Sign of the median forecast vs sign of the realised return at horizon step `step` (1-based).

    Windows where either is exactly zero are left out (counted in `zero`). stride > 1 keeps every
    stride-th window (non-overlapping labels for stride >= step)."""
    predicted = median[::stride, step - 1]
    actual = realised[::stride, step - 1]
    decided = (predicted != 0) & (actual != 0)
    hits = int(np.sum(np.sign(predicted[decided]) == np.sign(actual[decided])))
    count = int(decided.sum())
    accuracy = hits / count if count else float("nan")
    half_width = 1.96 * math.sqrt(accuracy * (1 - accuracy) / count) if count else float("nan")
    up_share = float(np.mean(actual[actual != 0] > 0)) if np.any(actual != 0) else float("nan")
    return {
        "step": step,
        "stride": stride,
        "hits": hits,
        "count": count,
        "zero": int((~decided).sum()),
        "accuracy": accuracy,
        "ci95": [accuracy - half_width, accuracy + half_width],
        "up_share": up_share,
    }


def summarise(
    forecast: np.ndarray, realised: np.ndarray, quantiles: tuple[float, ...], horizon_bars: int
) -> dict[str, Any]:
    """Every metric of one forecaster on one set of windows."""
    losses = pinball(forecast, realised, quantiles)  # (H, Q)
    lower, upper = 0, len(quantiles) - 1
    median_index = int(np.argmin(np.abs(np.asarray(quantiles) - 0.5)))
    median = forecast[..., median_index]
    summary: dict[str, Any] = {
        "windows": len(realised),
        "pinball_mean": float(losses.mean()),
        "pinball_by_quantile": {
            f"{q:g}": float(v) for q, v in zip(quantiles, losses.mean(axis=0), strict=True)
        },
        "pinball_by_step": [float(v) for v in losses.mean(axis=1)],
        "band": [quantiles[lower], quantiles[upper]],
        "coverage": float(coverage(forecast, realised, lower, upper).mean()),
        "coverage_by_step": [float(v) for v in coverage(forecast, realised, lower, upper)],
        "calibration": {
            f"{q:g}": float(v) for q, v in zip(quantiles, calibration(forecast, realised), strict=True)
        },
        "directional": [
            directional(median, realised, 1),
            directional(median, realised, horizon_bars),
            directional(median, realised, horizon_bars, stride=horizon_bars),
        ],
    }
    return summary


# ---- the report ---------------------------------------------------------------------------------


@dataclass
class FoldEvaluation:
    """Test-split forecasts of one fold (model and baselines) with the realised returns."""

    fold: str
    test_range: tuple[str, str]
    forecasts: dict[str, np.ndarray]  # name -> (N, H, Q) log returns; "tft" is the model
    realised: np.ndarray  # (N, H)
    ts: np.ndarray  # (N,) window-end bar close times
    variable_importance: dict[str, float]
    training: dict[str, Any]  # epochs, best epoch, secs per epoch, ...


def evaluate_folds(
    folds: list[FoldEvaluation], quantiles: tuple[float, ...], horizon_bars: int
) -> dict[str, Any]:
    """Per-fold and pooled (all test windows of all folds) metrics of every forecaster."""
    names = list(folds[0].forecasts)
    per_fold = []
    for fold in folds:
        per_fold.append(
            {
                "fold": fold.fold,
                "test_range": list(fold.test_range),
                "training": fold.training,
                "metrics": {
                    name: summarise(forecast, fold.realised, quantiles, horizon_bars)
                    for name, forecast in fold.forecasts.items()
                },
            }
        )
    realised = np.concatenate([fold.realised for fold in folds])
    pooled = {
        name: summarise(
            np.concatenate([fold.forecasts[name] for fold in folds]), realised, quantiles, horizon_bars
        )
        for name in names
    }
    tft = pooled["tft"]["pinball_mean"]
    skill = {name: 1.0 - tft / pooled[name]["pinball_mean"] for name in names if name != "tft"}
    skill_by_step = {name: pinball_skill(pooled["tft"], pooled[name]) for name in names if name != "tft"}
    strongest = strongest_baseline(pooled)
    accuracy = pooled["tft"]["directional"][0]["accuracy"]
    importance: dict[str, float] = {}
    for fold in folds:
        for feature, weight in fold.variable_importance.items():
            importance[feature] = importance.get(feature, 0.0) + weight / len(folds)
    return {
        "quantiles": list(quantiles),
        "horizon_bars": horizon_bars,
        "forecasters": names,
        "folds": per_fold,
        "pooled": pooled,
        "tft_skill_vs_baselines": skill,
        "tft_skill_vs_baselines_by_step": skill_by_step,
        "strongest_baseline": strongest,
        "tft_skill_vs_strongest_baseline": skill[strongest],
        "tft_skill_vs_strongest_baseline_by_step": skill_by_step[strongest],
        "leakage_suspected": bool(accuracy > LEAKAGE_SUSPICION_ACCURACY),
        "variable_importance": dict(sorted(importance.items(), key=lambda item: -item[1])),
    }


def strongest_baseline(pooled: dict[str, Any], model: str = "tft") -> str:
    """The baseline with the lowest pooled mean pinball loss (ties: the first listed)."""
    baselines = [name for name in pooled if name != model]
    return min(baselines, key=lambda name: pooled[name]["pinball_mean"])


def pinball_skill(model: dict[str, Any], baseline: dict[str, Any]) -> list[float]:
    """(H,) 1 - model / baseline pinball loss per horizon step, from two `summarise` results."""
    return [
        1.0 - m / b if b > 0 else float("nan")
        for m, b in zip(model["pinball_by_step"], baseline["pinball_by_step"], strict=True)
    ]


def strongest_baseline_line(report: dict[str, Any]) -> str:
    """'Skill against the strongest baseline (garch_11): +1.23% pinball' from a report (or its JSON)."""
    name, skill = report["strongest_baseline"], report["tft_skill_vs_strongest_baseline"]
    return f"Skill against the strongest baseline ({name}): {skill:+.2%} pinball"


def _fmt(value: float, digits: int = 3) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
    )


def render_markdown(report: dict[str, Any], header: str) -> str:
    quantiles = report["quantiles"]
    names = report["forecasters"]
    horizon = report["horizon_bars"]
    lines = [header, ""]
    lines.append("## Pooled out-of-sample results (every fold's test split)")
    lines.append("")
    pooled = report["pooled"]
    lines.append(
        "Pinball loss in basis points of log return (lower is better); band = "
        f"{quantiles[0]:g}-{quantiles[-1]:g} quantiles, nominal coverage {quantiles[-1] - quantiles[0]:.0%}; "
        f"windows: {pooled['tft']['windows']:,}."
    )
    lines.append("")
    head = [
        "forecaster",
        *(f"pinball q{q:g} (bp)" for q in quantiles),
        "pinball mean (bp)",
        "coverage",
        "direction h=1",
        f"direction h={horizon} (non-overlapping)",
    ]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for name in names:
        metrics = pooled[name]
        d1, _, dh = metrics["directional"]
        row = [
            name,
            *(_fmt(metrics["pinball_by_quantile"][f"{q:g}"] * 1e4, 3) for q in quantiles),
            _fmt(metrics["pinball_mean"] * 1e4, 3),
            _fmt(metrics["coverage"], 3),
            f"{_fmt(d1['accuracy'])} ({d1['hits']:,}/{d1['count']:,})"
            if d1["count"]
            else "n/a (median is 0)",
            f"{_fmt(dh['accuracy'])} ({dh['hits']:,}/{dh['count']:,})"
            if dh["count"]
            else "n/a (median is 0)",
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    skill = report["tft_skill_vs_baselines"]
    lines.append(
        "TFT pinball skill (1 - TFT / baseline; > 0 means the TFT is better): "
        + ", ".join(f"{name} {value:+.2%}" for name, value in skill.items())
        + "."
    )
    lines.append("")
    by_step = report["tft_skill_vs_strongest_baseline_by_step"]
    lines.append(
        f"**{strongest_baseline_line(report)}** (pooled); per horizon step 1..{horizon}: "
        + ", ".join(f"{value:+.1%}" for value in by_step)
        + "."
    )
    lines.append("")
    lines.append("TFT pinball skill per horizon step against every baseline (1 - TFT / baseline):")
    lines.append("")
    lines.append("| baseline | " + " | ".join(f"h={k}" for k in range(1, horizon + 1)) + " | pooled |")
    lines.append("|" + "---|" * (horizon + 2))
    for name, values in report["tft_skill_vs_baselines_by_step"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:+.1%}" for v in values) + f" | {skill[name]:+.2%} |")
    lines.append("")
    tft_directions = pooled["tft"]["directional"]
    d1, _, dh = tft_directions
    lines.append(
        f"TFT median direction: h=1 {_fmt(d1['accuracy'])} "
        f"(95% CI {_fmt(d1['ci95'][0])}-{_fmt(d1['ci95'][1])}, up share {_fmt(d1['up_share'])}); "
        f"h={horizon} on non-overlapping windows {_fmt(dh['accuracy'])} "
        f"(95% CI {_fmt(dh['ci95'][0])}-{_fmt(dh['ci95'][1])}, n={dh['count']:,}, "
        f"up share {_fmt(dh['up_share'])})."
    )
    calibration = pooled["tft"]["calibration"]
    lines.append(
        "TFT calibration (share of realised returns at or below each quantile): "
        + ", ".join(f"q{key}: {value:.3f}" for key, value in calibration.items())
        + "."
    )
    if report["leakage_suspected"]:
        lines.append("")
        lines.append(
            f"**Warning: directional accuracy above {LEAKAGE_SUSPICION_ACCURACY:.0%} out of sample. On 5m "
            "returns this almost always means leakage; do not trust these numbers before finding its cause.**"
        )
    lines.append("")
    lines.append("## Per fold")
    lines.append("")
    head = [
        "fold",
        "test range (bar closes, UTC)",
        "windows",
        "epochs (best)",
        "secs/epoch (wall / CPU)",
        *(f"{name} pinball (bp)" for name in names),
        "TFT coverage",
    ]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for fold in report["folds"]:
        training = fold["training"]
        metrics = fold["metrics"]
        row = [
            fold["fold"],
            f"{fold['test_range'][0]} .. {fold['test_range'][1]}",
            f"{metrics['tft']['windows']:,}",
            f"{training.get('epochs', 'n/a')} ({training.get('best_epoch', 'n/a')})",
            f"{_fmt(training.get('secs_per_epoch', float('nan')), 1)} / "
            f"{_fmt(training.get('cpu_secs_per_epoch', float('nan')), 1)}",
            *(_fmt(metrics[name]["pinball_mean"] * 1e4, 3) for name in names),
            _fmt(metrics["tft"]["coverage"], 3),
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("## Variable selection (mean weight over test windows and encoder steps, top 12)")
    lines.append("")
    top = list(report["variable_importance"].items())[:12]
    lines.append(", ".join(f"{name} {weight:.3f}" for name, weight in top) + ".")
    lines.append("")
    lines.append(
        "Windows overlap (one per bar), so the counts overstate the effective sample size; the "
        "non-overlapping h-step figures are the honest ones for direction."
    )
    return "\n".join(lines) + "\n"


def write_plots(report: dict[str, Any], folds: list[FoldEvaluation], folder: Path) -> list[str]:
    """pinball_by_step.png, coverage_by_step.png, calibration.png, forecast_sample.png; returns names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    pooled = report["pooled"]
    steps = np.arange(1, report["horizon_bars"] + 1)
    written = []

    figure, axis = plt.subplots(figsize=(7, 4))
    for name in report["forecasters"]:
        axis.plot(steps, np.asarray(pooled[name]["pinball_by_step"]) * 1e4, marker="o", label=name)
    axis.set_xlabel("horizon step (bars ahead)")
    axis.set_ylabel("mean pinball loss (bp)")
    axis.set_title("Out-of-sample pinball loss by horizon step (lower is better)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(folder / "pinball_by_step.png", dpi=80)
    plt.close(figure)
    written.append("pinball_by_step.png")

    figure, axis = plt.subplots(figsize=(7, 4))
    for name in report["forecasters"]:
        axis.plot(steps, pooled[name]["coverage_by_step"], marker="o", label=name)
    band = pooled["tft"]["band"]
    axis.axhline(band[1] - band[0], color="black", linestyle=":", label="nominal")
    axis.set_xlabel("horizon step (bars ahead)")
    axis.set_ylabel(f"share inside the q{band[0]:g}-q{band[1]:g} band")
    axis.set_title("Out-of-sample interval coverage")
    axis.legend()
    figure.tight_layout()
    figure.savefig(folder / "coverage_by_step.png", dpi=80)
    plt.close(figure)
    written.append("coverage_by_step.png")

    figure, axis = plt.subplots(figsize=(5, 5))
    quantiles = report["quantiles"]
    for name in report["forecasters"]:
        axis.plot(quantiles, list(pooled[name]["calibration"].values()), marker="o", label=name)
    axis.plot([0, 1], [0, 1], color="black", linestyle=":")
    axis.set_xlabel("quantile level")
    axis.set_ylabel("share of realised returns at or below")
    axis.set_title("Calibration (out of sample)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(folder / "calibration.png", dpi=80)
    plt.close(figure)
    written.append("calibration.png")

    last = folds[-1]
    step = report["horizon_bars"]
    sample = slice(0, min(len(last.realised), 288 * 2))  # two days of 5m windows
    times = (last.ts[sample] - last.ts[sample][0]) / 3.6e12
    tft = last.forecasts["tft"][sample, step - 1] * 1e4  # (n, Q)
    figure, axis = plt.subplots(figsize=(9, 4))
    axis.fill_between(
        times, tft[:, 0], tft[:, -1], alpha=0.3, label=f"TFT q{quantiles[0]:g}-q{quantiles[-1]:g}"
    )
    axis.plot(times, tft[:, len(quantiles) // 2], label=f"TFT q{quantiles[len(quantiles) // 2]:g}")
    axis.plot(times, last.realised[sample, step - 1] * 1e4, color="black", linewidth=0.8, label="realised")
    axis.set_xlabel(f"hours after {iso(int(last.ts[0]))}")
    axis.set_ylabel(f"{step}-bar log return (bp)")
    axis.set_title(f"Fold {last.fold}: first two days of the test split, step {step}")
    axis.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(folder / "forecast_sample.png", dpi=80)
    plt.close(figure)
    written.append("forecast_sample.png")
    return written


def write_report(
    report: dict[str, Any], folds: list[FoldEvaluation], folder: Path, header: str, extra: dict[str, Any]
) -> None:
    """report.md, report.json and the plots into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = write_plots(report, folds, folder / "plots")
    markdown = render_markdown(report, header)
    markdown += "\nPlots: " + ", ".join(f"[{name}](plots/{name})" for name in plots) + "\n"
    (folder / "report.md").write_text(markdown, encoding="utf-8")
    (folder / "report.json").write_text(json.dumps({**report, **extra}, indent=2) + "\n", encoding="utf-8")


def markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a markdown table: header, separator, one line per row of already formatted cells
    (the tables of the baselines' and the Guardian's report.md, spelled once)."""
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
