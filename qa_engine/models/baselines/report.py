"""The baselines' out-of-sample report: report.md, report.json and equity_test.png (torch-free)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from qa_engine.contract.labels import CLASS_NAMES
from qa_engine.models.baselines.evaluate import LEAKAGE_SUSPICION_ACCURACY
from qa_engine.models.baselines.evaluate import equity_frame
from qa_engine.models.evaluation import markdown_table

DESCRIPTIONS = {
    "xgboost": "XGBoost on the features at t",
    "lstm": "LSTM over the 20-bar window",
    "mlp": "MLP over the flattened window",
    "ensemble": "0.6 XGB + 0.4 LSTM probabilities",
    "ensemble_agree": "ensemble class where XGB and LSTM agree, else HOLD",
    "zero_return": "naive: r = 0 -> always HOLD",
    "class_prior": "naive: training class frequencies (= historical quantiles); argmax = majority class",
    "persistence": "naive: class of the last N-bar return",
    "stratified_random": "naive: random classes with the training frequencies",
    "buy_and_hold": "long 1x for the whole test range",
}
PLOT_DPI = 72
PLOTTED = (
    "xgboost",
    "lstm",
    "mlp",
    "ensemble",
    "ensemble_agree",
    "persistence",
    "class_prior",
    "buy_and_hold",
)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _pct(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def render_markdown(config, report: dict[str, Any]) -> str:
    horizon = report["horizon_bars"]
    threshold = report["threshold_bps"]
    fee = report["fee_rate"]
    primary = report["position_policy"]
    other = report["other_position_policy"]
    pooled = report["pooled"]
    classification = pooled["classification"]
    backtest = pooled["backtest"]
    first, last = report["pooled_test_range"]
    sources = ", ".join(f"{s.symbol} ({s.describe()})" for s in config.data.sources)
    lines = [
        f"# Baselines: out-of-sample evaluation ({config.id})",
        "",
        config.description,
        "",
        f"Data: {sources}, {config.data.interval} bars. Labels: SELL / HOLD / BUY from the {horizon}-bar "
        f"forward return r = close[t+{horizon}] / close[t] - 1 against +-{threshold:g} bps. Inputs: the "
        f"{len(config.data.folds)} walk-forward folds below; features, FFD order and scaler fitted on each "
        f"fold's training split; embargo {config.data.embargo} bars before validation and test. "
        f"**Every number in this section is on TEST windows only** (pooled over the folds' test splits, "
        f"window ends {first} .. {last}), which no model saw in training or model selection.",
        "",
        "## Classification (pooled test windows)",
        "",
        f"Directional accuracy: among BUY/SELL predictions, the share whose realised {horizon}-bar return "
        f"has the predicted sign; 'non-overlapping' keeps every {horizon}-th window (independent labels), "
        "with its 95% interval.",
        "",
    ]
    head = [
        "forecaster",
        "accuracy",
        "balanced acc.",
        "macro-F1",
        "log loss",
        "BUY/SELL predicted",
        "direction acc. (n)",
        "direction acc. non-overlapping [95% CI]",
    ]
    lines += markdown_table(
        head, [_classification_row(name, classification[name]) for name in report["forecasters"]]
    )
    true_share = classification[report["forecasters"][0]]["true_share"]
    lines += [
        "",
        "Test class balance: "
        + ", ".join(f"{k} {v:.1%}" for k, v in true_share.items())
        + ". Forecasters: "
        + "; ".join(f"`{name}` {DESCRIPTIONS[name]}" for name in report["strategies"] if name in DESCRIPTIONS)
        + ".",
        "",
        f"## After-fee vectorised backtest of the signal (pooled test range, fee {fee:.3%} per unit "
        "turnover)",
        "",
        f"Position decided at bar t's close earns close[t+1] / close[t] - 1; BUY +1, SELL -1, HOLD -> "
        f"{'flat' if primary == 'flat_on_hold' else 'keep the previous position'} (policy `{primary}`); 1x "
        "equity, compounding; flat at the start and closed at the end of every fold's test range. "
        "**This vectorised backtest is a research tool; the NautilusTrader backtest (`qa backtest`) is the "
        "reference** (orders, fills, funding and liquidation are not modelled here).",
        "",
    ]
    head = [
        "strategy",
        "net return %",
        "gross return %",
        "fees % of equity",
        "max drawdown %",
        "Sharpe (ann.)",
        "gross Sharpe (t-stat)",
        "position changes",
        "long / short",
        f"net return % ({other})",
    ]
    lines += markdown_table(
        head,
        [
            _backtest_row(name, backtest[primary][name], backtest[other][name]["total_return_pct"])
            for name in report["strategies"]
        ],
    )
    buy_hold = backtest[primary]["buy_and_hold"]["total_return_pct"]
    lines += [
        "",
        f"Reading this table: buy-and-hold made {buy_hold:+.1f}% over the pooled test range; in a falling "
        "market a short-leaning or mostly flat signal 'beats' buy-and-hold without skill, so the flat "
        "strategies (zero_return, and class_prior when HOLD is the majority) are the bar to clear. Gross "
        "returns are before fees, on last-trade closes (no spread); the t-stat is gross Sharpe x sqrt(years) "
        "(|t| < 2: not distinguishable from zero). Lag-1 autocorrelation of the test 5m returns: "
        f"{report['test_bar_return_autocorrelation_lag1']:+.3f}.",
        "",
        "![equity](equity_test.png)",
        "",
    ]
    lines += _leakage_section(report)
    lines += ["## Per fold (test split)", ""]
    head = ["fold", "train (window ends)", "validation (window ends)", "test (window ends)", "test windows"]
    lines += markdown_table(head, [_ranges_row(fold) for fold in report["folds"]])
    lines.append("")
    models = ["xgboost", "lstm", "mlp", "ensemble", "persistence", "buy_and_hold"]
    head = ["fold", *(f"{m} acc. / net %" for m in models), "train SELL/HOLD/BUY", "test SELL/HOLD/BUY"]
    rows = []
    for fold in report["folds"]:
        cells = [fold["fold"]]
        for name in models:
            net = fold["backtest"][primary][name]["total_return_pct"]
            accuracy = fold["test"][name]["accuracy"] if name in fold["test"] else None
            cells.append(f"{_fmt(accuracy)} / {net:+.2f}")
        for split in ("train", "test"):
            balance = fold["class_balance"][split]
            cells.append("/".join(f"{balance[c]:.0%}" for c in CLASS_NAMES))
        rows.append(cells)
    lines += markdown_table(head, rows)
    lines += [
        "",
        "## Confusion matrices (pooled test; rows = true, columns = predicted: SELL, HOLD, BUY)",
        "",
    ]
    for name in ("xgboost", "lstm", "mlp", "ensemble", "persistence"):
        matrix = classification[name]["confusion"]
        lines.append(f"- {name}: " + "; ".join(f"{CLASS_NAMES[i]} {row}" for i, row in enumerate(matrix)))
    lines += ["", "## Training (per fold; selection on the validation split only)", ""]
    head = [
        "fold",
        "xgboost rounds kept / tried",
        "lstm epochs (best)",
        "mlp epochs (best)",
        "xgb secs",
        "lstm secs",
        "mlp secs",
        "fold secs",
        "XGB/LSTM agree (test)",
    ]
    lines += markdown_table(
        head, [_training_row(fold, report.get("fold_secs", {})) for fold in report["folds"]]
    )
    parity = report.get("parity_max_abs_diff", {})
    lines += [
        "",
        f"Artifacts: the models of fold {report.get('artifact_fold')} in models/ (ONNX + manifest.json); "
        "onnxruntime vs trained model max |diff| of the probabilities: "
        + ", ".join(f"{k} {v:.1e}" for k, v in parity.items())
        + f". Total run time {report.get('total_secs', float('nan')) / 60:.1f} min.",
        "",
        "Caveats: windows overlap (one per bar), so counts overstate the effective sample size (the "
        "non-overlapping directional figures are the honest ones); three test folds are three market "
        "regimes, not a distribution; buy-and-hold re-enters at each fold's test start (one extra fee each).",
        "",
    ]
    return "\n".join(lines)


def _classification_row(name: str, m: dict[str, Any]) -> list[str]:
    """One forecaster's cells of the pooled classification table."""
    d, dn = m["directional"], m["directional_non_overlapping"]
    acted = m["predicted_share"]["SELL"] + m["predicted_share"]["BUY"]
    return [
        name,
        _fmt(m["accuracy"]),
        _fmt(m["balanced_accuracy"]),
        _fmt(m["macro_f1"]),
        _fmt(m["log_loss"]),
        f"{acted:.1%}",
        f"{_fmt(d['accuracy'])} ({d['count']:,})" if d["count"] else "n/a (never acts)",
        f"{_fmt(dn['accuracy'])} [{_fmt(dn['ci95'][0])}, {_fmt(dn['ci95'][1])}] (n={dn['count']:,})"
        if dn["count"]
        else "n/a",
    ]


def _backtest_row(name: str, b: dict[str, Any], other_net: float | None) -> list[str]:
    """One strategy's cells of the pooled backtest table; `other_net`: its net return under the other
    position policy."""
    return [
        name,
        _pct(b["total_return_pct"]),
        _pct(b["gross_return_pct"]),
        _fmt(b["fees_pct_of_equity"], 2),
        _fmt(b["max_drawdown_pct"], 2),
        _fmt(b["sharpe"], 2),
        f"{b['gross_sharpe']:.2f} ({b['gross_sharpe'] * math.sqrt(b['years']):+.1f})",
        f"{b['position_changes']:,}",
        f"{b['long_share']:.0%} / {b['short_share']:.0%}",
        _pct(other_net),
    ]


def _ranges_row(fold: dict[str, Any]) -> list[str]:
    """One fold's cells of the ranges table: window ends of each split, test windows."""
    r = fold["ranges"]
    return [
        fold["fold"],
        *(
            f"{r[split]['first_window_end']} .. {r[split]['last_window_end']}"
            for split in ("train", "validation", "test")
        ),
        f"{r['test']['windows']:,}",
    ]


def _training_row(fold: dict[str, Any], fold_secs: dict[str, float]) -> list[str]:
    """One fold's cells of the training table (rounds, epochs, seconds, test agreement)."""
    t = fold["training"]
    return [
        fold["fold"],
        f"{t['xgboost']['rounds_kept']} / {t['xgboost']['rounds_tried']}",
        f"{t['lstm']['epochs']} ({t['lstm']['best_epoch']})",
        f"{t['mlp']['epochs']} ({t['mlp']['best_epoch']})",
        f"{t['xgboost']['train_secs']:.1f}",
        f"{t['lstm']['train_secs']:.1f}",
        f"{t['mlp']['train_secs']:.1f}",
        f"{fold_secs.get(fold['fold'], float('nan')):.0f}",
        f"{fold['ensemble_agreement_share']:.1%}",
    ]


def _leakage_section(report: dict[str, Any]) -> list[str]:
    lines = ["## Leakage checks", ""]
    suspicious = report["leakage_suspected"]
    if suspicious:
        lines.append(
            f"**Warning: above {LEAKAGE_SUSPICION_ACCURACY:.0%} out of sample: "
            + ", ".join(f"{k} {v:.3f}" for k, v in suspicious.items())
            + ". On 5m bars this almost always means leakage; do not trust these numbers before finding it.**"
        )
    else:
        lines.append(
            f"No model's pooled test directional accuracy (non-overlapping) is above "
            f"{LEAKAGE_SUSPICION_ACCURACY:.0%}; nothing here looks like leakage."
        )
    lines += [
        "",
        "What the pipeline guarantees, and how it is checked:",
        "- features at t use bars <= t (feature library; tests/property/test_labels_causality.py recomputes "
        "features and windows on data cut at t);",
        "- the label at t reads close[t] and close[t+H] only (property test); the threshold is fixed in the "
        "config, chosen on a training range, never on test data;",
        "- per fold, FFD order, scaler and class weights come from the training split; the last training "
        "label bar closes before the first validation window end, and likewise validation -> test "
        "(`check_no_overlap`, embargo >= horizon):",
    ]
    for fold in report["folds"]:
        r = fold["ranges"]
        lines.append(
            f"  - {fold['fold']}: last train label bar {r['train']['last_label_bar']} < first validation "
            f"window end {r['validation']['first_window_end']}; last validation label bar "
            f"{r['validation']['last_label_bar']} < first test window end {r['test']['first_window_end']}"
        )
    lines.append("")
    return lines


def _every_4_hours(frame, step_ns: int):
    """Every 4 hours' row (and the last) of an equity frame: the plot needs no more, the PNG stays small."""
    import polars as pl

    every = max(1, int(4 * 3_600_000_000_000 // step_ns))
    keep = (pl.int_range(pl.len()) % every == 0) | (pl.int_range(pl.len()) == pl.len() - 1)
    return frame.filter(keep)


def _rounded(value: Any) -> Any:
    """Floats to 6 significant digits, recursively (report.json stays readable and small)."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    return value


def write_baseline_report(config, report: dict[str, Any], run_dir: Path) -> None:
    """report.md, report.json (no arrays) and equity_test.png (pooled test equity curves) into run_dir."""
    from qa_engine.config.loader import dump_toml
    from qa_engine.reporting.plots import equity_comparison_figure

    run_dir.mkdir(parents=True, exist_ok=True)
    curves = report.get("_curves", {})
    if curves:
        first = next(iter(curves.values()))
        step = int(config.data.step_ns)
        frames = {
            name: _every_4_hours(equity_frame(curves[name], int(first.ts[0]) - step), step)
            for name in PLOTTED
            if name in curves
        }
        figure = equity_comparison_figure(
            frames,
            f"Baselines, pooled test range, after {report['fee_rate']:.3%} fees "
            f"({report['position_policy']})",
        )
        figure.savefig(run_dir / "equity_test.png", dpi=PLOT_DPI)  # smaller than the reporting default
    serialisable = {key: value for key, value in report.items() if not key.startswith("_")}
    (run_dir / "report.json").write_text(json.dumps(_rounded(serialisable)) + "\n", encoding="utf-8")
    (run_dir / "report.md").write_text(render_markdown(config, report), encoding="utf-8")
    (run_dir / "config.toml").write_text(dump_toml(config), encoding="utf-8")
