"""`qa data ...` and `qa catalog validate` end to end, in process, against the loopback venue."""

from __future__ import annotations

import shutil
from datetime import UTC
from datetime import datetime

import polars as pl
import pytest
import structlog

from qa_engine.cli.console import stdout_console
from qa_engine.cli.main import main
from tests.factories import real_klines
from tests.loopback_venue import Fault
from tests.loopback_venue import LoopbackVenue
from tests.loopback_venue import funding_series


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    monkeypatch.setattr(stdout_console, "width", 250)  # keep ids on one line
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def served() -> dict:
    return {
        ("binance-futures", "BTCUSDT", "1m"): real_klines(
            "binance_futures_BTCUSDT_1m", 2_880, start="2025-05-05"
        ),
        ("binance-futures", "ETHUSDT", "1m"): real_klines(
            "binance_futures_ETHUSDT_1m", 2_880, start="2025-05-05"
        ),
    }


def _download(server, catalog, *symbols, extra=()):
    return main(
        ["data", "download", "--venue", "binance-futures", "--symbols", *symbols, "--interval", "1m",
         "--start", "2025-05-05", "--end", "2025-05-06", "--catalog", str(catalog),
         "--base-url", server.base_url, *extra]
    )  # fmt: skip


def test_download_of_two_symbols_prints_a_summary_and_lists_in_the_catalog(tmp_path, served, capsys):
    with LoopbackVenue(served) as server:
        code = _download(server, tmp_path, "BTCUSDT", "ETHUSDT")
    out = capsys.readouterr().out
    code_list = main(["catalog", "list", "--catalog", str(tmp_path)])
    listing = capsys.readouterr().out

    assert code == 0 and code_list == 0
    assert "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL" in out and "ETHUSDT-PERP.BINANCE" in out
    assert out.count("2,880") >= 2  # written and in range, per symbol
    assert "ETHUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL" in listing and "CryptoPerpetual" in listing


def test_comma_separated_symbols_and_a_reported_venue_gap(tmp_path, served, capsys):
    bars = served[("binance-futures", "BTCUSDT", "1m")]
    with_gap = {
        ("binance-futures", "BTCUSDT", "1m"): bars.filter(
            ~pl.col("ts_open").is_in(bars["ts_open"][100:130].implode())
        )
    }
    with LoopbackVenue(with_gap) as server:
        code = _download(server, tmp_path, "btcusdt,BTCUSDT")
    out = capsys.readouterr().out

    assert code == 0
    assert "Bars the venue does not have (reported, never filled)" in out
    assert "2025-05-05 01:40 .. 2025-05-05 02:09" in out and "30" in out


def test_unknown_symbol_exits_2_with_a_suggestion(tmp_path, served, capsys):
    with LoopbackVenue(served) as server:
        code = _download(server, tmp_path, "BTCUSDX")

    err = capsys.readouterr().err
    assert code == 2
    assert "does not list the symbol 'BTCUSDX'; did you mean BTCUSDT" in err and "Traceback" not in err


def test_a_venue_that_keeps_failing_exits_1_and_says_to_run_again(tmp_path, served, capsys):
    with LoopbackVenue(served) as server:
        server.faults.append(Fault("server_error", count=100))
        code = _download(server, tmp_path, "BTCUSDT", extra=["--max-attempts", "2"])

    assert code == 1
    assert "run the same command again later" in capsys.readouterr().err


def test_funding_flag_and_spot_funding_refusal(tmp_path, served, capsys):
    start = int(datetime(2025, 5, 5, tzinfo=UTC).timestamp() * 1000)
    funding = {
        ("binance-futures", "BTCUSDT"): funding_series(
            [start + i * 28_800_000 for i in range(6)], ["0.0001"] * 6
        )
    }
    with LoopbackVenue(served, funding=funding) as server:
        code = _download(server, tmp_path, "BTCUSDT", extra=["--funding"])
        spot = main(
            ["data", "download-funding", "--venue", "binance-spot", "--symbols", "BTCUSDT", "--start",
             "2025-05-05", "--end", "2025-05-06", "--catalog", str(tmp_path), "--base-url", server.base_url]
        )  # fmt: skip
    captured = capsys.readouterr()
    main(["catalog", "list", "--catalog", str(tmp_path)])
    listing = capsys.readouterr().out

    assert (code, spot) == (0, 2)
    assert "Funding rates in" in captured.out and "binance-spot has no funding rates" in captured.err
    assert "Funding rates (FundingRateUpdate)" in listing and "2025-05-06 16:00" in listing


def test_download_instruments_writes_every_listed_perpetual(tmp_path, capsys):
    with LoopbackVenue() as server:
        code = main(
            ["data", "download-instruments", "--venue", "bybit-linear", "--catalog", str(tmp_path),
             "--base-url", server.base_url]
        )  # fmt: skip

    out = capsys.readouterr().out
    assert code == 0
    assert all(
        name in out for name in ("BTCUSDT-LINEAR.BYBIT", "ETHUSDT-LINEAR.BYBIT", "TSLAUSDT-LINEAR.BYBIT")
    )


def test_catalog_validate_passes_a_download_and_fails_overlapping_files(tmp_path, served, capsys):
    with LoopbackVenue(served) as server:
        assert _download(server, tmp_path, "BTCUSDT") == 0
    assert main(["catalog", "validate", "--catalog", str(tmp_path)]) == 0
    assert "0 errors" in capsys.readouterr().out

    directory = tmp_path / "data" / "bar" / "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"
    original = next(directory.glob("*.parquet"))
    shutil.copy(original, directory / original.name.replace("2025-05-05T00-01", "2025-05-05T00-00"))  # again

    code = main(["catalog", "validate", "--catalog", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2
    assert "duplicate bars" in captured.out and "overlapping files" in captured.out
    assert "validation errors" in captured.err
