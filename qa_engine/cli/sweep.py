"""`qa sweep --config configs/sweep/<name>.toml`: many backtests on Ray, resumable, with overfitting odds.

The sweep folder is `<output>/<id>/` (not time-stamped: running the same command again resumes it):
sweep.toml (the config as run), results/ (one Parquet file per finished backtest: the results table),
statistics.json (deflated Sharpe ratio and PBO per search group) and report.html.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qa_engine.cli.backtest import SetOption
from qa_engine.cli.console import progress
from qa_engine.cli.console import stdout_console
from qa_engine.cli.console import table
from qa_engine.config.loader import dump_toml
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.errors import ConfigError
from qa_engine.logging import configure_logging


def sweep_command(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="sweep config (TOML), e.g. configs/sweep/*.toml")
    ],
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="an existing Ray cluster: auto, host:port or ray://host:port (default: "
            "Ray started in-process on this machine)",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="parallel backtests (default: CPUs)")
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="run failed trials again on resume")
    ] = False,
    set_: SetOption = None,
    out: Annotated[
        str | None, typer.Option("--out", help="sweep folder or s3://bucket/prefix (default <output>/<id>/)")
    ] = None,
) -> None:
    """Run a parameter sweep (grid, random or TPE; optional symbols and walk-forward folds); resumable."""
    from qa_engine.data.location import catalog_option
    from qa_engine.sweep.config import SweepConfig
    from qa_engine.sweep.config import resolve_base
    from qa_engine.sweep.config import sweep_folder
    from qa_engine.sweep.engine import SweepPlan
    from qa_engine.sweep.engine import run_sweep
    from qa_engine.sweep.report import group_statistics
    from qa_engine.sweep.report import ranked

    configure_logging()
    sweep = load_config(SweepConfig, config, set_)
    base = load_config(BacktestConfig, resolve_base(sweep, config), sweep.set)
    plan = SweepPlan.build(sweep, base)
    folder = catalog_option(out, "--out") if out is not None else sweep_folder(sweep)
    _claim(folder, dump_toml(sweep))

    with progress(transient=False) as bar:
        task = bar.add_task(f"sweep {sweep.id}", total=None)
        stage = {"total": 0}

        def report(state) -> None:
            stage["total"] = state.total
            bar.update(
                task,
                total=state.total,
                completed=state.done + state.skipped,
                description=f"sweep {sweep.id}: {state.failed} failed, {state.skipped} resumed",
            )

        results = run_sweep(
            plan, folder, address=address, workers=workers, retry_failed=retry_failed, progress=report
        )

    stats = group_statistics(results, sweep)
    page = _write_report(results, sweep, folder, stats)
    best = table(
        f"Sweep {sweep.id}: best trials by {sweep.metric}",
        ["fold", "symbol", "trial", "params", sweep.metric, "return %", "max DD %", "trades"],
    )
    for row in ranked(results, sweep, limit=10).iter_rows(named=True):
        best.add_row(
            str(row["fold"]), row["symbol"] or "(base)", str(row["trial"]), row["params"],
            _fmt(row.get(sweep.metric)), _fmt(row.get("total_return_pct")),
            _fmt(row.get("max_drawdown_pct")), _count(row.get("total_trades")),
        )  # fmt: skip
    stdout_console.print(best)
    odds = table(
        "Overfitting statistics (per search window and symbol)",
        ["fold", "symbol", "trials", "best", "DSR", "PBO"],
    )
    for entry in stats:
        odds.add_row(
            str(entry["fold"]), entry["symbol"], str(entry["trials"]), str(entry.get("best_trial", "")),
            _fmt(entry.get("deflated_sharpe_ratio")),
            _fmt(entry.get("pbo")) if "pbo" in entry else entry.get("note", ""),
        )  # fmt: skip
    stdout_console.print(odds)
    failed = results.filter(results["status"] != "ok").height if not results.is_empty() else 0
    stdout_console.print(
        f"{results.height} backtests ({failed} failed); results {folder}/results; report {page}"
    )


def _count(value) -> str:
    return "" if value is None else f"{int(value):,}"


def _fmt(value) -> str:
    return "" if value is None else f"{value:,.3f}"


def _claim(folder, config_text: str) -> None:
    """The sweep folder holds this sweep's config, or none yet: a rerun resumes only the same sweep."""
    from qa_engine.data.location import filesystem
    from qa_engine.data.location import is_remote

    if is_remote(str(folder)):
        fs, root = filesystem(str(folder))
        path = f"{root.rstrip('/')}/sweep.toml"
        previous = fs.cat_file(path).decode() if fs.exists(path) else None
    else:
        path = Path(folder) / "sweep.toml"
        previous = path.read_text() if path.exists() else None
    if previous is not None and previous != config_text:
        raise ConfigError(
            f"{folder} holds a sweep with another config (its sweep.toml): resume needs the same config; "
            "choose another --out or id"
        )
    if is_remote(str(folder)):
        fs.pipe_file(path, config_text.encode())
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config_text)


def _write_report(results, sweep, folder, stats):
    """report.html and statistics.json in the sweep folder (made locally, then uploaded to an s3:// one)."""
    import tempfile

    from qa_engine.data.location import filesystem
    from qa_engine.data.location import is_remote
    from qa_engine.sweep.report import write_sweep_report

    if not is_remote(str(folder)):
        return write_sweep_report(results, sweep, Path(folder), stats)
    fs, root = filesystem(str(folder))
    with tempfile.TemporaryDirectory() as tmp:
        write_sweep_report(results, sweep, Path(tmp), stats)
        for name in ("report.html", "statistics.json"):
            fs.put_file(str(Path(tmp) / name), f"{root.rstrip('/')}/{name}")
    return f"{str(folder).rstrip('/')}/report.html"
