"""`qa signals`: build Forecast / Regime / FeatureVector records in batch for replay; list them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TaskID

from qa_engine.cli.console import progress as progress_bar
from qa_engine.cli.console import stdout_console
from qa_engine.cli.console import table as make_table
from qa_engine.data.catalog import nanos_to_datetime
from qa_engine.data.location import local_catalog_parser
from qa_engine.logging import configure_logging

DEFAULT_CATALOG = Path("catalog")

signals_app = typer.Typer(
    name="signals",
    help="Model signals computed in batch over the catalog, replayed in backtests (data.signals).",
    no_args_is_help=True,
    add_completion=False,
)


class FeatureVectors(StrEnum):
    needed = "needed"
    all = "all"
    none = "none"


def _time(nanos: int) -> str:
    return f"{nanos_to_datetime(nanos):%Y-%m-%d %H:%M}"


# --catalog of every `qa signals` command: a local catalog (record sets are written beside its data)
CatalogOption = Annotated[
    Path,
    typer.Option(
        "--catalog",
        metavar="<path>",
        parser=local_catalog_parser("qa signals"),
        help="catalog root directory",
    ),
]


@signals_app.command("build")
def build_command(
    instrument_id: Annotated[
        str, typer.Option("--instrument-id", help="e.g. BTCUSDT-LINEAR.BYBIT", show_default=False)
    ],
    catalog: CatalogOption = DEFAULT_CATALOG,
    interval: Annotated[str, typer.Option("--interval", help="bar interval of the models, e.g. 5m")] = "5m",
    oracle: Annotated[
        Path | None, typer.Option("--oracle", help="Oracle artifact folder -> Forecast")
    ] = None,
    guardian: Annotated[
        Path | None, typer.Option("--guardian", help="Guardian artifact folder -> Regime")
    ] = None,
    strategist: Annotated[
        Path | None,
        typer.Option("--strategist", help="Strategist artifact folder -> FeatureVector of its fitted set"),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="first bar close to write records for (ISO-8601, UTC)")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="last bar close, inclusive (ISO-8601, UTC)")
    ] = None,
    history_bars: Annotated[
        int | None,
        typer.Option(
            "--history-bars",
            help="bars before --start loaded for the warm-up (default: 2 x largest feature warm-up + window)",
            show_default=False,
        ),
    ] = None,
    feature_vectors: Annotated[
        FeatureVectors,
        typer.Option(
            "--feature-vectors",
            help="FeatureVector records: needed (the strategist's set), all (every model's set), none",
        ),
    ] = FeatureVectors.needed,
    replace: Annotated[
        bool, typer.Option("--replace", help="rewrite records of these models already in the range")
    ] = False,
    json_logs: Annotated[bool, typer.Option("--json-logs", help="log as JSON lines on stderr")] = False,
) -> None:
    """Run the Oracle / Guardian artifacts over the catalog's bars (batch features, the same ONNX
    models and window rules as the streaming actors) and write their records into the catalog."""
    from qa_engine.features.io import parse_time
    from qa_engine.logging import get_logger
    from qa_engine.replay.build import SignalsRequest
    from qa_engine.replay.build import build_signals

    configure_logging(json_logs=json_logs)
    request = SignalsRequest(
        catalog=catalog,
        instrument_id=instrument_id,
        interval=interval,
        oracle=oracle,
        guardian=guardian,
        strategist=strategist,
        start_ns=parse_time(start, "--start"),
        end_ns=parse_time(end, "--end"),
        history_bars=history_bars,
        feature_vectors=feature_vectors.value,
        replace=replace,
    )
    with progress_bar() as bars:
        tasks: dict[str, TaskID] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        result = build_signals(request, progress=on_progress)

    summary = make_table(f"Signals written to {catalog} ({instrument_id})", ["records", "count", "replaced"])
    for name, count in result.records.items():
        summary.add_row(name, f"{count:,}", f"{result.replaced.get(name, 0):,}")
    stdout_console.print(summary)
    facts = make_table("Build", ["item", "value"])
    facts.add_row(
        "bars loaded (incl. warm-up history)",
        f"{result.bars_loaded:,}: {_time(result.first_bar_ns)} -> {_time(result.last_bar_ns)}, "
        f"{result.segments} gap-free segment(s)",
    )
    facts.add_row("batched inference", ", ".join(f"{k}: {v}" for k, v in result.batched.items()) or "-")
    facts.add_row("seconds", ", ".join(f"{stage} {secs:.2f}" for stage, secs in result.secs.items()))
    stdout_console.print(facts)
    get_logger(__name__).info(
        "signals_written",
        instrument_id=instrument_id,
        records=result.records,
        secs=round(result.secs["total"], 2),
    )


@signals_app.command("list")
def list_command(
    catalog: CatalogOption = DEFAULT_CATALOG,
) -> None:
    """List the signal record sets in the catalog: class, instrument, model id / feature-set hash, range."""
    from qa_engine.replay import store

    listing = make_table(f"Signals in {catalog}", ["class", "instrument", "key", "first", "last", "records"])
    for type_name in store.SIGNAL_CLASSES:
        root = store.signal_directory(catalog, type_name, "x").parent
        for directory in sorted(root.iterdir()) if root.is_dir() else []:
            for item in store.summarise_keys(catalog, type_name, directory.name):
                listing.add_row(
                    type_name,
                    directory.name,
                    item.key,
                    _time(item.first_ts_ns),
                    _time(item.last_ts_ns),
                    f"{item.records:,}",
                )
    if not listing.row_count:
        listing.caption = "no signal records yet: build them with `qa signals build`"
    stdout_console.print(listing)
