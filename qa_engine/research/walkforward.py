"""Walk-forward of the whole Trinity through the backtest engine (issue 18, `qa research walk-forward`).

For every fold named in the config (a fold of the Oracle's training config: train / validation / test
ranges by bar close time):

1. retrain the three models on that fold alone (`qa train all` with the fold's configs, written to
   `<out>/<fold>/configs/`): Guardian, Oracle and Strategist see bars up to the fold's test start only;
2. backtest the fold's test range in the NautilusTrader engine on the venue's bars (a catalog the run
   builds from the kline and funding files named in the config): the Trinity with the fold's fresh
   artifacts, buy-and-hold, volatility-targeted buy-and-hold and every classic strategy, each with and
   without volatility targeting. Every strategy replays `warmup_days` of bars before the test start to
   warm up its indicators, features and models, and trades from the test start only (`trade_from`);
3. measure each run from the test start: return, drawdown, Sharpe, trades, fees, funding, and for the
   Trinity whether its trades cleared the cost they paid (mean gross PnL per round trip against its fees).

The report (`report.md`, `report.json`, `equity_<fold>.png`) says plainly whether the Trinity beat
buy-and-hold and the best classic strategy after fees and funding, fold by fold and on the last fold.
The best classic strategy is picked on the test range itself, which favours it (said in the report).

This module joins the training side (qa_engine.models) and the trading side (qa_engine.backtest): it
is research orchestration, imported by the CLI only.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import tomli_w
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

from qa_engine.errors import ConfigError

NS = 1_000_000_000


class StrategyRun(BaseModel):
    """One strategy backtested on every fold: a registered name and its params (instrument_id,
    bar_type and trade_from are filled in)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    kind: str = Field("classic", pattern="^(trinity|variant|benchmark|classic)$")
    # The Trinity's regime: the fold's Guardian, the naive realised-volatility quartiles
    # (actors/volatility_regime.py), or none (use_guardian = false).
    regime: str = Field("guardian", pattern="^(guardian|rv_quartiles|none)$")


class WalkForwardConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
    description: str = ""
    trinity: Path = Field(description="the `qa train all` config whose stages are retrained per fold")
    folds: list[str] = Field(min_length=1, description="fold names of the Oracle config, in time order")
    venue: str = "bybit-linear"
    symbol: str = "BTCUSDT"
    instrument_id: str = "BTCUSDT-LINEAR.BYBIT"
    interval: str = "1h"
    klines: Path = Field(description="the venue's klines at `interval` (ingested into the run's catalog)")
    funding: Path | None = Field(None, description="the venue's funding rates (settled by the backtest)")
    warmup_days: int = Field(30, ge=1)
    starting_balance: float = 10_000.0
    leverage: float = 3.0
    strategies: list[StrategyRun] = Field(min_length=1)


@dataclass(frozen=True)
class Fold:
    name: str
    train_start: datetime
    validation_start: datetime
    test_start: datetime
    test_end: datetime


def load_walkforward_config(path: Path) -> WalkForwardConfig:
    from qa_engine.config.loader import load_config

    return load_config(WalkForwardConfig, path, [])


def oracle_folds(config: WalkForwardConfig) -> list[Fold]:
    """The folds the config names, read from the Oracle's training config (the one source of ranges)."""
    trinity = _read_toml(config.trinity)
    oracle = _read_toml(Path(trinity["oracle"]))
    by_name = {fold["name"]: fold for fold in oracle["data"]["folds"]}
    missing = [name for name in config.folds if name not in by_name]
    if missing:
        raise ConfigError(f"folds {missing} are not in {trinity['oracle']} (folds: {', '.join(by_name)})")
    return [
        Fold(
            name,
            *(
                _utc(by_name[name][key])
                for key in ("train_start", "validation_start", "test_start", "test_end")
            ),
        )
        for name in config.folds
    ]


def fold_training_configs(config: WalkForwardConfig, fold: Fold, folder: Path) -> Path:
    """Per-stage configs of `config.trinity` restricted to `fold` (written under `folder`); returns the
    fold's `qa train all` config. Every model stage trains on this fold only."""
    trinity = _read_toml(config.trinity)
    folder.mkdir(parents=True, exist_ok=True)
    fold_entry = {
        "name": fold.name,
        "train_start": fold.train_start,
        "validation_start": fold.validation_start,
        "test_start": fold.test_start,
        "test_end": fold.test_end,
    }
    for stage in ("guardian", "oracle", "strategist", "evaluation"):
        if stage not in trinity:
            continue
        stage_config = _read_toml(Path(trinity[stage]))
        if stage != "evaluation":
            stage_config["data"]["folds"] = [fold_entry]
            stage_config["id"] = f"{stage_config['id']}-{fold.name}"
        if stage == "strategist":
            stage_config["fold"] = fold.name
        path = folder / f"{stage}.toml"
        path.write_text(tomli_w.dumps(stage_config), encoding="utf-8")
        trinity[stage] = str(path)
    trinity["id"] = f"{trinity['id']}-{fold.name}"
    target = folder / "trinity.toml"
    target.write_text(tomli_w.dumps(trinity), encoding="utf-8")
    return target


def build_catalog(config: WalkForwardConfig, catalog: Path) -> None:
    """The venue's bars (and funding) in a catalog of the run, with the same commands users run."""
    from qa_engine.cli.main import main

    if (catalog / "data").is_dir():
        return
    where = ["--venue", config.venue, "--symbol", config.symbol, "--catalog", str(catalog)]
    commands = [["catalog", "ingest", str(config.klines), *where, "--interval", config.interval]]
    if config.funding is not None:
        commands.append(["catalog", "ingest-funding", str(config.funding), *where])
    for command in commands:
        code = main(command)
        if code:
            raise ConfigError(f"`qa {' '.join(command)}` failed with exit code {code}")


def last_bar_close(config: WalkForwardConfig) -> datetime:
    from qa_engine.data.intervals import parse_interval
    from qa_engine.data.klines import read_klines

    last_open = read_klines(config.klines).get_column("ts_open").max()
    return last_open + timedelta(seconds=parse_interval(config.interval).duration_ns / NS)


def backtest_config(
    config: WalkForwardConfig, run: StrategyRun, fold: Fold, catalog: Path, artifacts: Path, end: datetime
):
    """The engine run of one strategy on one fold (the Trinity's actors read the fold's artifacts)."""
    from qa_engine.config.models import BacktestConfig
    from qa_engine.data.intervals import bar_type_string
    from qa_engine.data.intervals import parse_interval

    bar_type = bar_type_string(config.instrument_id, parse_interval(config.interval))
    common = {"instrument_id": config.instrument_id, "bar_type": bar_type}
    params = {**common, **run.params, "trade_from": _iso(fold.test_start)}
    actors = []
    if run.name == "trinity":  # the Trinity and its variants: the fold's artifacts and actors
        strategist = str(artifacts / "strategist" / "artifact")
        params["strategist_artifact"] = strategist
        actors = [
            {"name": "features", "params": {**common, "artifact": strategist}},
            {
                "name": "oracle",
                "params": {**common, "artifact": str(artifacts / "oracle"), "features_from": strategist},
            },
        ]
        params["use_guardian"] = run.regime != "none"
        if run.regime == "guardian":
            guardian = str(artifacts / "guardian" / "artifact")
            actors.append(
                {"name": "guardian", "params": {**common, "artifact": guardian, "features_from": strategist}}
            )
        elif run.regime == "rv_quartiles":
            actors.append({"name": "volatility_regime", "params": common})
    return BacktestConfig.model_validate(
        {
            "id": f"{run.label}-{fold.name}",
            "venues": [
                {
                    "name": config.instrument_id.rsplit(".", 1)[1],
                    "oms_type": "NETTING",
                    "account_type": "MARGIN",
                    "starting_balance": config.starting_balance,
                    "currency": "USDT",
                    "leverage": config.leverage,
                    "fee_model": "maker_taker",
                }
            ],
            "data": {
                "catalog": str(catalog),
                "bars": [{"instrument_id": config.instrument_id, "interval": config.interval}],
                "start": _iso(fold.test_start - timedelta(days=config.warmup_days)),
                "end": _iso(end),
            },
            "strategies": [{"name": run.name, "params": params}],
            "actors": actors,
            "engine": {"log_level": "ERROR"},
        }
    )


def measure(report, trade_from: datetime) -> dict[str, Any]:
    """The run's figures from `trade_from` (nothing trades before it): the same statistics module as
    every backtest report, on the equity curve from the test start."""
    from qa_engine.reporting.statistics import compute_performance

    start_ns = int(trade_from.timestamp()) * NS
    equity = report.equity.filter(pl.col("ts").cast(pl.Int64) >= start_ns)
    metrics = compute_performance(
        equity,
        report.trades,
        report.metrics.starting_balance,
        report.metrics.fees_paid,
        start_ts=trade_from,
    )
    trades = report.trades
    gross = trades.get_column("gross_pnl").to_numpy() if "gross_pnl" in trades.columns else None
    fees = trades.get_column("fees").to_numpy() if "fees" in trades.columns else None
    funding = float(report.funding.get("total", 0.0) or 0.0)
    return {
        "final_equity": metrics.final_equity,
        "return_pct": metrics.total_return_pct,
        "max_drawdown_pct": metrics.max_drawdown_pct,
        "sharpe": metrics.sharpe_ratio,
        "volatility_pct": metrics.annualised_volatility_pct,
        "round_trips": metrics.total_trades,
        "orders": int(report.fills.height),
        "fees": metrics.fees_paid,
        "funding": funding,
        "exposure_pct": metrics.exposure_pct,
        "win_rate_pct": metrics.win_rate_pct,
        "mean_abs_gross_per_trip": float(abs(gross).mean()) if gross is not None and len(gross) else None,
        "mean_gross_per_trip": float(gross.mean()) if gross is not None and len(gross) else None,
        "mean_fees_per_trip": float(fees.mean()) if fees is not None and len(fees) else None,
    }


def run_walkforward(
    config: WalkForwardConfig, out: Path, *, retrain: bool = True, log=print
) -> dict[str, Any]:
    """Train (unless the fold's artifacts are there and `retrain` is False), backtest, report."""
    from qa_engine.backtest.runner import run_backtest
    from qa_engine.models.pipeline import TrinityConfig
    from qa_engine.models.pipeline import run_pipeline

    folds = oracle_folds(config)
    out.mkdir(parents=True, exist_ok=True)
    catalog = out / "catalog"
    build_catalog(config, catalog)
    data_end = last_bar_close(config)
    results: dict[str, Any] = {"id": config.id, "folds": {}}
    for fold in folds:
        fold_dir = out / fold.name
        artifacts = fold_dir / "train"
        trained = (artifacts / "strategist" / "artifact" / "manifest.json").is_file()
        needs_models = any(run.name == "trinity" for run in config.strategies)
        training_secs: dict[str, float] = {}
        if needs_models and (retrain or not trained):
            log(
                f"[{fold.name}] training the Trinity on {fold.train_start:%Y-%m-%d} .. "
                f"{fold.validation_start:%Y-%m-%d}, early stopping on .. {fold.test_start:%Y-%m-%d}"
            )
            trinity_path = fold_training_configs(config, fold, fold_dir / "configs")
            from qa_engine.config.loader import load_config

            began = time.perf_counter()
            rows = run_pipeline(load_config(TrinityConfig, trinity_path, []), artifacts)
            training_secs["total"] = time.perf_counter() - began
            for stage, status, details in rows:
                minutes = [part for part in details.split("; ") if part.startswith("minutes: ")]
                if minutes:
                    training_secs[stage] = 60 * float(minutes[0].removeprefix("minutes: "))
                log(f"[{fold.name}]   {stage}: {status}")
            (fold_dir / "training_secs.json").write_text(json.dumps(training_secs, indent=2))
        elif (fold_dir / "training_secs.json").is_file():
            training_secs = json.loads((fold_dir / "training_secs.json").read_text())
        end = min(fold.test_end, data_end)
        runs, curves = {}, {}
        for run in config.strategies:
            began = time.perf_counter()
            backtest = backtest_config(config, run, fold, catalog, artifacts, end)
            outcome = run_backtest(backtest, run_dir=fold_dir / "backtests" / run.label)
            figures = measure(outcome.report, fold.test_start)
            figures["kind"] = run.kind
            figures["wall_secs"] = time.perf_counter() - began
            runs[run.label] = figures
            start_ns = int(fold.test_start.timestamp()) * NS
            curves[run.label] = outcome.report.equity.filter(pl.col("ts").cast(pl.Int64) >= start_ns)
            log(
                f"[{fold.name}]   {run.label}: {figures['return_pct']:+.2f}% "
                f"(max DD {figures['max_drawdown_pct']:.2f}%, {figures['round_trips']} round trips)"
            )
        results["folds"][fold.name] = {
            "models": model_skill(artifacts) if needs_models else {},
            "test_start": _iso(fold.test_start),
            "test_end": _iso(end),
            "train_start": _iso(fold.train_start),
            "validation_start": _iso(fold.validation_start),
            "training_secs": training_secs,
            "runs": runs,
            "backtests": {label: str(fold_dir / "backtests" / label) for label in runs},
        }
        from qa_engine.reporting.plots import plot_equity_comparison

        plot_equity_comparison(
            curves, out / f"equity_{fold.name}.png", f"{config.id}: fold {fold.name}, out of sample"
        )
    for fold in folds:
        results["folds"][fold.name]["verdict"] = verdict(results, fold.name)
    (out / "report.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    (out / "report.md").write_text(report_markdown(config, results), encoding="utf-8")
    return results


def report_markdown(config: WalkForwardConfig, results: dict[str, Any]) -> str:
    """The walk-forward report: per fold, every strategy's figures from the test start, then the
    verdict, the last fold first and plainly."""
    folds = list(results["folds"])
    last = folds[-1]
    lines = [f"# Walk-forward: {config.id}", "", config.description, ""]
    lines += _verdict_lines(results, last, headline=True)
    lines += ["", *_pooled_lines(results)]
    for name in reversed(folds):
        fold = results["folds"][name]
        lines += [
            "",
            f"## Fold {name}: test {fold['test_start'][:10]} .. {fold['test_end'][:10]}",
            "",
            f"Models trained on bars closing {fold['train_start'][:10]} .. {fold['validation_start'][:10]}, "
            f"early-stopped on {fold['validation_start'][:10]} .. {fold['test_start'][:10]}; training time "
            + ", ".join(f"{stage} {secs / 60:.1f} min" for stage, secs in fold["training_secs"].items())
            + ".",
            "",
            "| run | kind | return % | max DD % | Sharpe | ann. vol % | round trips | fees | funding "
            "| mean gross / trip | mean fee / trip | exposure % |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for label, run in sorted(fold["runs"].items(), key=lambda item: -item[1]["return_pct"]):
            lines.append(
                f"| {label} | {run['kind']} | {run['return_pct']:+.2f} | {run['max_drawdown_pct']:.2f} | "
                f"{_num(run['sharpe'])} | {_num(run['volatility_pct'], 1)} | {run['round_trips']} | "
                f"{run['fees']:,.2f} | {run['funding']:+,.2f} | {_num(run['mean_gross_per_trip'])} | "
                f"{_num(run['mean_fees_per_trip'])} | {run['exposure_pct']:.1f} |"
            )
        lines += ["", f"![equity](equity_{name}.png)", ""]
        model_lines = _model_lines(fold.get("models", {}))
        if model_lines:
            lines += ["What the fold's models showed on their own:", "", *model_lines, ""]
        lines += _verdict_lines(results, name, headline=False)
    return "\n".join(lines) + "\n"


def _pooled_lines(results: dict[str, Any]) -> list[str]:
    """Every run compounded over the folds in order (the test ranges follow one another): what one
    would have had running it through all of them, each fold from the same starting balance."""
    folds = list(results["folds"].values())
    labels = [label for label in folds[0]["runs"] if all(label in fold["runs"] for fold in folds)]
    rows = []
    for label in labels:
        growth = math.prod(1 + fold["runs"][label]["return_pct"] / 100 for fold in folds)
        worst = max(fold["runs"][label]["max_drawdown_pct"] for fold in folds)
        trips = sum(fold["runs"][label]["round_trips"] for fold in folds)
        rows.append((label, folds[0]["runs"][label]["kind"], 100 * (growth - 1), worst, trips))
    first, last = folds[0]["test_start"][:10], folds[-1]["test_end"][:10]
    lines = [
        f"## All {len(folds)} folds: {first} .. {last}, compounded",
        "",
        "| run | kind | compounded return % | worst fold max DD % | round trips |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r[0]} | {r[1]} | {r[2]:+.2f} | {r[3]:.2f} | {r[4]} |" for r in sorted(rows, key=lambda r: -r[2])
    ]
    return lines


def model_skill(artifacts: Path) -> dict[str, Any]:
    """What the fold's models showed out of sample in their own reports (`qa train all`): the Oracle
    against its strongest naive baseline and its direction, the Guardian against realised-volatility
    quartiles. Empty entries where a report is missing."""
    skill: dict[str, Any] = {}
    oracle = artifacts / "oracle" / "report.json"
    if oracle.is_file():
        report = json.loads(oracle.read_text())
        directional = report["pooled"]["tft"].get("directional", [])
        honest = [row for row in directional if row["stride"] == row["step"] and row["step"] > 1]
        skill["oracle"] = {
            "strongest_baseline": report.get("strongest_baseline"),
            "pinball_skill_vs_strongest": report.get("tft_skill_vs_strongest_baseline"),
            "coverage": report["pooled"]["tft"].get("coverage"),
            "band": report["pooled"]["tft"].get("band"),
            "direction_accuracy": honest[0]["accuracy"] if honest else None,
            "direction_windows": honest[0]["count"] if honest else None,
            "direction_step": honest[0]["step"] if honest else None,
        }
    guardian = artifacts / "guardian" / "regimes.json"
    if guardian.is_file():
        separation = json.loads(guardian.read_text()).get("skill_vs_strongest_baseline", {}).get("separation")
        if separation:
            skill["guardian"] = {
                "metric": separation["metric"],
                "guardian": separation["guardian"],
                "strongest_baseline": separation["strongest_baseline"],
                "baseline": separation["baseline"],
                "stronger": separation["stronger"],
            }
    return skill


def _model_lines(models: dict[str, Any]) -> list[str]:
    lines = []
    oracle = models.get("oracle")
    if oracle and oracle["pinball_skill_vs_strongest"] is not None:
        band = oracle.get("band") or [None, None]
        direction = (
            f"; its median's {oracle['direction_step']}-bar direction was right "
            f"{oracle['direction_accuracy']:.3f} of the time on {oracle['direction_windows']} "
            "non-overlapping windows"
            if oracle.get("direction_accuracy") is not None
            else ""
        )
        lines.append(
            "- Oracle (own report, this fold's test range): pinball skill against the strongest naive "
            f"baseline ({oracle['strongest_baseline']}) {100 * oracle['pinball_skill_vs_strongest']:+.2f}%; "
            f"its {band[0]}-{band[1]} band held {oracle['coverage']:.3f} of outcomes{direction}."
        )
    guardian = models.get("guardian")
    if guardian:
        lines.append(
            f"- Guardian: {guardian['metric']} {guardian['guardian']:.3f} against {guardian['baseline']:.3f} "
            f"for {guardian['strongest_baseline']} (the stronger: {guardian['stronger']})."
        )
    return lines


def _verdict_lines(results: dict[str, Any], fold: str, *, headline: bool) -> list[str]:
    out = results["folds"][fold]["verdict"]
    runs = results["folds"][fold]["runs"]
    if out.get("trinity") is None:
        return ["No Trinity run in this fold."]
    trinity = runs[out["trinity"]]
    hold = runs.get("buy_and_hold")
    best = out.get("best_classic")
    title = f"**Last fold ({fold})**: " if headline else "Verdict: "
    parts = [
        f"{title}the Trinity ({out['trinity']}) made {trinity['round_trips']} round trips and returned "
        f"{trinity['return_pct']:+.2f}% after fees ({trinity['fees']:,.2f}) and funding "
        f"({trinity['funding']:+,.2f})."
    ]
    if hold is not None:
        word = "beat" if out["beats_buy_and_hold"] else "did NOT beat"
        parts.append(f"It {word} buy-and-hold ({hold['return_pct']:+.2f}%).")
    if best is not None:
        word = "beat" if out["beats_best_classic"] else "did NOT beat"
        parts.append(
            f"It {word} the best classic strategy, {best} ({runs[best]['return_pct']:+.2f}%; picked on this "
            "test range, which favours it)."
        )
    ratio = out.get("gross_to_fee_ratio")
    if ratio is not None:
        clears = "large enough to pay" if ratio > 1 else "too small to pay"
        gross = trinity["mean_gross_per_trip"]
        parts.append(
            f"Cost: its round trips move {ratio:.1f}x their fees (mean |gross PnL| per round trip over mean "
            f"fees, {trinity['mean_fees_per_trip']:,.2f}): the positions are {clears} their cost."
        )
        if gross is not None and gross < 0:
            win = trinity.get("win_rate_pct")
            won = f" ({win:.0f}% of them won)" if win is not None else ""
            parts.append(
                "The edge is missing in direction, not cost: the mean round trip lost "
                f"{abs(gross):,.2f} before fees{won}."
            )
    return [" ".join(parts)]


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


# ---- helpers -----------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verdict(results: dict[str, Any], fold: str) -> dict[str, Any]:
    """Trinity against buy-and-hold and the best classic strategy on one fold (after fees and funding)."""
    runs = results["folds"][fold]["runs"]
    trinity = {label: r for label, r in runs.items() if r["kind"] == "trinity"}
    classics = {label: r for label, r in runs.items() if r["kind"] == "classic"}
    best_classic = max(classics, key=lambda label: classics[label]["return_pct"]) if classics else None
    main = next(iter(trinity)) if trinity else None
    hold = runs.get("buy_and_hold")
    out = {"trinity": main, "best_classic": best_classic}
    if main is not None:
        mine = trinity[main]["return_pct"]
        out["beats_buy_and_hold"] = hold is not None and mine > hold["return_pct"]
        out["beats_best_classic"] = best_classic is not None and mine > classics[best_classic]["return_pct"]
        trips = trinity[main]
        gross, fees = trips["mean_abs_gross_per_trip"], trips["mean_fees_per_trip"]
        out["gross_to_fee_ratio"] = gross / fees if gross and fees and not math.isclose(fees, 0) else None
    return out
