"""`qa features build`: a Parquet feature table (one row per bar close) from the catalog or a kline file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from qa_engine.cli.console import stderr_console
from qa_engine.cli.console import stdout_console
from qa_engine.cli.console import table
from qa_engine.data.location import local_catalog_parser
from qa_engine.errors import ConfigError

features_app = typer.Typer(
    help="Causal feature tables (batch twin of the streaming features).", no_args_is_help=True
)


@features_app.callback()
def features_group() -> None:
    """Causal feature tables: `qa features build ...`."""


@features_app.command("build")
def build_command(
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write")],
    interval: Annotated[str, typer.Option("--interval", help="bar interval, e.g. 1m, 5m, 1h")] = "5m",
    feature_set_name: Annotated[
        str, typer.Option("--feature-set", help="registered feature set")
    ] = "default",
    catalog: Annotated[
        Path | None,
        typer.Option(
            "--catalog",
            metavar="<path>",
            parser=local_catalog_parser("qa features"),
            help="ParquetDataCatalog folder",
        ),
    ] = None,
    instrument: Annotated[
        str | None,
        typer.Option(
            "--instrument-id",
            "--instrument",
            help="instrument id, e.g. BTCUSDT-PERP.BINANCE (--instrument: old name, for one release)",
        ),
    ] = None,
    klines: Annotated[
        Path | None,
        typer.Option("--klines", help="instead of a catalog: a kline Parquet file (ts_open, OHLCV)"),
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="first bar close time (ISO-8601, UTC)")] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="last bar close time (ISO-8601, UTC), inclusive")
    ] = None,
    train_end: Annotated[
        str | None,
        typer.Option(
            "--train-end", help="choose the FFD order on bars closing before this time (training range)"
        ),
    ] = None,
) -> None:
    """Compute a feature set over bars and write it with its hash in the Parquet metadata."""
    import polars as pl

    from qa_engine.features.build import build_feature_table
    from qa_engine.features.io import check_output_file
    from qa_engine.features.io import interval_ns
    from qa_engine.features.io import load_catalog_bars
    from qa_engine.features.io import load_kline_file
    from qa_engine.features.io import parse_time
    from qa_engine.features.io import write_feature_table
    from qa_engine.features.sets import get_feature_set

    check_output_file(out)
    step = interval_ns(interval)
    feature_set = get_feature_set(feature_set_name)
    start_ns, end_ns, train_end_ns = (
        parse_time(start, "--start"),
        parse_time(end, "--end"),
        parse_time(train_end, "--train-end"),
    )
    if start_ns is not None and end_ns is not None and end_ns < start_ns:
        raise ConfigError(f"--end {end} is before --start {start}")
    # History before --start feeds the warm-up, so the table starts at --start.
    history_start = None if start_ns is None else start_ns - feature_set.warmup_bars * 2 * step
    if train_end_ns is not None and history_start is not None:
        history_start = None  # the FFD fit needs the whole training range before --train-end
    began = time.perf_counter()
    if (catalog is None) == (klines is None):
        raise ConfigError("give exactly one of --catalog (with --instrument-id) or --klines")
    if catalog is not None:
        if instrument is None:
            raise ConfigError("--catalog needs --instrument-id, e.g. BTCUSDT-PERP.BINANCE")
        with stderr_console.status(f"loading {instrument} {interval} bars from {catalog}"):
            bars, source = load_catalog_bars(catalog, instrument, interval, history_start, end_ns)
    else:
        assert klines is not None
        bars = load_kline_file(klines, interval)
        source = str(klines)
        if history_start is not None:
            bars = bars.filter(pl.col("ts") >= history_start)
        if end_ns is not None:
            bars = bars.filter(pl.col("ts") <= end_ns)
    loaded = time.perf_counter()
    with stderr_console.status(f"computing {len(feature_set.specs)} features over {bars.height:,} bars"):
        result = build_feature_table(bars, feature_set, step, train_end_ns=train_end_ns, start_ns=start_ns)
    computed = time.perf_counter()
    write_feature_table(
        result.table,
        out,
        result.feature_set,
        {
            "source": source,
            "interval": interval,
            "instrument": instrument,
            "declared_feature_set_hash": result.declared_hash,
            "train_end": train_end,
            "segments": result.segments,
            "warmup_rows_dropped": result.warmup_rows_dropped,
        },
    )
    ts = result.table.get_column("ts")
    summary = table(f"Feature table {out}", ["item", "value"])
    summary.add_row("feature set", f"{result.feature_set.name} v{result.feature_set.version}")
    summary.add_row("hash", result.feature_set.hash)
    summary.add_row("features", str(len(result.feature_set.specs)))
    summary.add_row("rows", f"{result.table.height:,}")
    first, last = (
        pl.Series([ts.min(), ts.max()]).cast(pl.Datetime("ns", "UTC")).dt.strftime("%Y-%m-%d %H:%M").to_list()
    )
    summary.add_row("first / last bar close (UTC)", f"{first} / {last}")
    summary.add_row(
        "warm-up rows dropped", f"{result.warmup_rows_dropped:,} ({result.segments} gap-free segment(s))"
    )
    summary.add_row("load / compute secs", f"{loaded - began:.2f} / {computed - loaded:.2f}")
    stdout_console.print(summary)
