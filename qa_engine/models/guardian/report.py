"""Guardian regime statistics: pure functions over a regime sequence (numpy, scipy, scikit-learn).

Input everywhere: `labels` (N,) regime per bar in time order and, where runs or transitions matter,
`segment_starts` (rows that follow a gap in the bars; nothing is counted across a gap).
- `regime_statistics`: per regime share of bars, realised volatility and mean return of the bar itself
  (log return of bar t, known at t), mean forward return (bar t+1, in the same gap-free segment),
  runs and their durations (mean, median, max, in bars), plus the transition matrix;
- `transition_matrix`: bar-to-bar counts and row-normalised probabilities P[i, j] = P(j at t+1 | i at t);
- `fold_stability`: two models' labels of the same bars: adjusted Rand index, raw agreement (labels
  are ordered by volatility, so equal labels should mean the same regime) and agreement after the best
  one-to-one label matching (scipy's linear_sum_assignment on the confusion matrix);
- `plot_regimes`: price coloured by regime, the regime below it (matplotlib, Agg), saved to a path.
Everything returns JSON-ready dicts (floats, ints, lists).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qa_engine.models.guardian.baseline import strongest_baseline_line
from qa_engine.models.guardian.regimes import run_bounds

BARS_PER_YEAR_5M = 365 * 24 * 12


def _segment_start_mask(count: int, segment_starts: np.ndarray | None) -> np.ndarray:
    """(N,) True at rows that start a gap-free segment (row 0 always does)."""
    mask = np.zeros(count, dtype=bool)
    if count:
        mask[0] = True
    if segment_starts is not None:
        rows = np.asarray(segment_starts, dtype=np.int64)
        mask[rows[(rows >= 0) & (rows < count)]] = True
    return mask


def run_lengths(labels: np.ndarray, segment_starts: np.ndarray | None = None) -> list[tuple[int, int]]:
    """(label, length in bars) of every maximal run, in time order; runs end at gaps."""
    return [(label, end - start) for label, start, end in run_bounds(np.asarray(labels), segment_starts)]


def transition_matrix(
    labels: np.ndarray, n_regimes: int, segment_starts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(counts, probabilities), both (K, K): row i, column j counts bars t with label i followed by a
    bar t+1 (same segment) with label j; rows of probabilities sum to 1 (a row never seen stays 0)."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.zeros((n_regimes, n_regimes), dtype=np.int64)
    if len(labels) > 1:
        follows = ~_segment_start_mask(len(labels), segment_starts)[1:]  # t+1 is in t's segment
        np.add.at(counts, (labels[:-1][follows], labels[1:][follows]), 1)
    totals = counts.sum(axis=1, keepdims=True)
    probabilities = np.divide(counts, totals, out=np.zeros_like(counts, dtype=np.float64), where=totals > 0)
    return counts, probabilities


def regime_statistics(
    labels: np.ndarray,
    log_returns: np.ndarray,
    n_regimes: int,
    segment_starts: np.ndarray | None = None,
    bars_per_year: float = BARS_PER_YEAR_5M,
) -> dict[str, Any]:
    """Per-regime facts of a labelled bar sequence; log_returns (N,) = ln(close[t] / close[t-1])."""
    labels = np.asarray(labels, dtype=np.int64)
    returns = np.asarray(log_returns, dtype=np.float64)
    count = len(labels)
    if returns.shape != (count,):
        raise ValueError(f"need one log return per label, got {returns.shape} for {count} labels")
    starts = _segment_start_mask(count, segment_starts)
    forward = np.full(count, np.nan)
    if count > 1:
        forward[:-1] = np.where(starts[1:], np.nan, returns[1:])  # bar t+1's return, same segment only
    runs = run_lengths(labels, segment_starts)
    counts, probabilities = transition_matrix(labels, n_regimes, segment_starts)
    regimes = []
    for k in range(n_regimes):
        mine = labels == k
        durations = np.array([length for label, length in runs if label == k], dtype=np.float64)
        ahead = forward[mine & np.isfinite(forward)]
        bars = int(mine.sum())
        volatility = float(returns[mine].std()) if bars else float("nan")
        regimes.append(
            {
                "regime": k,
                "bars": bars,
                "share": bars / count if count else float("nan"),
                "volatility_per_bar": volatility,
                "volatility_annualised": volatility * float(np.sqrt(bars_per_year)),
                "mean_return_per_bar_bps": float(returns[mine].mean() * 1e4) if bars else float("nan"),
                "mean_forward_return_per_bar_bps": float(ahead.mean() * 1e4) if len(ahead) else float("nan"),
                "runs": len(durations),
                "mean_duration_bars": float(durations.mean()) if len(durations) else float("nan"),
                "median_duration_bars": float(np.median(durations)) if len(durations) else float("nan"),
                "max_duration_bars": int(durations.max()) if len(durations) else 0,
            }
        )
    return {
        "bars": count,
        "regimes": regimes,
        "transition_counts": counts.tolist(),
        "transition_matrix": probabilities.tolist(),
        "switches": int(sum(counts[i, j] for i in range(n_regimes) for j in range(n_regimes) if i != j)),
        "runs": len(runs),
    }


def fold_stability(labels_a: np.ndarray, labels_b: np.ndarray, n_regimes: int) -> dict[str, Any]:
    """How alike two labellings of the same bars are (e.g. models refitted on different folds)."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import adjusted_rand_score

    a = np.asarray(labels_a, dtype=np.int64)
    b = np.asarray(labels_b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need two equal-length, non-empty label sequences, got {a.shape} and {b.shape}")
    confusion = np.zeros((n_regimes, n_regimes), dtype=np.int64)
    np.add.at(confusion, (a, b), 1)
    rows, columns = linear_sum_assignment(-confusion)
    return {
        "bars": len(a),
        "adjusted_rand_index": float(adjusted_rand_score(a, b)),
        "agreement": float(np.mean(a == b)),
        "matched_agreement": float(confusion[rows, columns].sum() / len(a)),
        "matching": {int(r): int(c) for r, c in zip(rows, columns, strict=True)},
        "confusion": confusion.tolist(),
    }


def plot_regimes(
    ts_ns: np.ndarray,
    close: np.ndarray,
    labels: np.ndarray,
    path: Path,
    title: str,
    n_regimes: int,
    segment_starts: np.ndarray | None = None,
    risk_scale: np.ndarray | None = None,
) -> Path:
    """Close price coloured by regime (0 = calmest, blue .. most volatile, red), and the regime below it;
    nothing is drawn across a gap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    labels = np.asarray(labels, dtype=np.int64)
    times = np.asarray(ts_ns, dtype="datetime64[ns]")
    x = matplotlib.dates.date2num(times)
    y = np.asarray(close, dtype=np.float64)
    colours = matplotlib.colormaps["coolwarm"](np.linspace(0.0, 1.0, n_regimes))
    follows = ~_segment_start_mask(len(labels), segment_starts)[1:]
    points = np.column_stack([x, y])
    segments = np.stack([points[:-1], points[1:]], axis=1)[follows]  # (S, 2, 2)
    figure, (price_axis, regime_axis) = plt.subplots(
        2, 1, figsize=(12, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    price_axis.add_collection(LineCollection(segments, colors=colours[labels[1:][follows]], linewidths=0.6))
    price_axis.set_xlim(x.min(), x.max())
    price_axis.set_ylim(y.min() * 0.98, y.max() * 1.02)
    price_axis.set_ylabel("close")
    price_axis.set_title(title)
    names = [
        f"regime {k}" + ("" if risk_scale is None else f" (risk {float(risk_scale[k]):.2f})")
        for k in range(n_regimes)
    ]
    handles = [Line2D([0], [0], color=colours[k], linewidth=2) for k in range(n_regimes)]
    price_axis.legend(handles, names, loc="upper left", fontsize=8)
    regime_axis.scatter(x, labels, c=colours[labels], s=0.5, marker="|")
    regime_axis.set_yticks(range(n_regimes))
    regime_axis.set_ylabel("regime")
    regime_axis.xaxis_date()
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# ---- reports ---------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Nested dicts/lists with NaN and inf floats as None (strict JSON), numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _number(value: Any, digits: int) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and not np.isfinite(value))
        else f"{value:.{digits}f}"
    )


def regime_table(stats: dict[str, Any]) -> list[str]:
    """Markdown rows: one per regime of a `regime_statistics` result (plus `risk_scale` if present)."""
    from qa_engine.models.evaluation import markdown_table

    risk = stats.get("risk_scale")
    head = ["regime", "share", "bars", "vol. ann.", "mean return (bp/bar)", "mean fwd return (bp/bar)",
            "runs", "mean / median / max run (bars)", "risk scale"]  # fmt: skip
    rows = [
        [
            f"{row['regime']}",
            f"{_number(row['share'] * 100, 1)}%",
            f"{row['bars']:,}",
            f"{_number(row['volatility_annualised'] * 100, 0)}%",
            _number(row["mean_return_per_bar_bps"], 2),
            _number(row["mean_forward_return_per_bar_bps"], 2),
            f"{row['runs']:,}",
            f"{_number(row['mean_duration_bars'], 0)} / {_number(row['median_duration_bars'], 0)} / "
            f"{row['max_duration_bars']:,}",
            "" if risk is None else _number(risk[row["regime"]], 2),
        ]
        for row in stats["regimes"]
    ]
    return markdown_table(head, rows)


def stability_lines(stability: dict[str, Any]) -> list[str]:
    """Markdown lines of `train.fold_stability_report`."""
    lines = [
        f"Bars of {stability['range'][0]} .. {stability['range'][1]} labelled by each fold's model "
        f"(out of sample for every model compared), against fold {stability['reference_fold']}:",
        "",
        "| pair | labels | adjusted Rand index | agreement | agreement after best matching |",
        "|---|---|---|---|---|",
    ]
    for pair, entry in stability["pairs"].items():
        for label, name in (
            ("Guardian, after persistence", "guardian_reported"),
            ("Guardian, raw (nearest centroid)", "guardian_raw"),
            ("naive: realised_volatility_20 quartiles", "volatility_quartiles_baseline"),
            ("naive: window realised-volatility quartiles", "rv_quartiles_baseline"),
        ):
            if name in entry:
                item = entry[name]
                lines.append(
                    f"| {pair} | {label} | {item['adjusted_rand_index']:.3f} | {item['agreement']:.3f} | "
                    f"{item['matched_agreement']:.3f} |"
                )
    return lines


def separation_lines(separation: dict[str, Any]) -> list[str]:
    """Markdown: how well each labelling separates the future realised volatility (`fold_separation`)."""
    horizon = next(iter(separation.values()))["horizon_bars"]
    lines = [
        f"Separation of the realised volatility of the next {horizon} bars (eta^2 of its log explained by "
        "the label; spread = highest / lowest regime mean):",
        "",
        "| labelling | bars | eta^2 | spread | mean future vol per regime (bp/bar) |",
        "|---|---|---|---|---|",
    ]
    for name, item in separation.items():
        means = " / ".join(_number(value * 1e4, 2) for value in item["mean_future_vol_by_regime"])
        lines.append(
            f"| {name} | {item['bars']:,} | {_number(item['eta_squared'], 3)} | "
            f"{_number(item['spread'], 2)} | {means} |"
        )
    return [*lines, ""]


def render_regime_markdown(report: dict[str, Any]) -> str:
    """regimes.md of a Guardian run (`train.train_guardian_from_config`)."""
    lines = [
        f"# Guardian regimes: {report['id']}",
        "",
        report.get("description") or "",
        "",
        f"Contrastive VAE + k-means regimes on {report['source']} ({report['interval']} bars), feature set "
        f"'{report['feature_set']}'. One model per walk-forward fold; every table below is on the fold's "
        "TEST range, which its model never saw in training, early stopping or the k-means fit. Regime 0 is "
        "the calmest (labels ordered by the median volatility of the training windows). Returns are 1-bar "
        "log returns: 'mean return' is bar t's own (known at t), 'mean fwd return' bar t+1's.",
        "",
    ]
    for name, fold in report["folds"].items():
        stats = fold["out_of_sample_test"]
        danger = (
            "set to risk 0 (dangerous on the training fold)"
            if fold["regime_model"]["dangerous"]
            else "not flagged dangerous"
        )
        diagonal = [row[i] for i, row in enumerate(stats["transition_matrix"])]
        lines += [
            f"## Fold {name}",
            "",
            f"Train {fold['train'][0]} .. {fold['train'][1]}, validation (early stopping) .. "
            f"{fold['validation'][1]}, test {fold['test'][0]} .. {fold['test'][1]}. Windows train / "
            f"validation / test: {fold['windows'].get('train', 0):,} / "
            f"{fold['windows'].get('validation', 0):,} / "
            f"{fold['windows'].get('test', 0):,}. Epochs {fold['epochs_run']} (best {fold['best_epoch']}), "
            f"{_number(fold['secs_per_epoch'], 1)} s per epoch; {fold['parameters']:,} parameters; "
            f"validation silhouette {_number(fold['validation_metrics'].get('validation_silhouette'), 3)}; "
            f"most volatile regime {danger}.",
            "",
            f"Out of sample, {stats['range'][0]} .. {stats['range'][1]}, {stats['bars']:,} bars:",
            "",
            *regime_table(stats),
            "",
            f"Switches after persistence {stats['switches']:,} (raw nearest-centroid switches "
            f"{stats['raw_switches']:,}); bar-to-bar staying probability per regime: "
            + ", ".join(f"{value:.3f}" for value in diagonal)
            + ".",
            "",
        ]
        means = stats.get("feature_means") or {}
        if means:
            lines += ["Mean raw feature value per regime (what tells them apart):", ""]
            lines.append(
                "| feature | " + " | ".join(f"regime {k}" for k in range(len(stats["regimes"]))) + " |"
            )
            lines.append("|---|" + "---|" * len(stats["regimes"]))
            for feature, values in means.items():
                lines.append(f"| {feature} | " + " | ".join(_number(v, 4) for v in values) + " |")
            lines.append("")
        if "separation" in fold:
            lines += separation_lines(fold["separation"])
        lines += [f"![regimes]({fold['plot']})", ""]
    if "stability" in report:
        lines += ["## Stability between folds", "", *stability_lines(report["stability"]), ""]
    skill_line = strongest_baseline_line(report.get("skill_vs_strongest_baseline") or {})
    if skill_line:
        lines += ["## Against the naive baselines", "", f"**{skill_line}.**", ""]
    parity = report.get("parity_max_abs_diff")
    secs = report.get("total_secs")
    lines.append(
        f"Artifact: fold {report.get('artifact_fold')}; torch vs onnxruntime max |diff| "
        f"{'n/a' if parity is None else f'{parity:.1e}'}; total run time "
        f"{'n/a' if secs is None else f'{secs / 60:.1f}'} min."
    )
    return "\n".join(lines) + "\n"


def write_regime_report(report: dict[str, Any], folder: Path) -> None:
    """regimes.json (strict JSON) and regimes.md in `folder`."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    clean = jsonable(report)
    (folder / "regimes.json").write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")
    (folder / "regimes.md").write_text(render_regime_markdown(clean), encoding="utf-8")
