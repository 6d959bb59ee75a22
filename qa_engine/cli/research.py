"""`qa research`: measurements that inform strategy design (no backtest, no model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qa_engine.cli.console import stderr_console
from qa_engine.cli.console import stdout_console
from qa_engine.cli.console import table as make_table
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError

research_app = typer.Typer(
    name="research",
    help="Research measurements over kline data (e.g. where a round trip's cost can be cleared).",
    no_args_is_help=True,
    add_completion=False,
)


@research_app.callback()
def research_group() -> None:
    """Research measurements: `qa research cost-horizon ...`."""


@research_app.command("cost-horizon")
def cost_horizon_command(
    klines: Annotated[
        Path,
        typer.Option(
            "--klines", help="5m kline file (.parquet, .csv or .zip: ts_open, OHLCV)", show_default=False
        ),
    ],
    cost_bps: Annotated[
        float, typer.Option("--cost-bps", help="round-trip cost in bp (2 x taker 5.5 + 2 x 1 slippage)")
    ] = 13.0,
    out: Annotated[
        Path | None, typer.Option("--out", help="also write the table as Markdown to FILE.md")
    ] = None,
) -> None:
    """Median |log move| per bar interval (5m, 15m, 1h, 4h) and horizon (30 min .. 24 h) against the cost."""
    from qa_engine.data.klines import read_klines
    from qa_engine.reporting.cost_horizon import HEADERS
    from qa_engine.reporting.cost_horizon import cost_horizon_table
    from qa_engine.reporting.cost_horizon import format_row
    from qa_engine.reporting.cost_horizon import period_text
    from qa_engine.reporting.cost_horizon import to_markdown

    if not (cost_bps > 0 and cost_bps < 10_000):
        raise ConfigError(f"--cost-bps must be in (0, 10000) bp, got {cost_bps}")
    if out is not None:
        if out.is_dir():
            raise ConfigError(f"--out {out} is a directory; give a file path, e.g. {out / 'cost_horizon.md'}")
        if not out.parent.is_dir():
            raise ConfigError(f"--out {out}: folder {out.parent} does not exist")
    frame = read_klines(klines)  # a missing or malformed file: DataError naming it
    try:
        with stderr_console.status(f"measuring moves over {frame.height:,} bars of {klines}"):
            rows = cost_horizon_table(frame, cost_bps)
    except ValueError as exc:
        raise DataError(f"{klines}: {exc}") from exc
    period = period_text(frame)
    result = make_table(f"Cost horizon: {klines.name} ({period}), round trip {cost_bps:g} bp", list(HEADERS))
    for row in rows:
        result.add_row(*format_row(row))
    stdout_console.print(result)
    if out is not None:
        out.write_text(to_markdown(rows, cost_bps, str(klines), period))
        stderr_console.print(f"wrote {out}")


@research_app.command("walk-forward")
def walk_forward_command(
    config: Annotated[
        Path, typer.Option("--config", help="walk-forward config, e.g. configs/research/walkforward_1h.toml")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="run folder (catalog, per-fold models, backtests, report)")
    ],
    reuse_models: Annotated[
        bool,
        typer.Option(
            "--reuse-models", help="keep a fold's trained models when its folder holds them (no retraining)"
        ),
    ] = False,
) -> None:
    """Retrain the Trinity per fold and backtest every fold's test range in the engine against
    buy-and-hold, vol-targeted buy-and-hold and the classic strategies (report.md in --out)."""
    from qa_engine.logging import configure_logging
    from qa_engine.research.walkforward import load_walkforward_config
    from qa_engine.research.walkforward import run_walkforward

    configure_logging(level="WARNING")
    settings = load_walkforward_config(config)  # a bad config: ConfigError naming the field (exit 2)
    results = run_walkforward(settings, out, retrain=not reuse_models, log=stderr_console.print)
    last = list(results["folds"])[-1]
    stdout_console.print(f"wrote {out / 'report.md'} (last fold {last})")
