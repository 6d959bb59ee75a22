from __future__ import annotations

import polars as pl
import pytest
import structlog
from typer.testing import CliRunner

from qa_engine.cli.catalog import catalog_app
from qa_engine.cli.console import stdout_console
from qa_engine.cli.main import main
from tests.factories import binance_dump_rows
from tests.factories import real_klines
from tests.factories import write_text


@pytest.fixture(autouse=True)
def _fresh_structlog():
    """The CLI configures structlog onto the stderr of the moment; do not leak it into other tests."""
    yield
    structlog.reset_defaults()


def _bybit_file(tmp_path, n=288 * 2):
    path = tmp_path / "btc.parquet"
    real_klines("bybit_linear_BTCUSDT_5m", n).write_parquet(path)
    return path


def _ingest_args(path, catalog, *extra):
    return [
        "catalog",
        "ingest",
        str(path),
        "--venue",
        "bybit-linear",
        "--symbol",
        "BTCUSDT",
        "--interval",
        "5m",
        "--catalog",
        str(catalog),
        *extra,
    ]


def test_ingest_exits_0_and_prints_the_validation_table(tmp_path, capsys):
    code = main(
        _ingest_args(_bybit_file(tmp_path), tmp_path / "c", "--start", "2025-01-02", "--end", "2025-01-02")
    )

    out = capsys.readouterr().out
    assert code == 0
    assert "crossed OHLC" in out and "288" in out
    assert "2025-01-02 00:00" in out  # first open time of the selected day


def test_market_is_accepted_as_an_alias_of_venue(tmp_path):
    result = CliRunner().invoke(
        catalog_app,
        [
            "ingest",
            str(_bybit_file(tmp_path, 20)),
            "--market",
            "bybit-linear",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "5m",
            "--catalog",
            str(tmp_path / "c"),
        ],
    )

    assert result.exit_code == 0, result.output


def test_binance_dump_ingests_into_perp_bar_type(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(stdout_console, "width", 200)  # keep ids on one line
    bars = real_klines("binance_futures_BTCUSDT_1m", 60, start="2025-05-05")
    dump = write_text(tmp_path / "BTCUSDT-1m-2025-05-05.csv", binance_dump_rows(bars, "1m", "us"))

    code = main(
        [
            "catalog",
            "ingest",
            str(dump),
            "--venue",
            "binance-futures",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1m",
            "--catalog",
            str(tmp_path / "c"),
        ]
    )
    capsys.readouterr()
    code_list = main(["catalog", "list", "--catalog", str(tmp_path / "c")])

    out = capsys.readouterr().out
    assert (code, code_list) == (0, 0)
    assert "BTCUSDT-PERP.BINANCE" in out and "60" in out


def test_unknown_venue_exits_2(tmp_path, capsys):
    code = main(
        [
            "catalog",
            "ingest",
            str(_bybit_file(tmp_path, 5)),
            "--venue",
            "kraken",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "5m",
            "--catalog",
            str(tmp_path / "c"),
        ]
    )

    assert code == 2


def test_unknown_symbol_exits_2_with_one_line(tmp_path, capsys):
    code = main(
        [
            "catalog",
            "ingest",
            str(_bybit_file(tmp_path, 5)),
            "--venue",
            "bybit-linear",
            "--symbol",
            "DOGEUSDT",
            "--interval",
            "5m",
            "--catalog",
            str(tmp_path / "c"),
        ]
    )

    err = capsys.readouterr().err
    assert code == 2
    assert "known symbols: BTCUSDT, ETHUSDT" in err
    assert "Traceback" not in err


def test_bad_data_exits_2_prints_the_report_and_writes_nothing(tmp_path, capsys):
    bars = real_klines("bybit_linear_BTCUSDT_5m", 20)
    path = tmp_path / "crossed.parquet"
    bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.col("low")).otherwise(pl.col("high")).alias("high"),
        pl.when(pl.int_range(pl.len()) == 3).then(pl.col("high")).otherwise(pl.col("low")).alias("low"),
    ).write_parquet(path)

    code = main(_ingest_args(path, tmp_path / "c"))

    captured = capsys.readouterr()
    assert code == 2
    assert "crossed OHLC" in captured.out and "error" in captured.out
    assert "validation failed" in captured.err
    assert not (tmp_path / "c" / "data").exists()


def test_strict_gap_exits_2_and_lenient_run_exits_0(tmp_path, capsys):
    bars = real_klines("bybit_linear_BTCUSDT_5m", 50)
    path = tmp_path / "holed.parquet"
    pl.concat([bars[:20], bars[21:]]).write_parquet(path)

    strict_code = main(_ingest_args(path, tmp_path / "c", "--strict"))
    lenient_code = main(_ingest_args(path, tmp_path / "c"))

    assert (strict_code, lenient_code) == (2, 0)


def test_conflicting_reingest_exits_2_and_replace_exits_0(tmp_path, capsys):
    bars = real_klines("bybit_linear_BTCUSDT_5m", 30)
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    bars.write_parquet(first)
    bars.with_columns(pl.col("volume") + 1).write_parquet(second)
    assert main(_ingest_args(first, tmp_path / "c")) == 0

    assert main(_ingest_args(second, tmp_path / "c")) == 2
    assert "--replace" in capsys.readouterr().err
    assert main(_ingest_args(second, tmp_path / "c", "--replace")) == 0


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(_ingest_args(tmp_path / "nope.csv", tmp_path / "c")) == 2
    assert "no such file" in capsys.readouterr().err


def test_list_of_missing_catalog_exits_2(tmp_path, capsys):
    assert main(["catalog", "list", "--catalog", str(tmp_path / "none")]) == 2
