"""`qa features build` end to end: from a real-bar catalog and from a kline file."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from qa_engine.cli.features import features_app
from qa_engine.features.io import read_feature_metadata
from qa_engine.features.sets import default_feature_set
from tests.factories import real_klines
from tests.unit.features.conftest import real_bars

BAR_TYPE = "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"


def write_catalog(path: Path, frame: pl.DataFrame) -> None:
    """A ParquetDataCatalog holding real 1m bars (stamped at close) of BTCUSDT-PERP.BINANCE."""
    from nautilus_trader.model.data import Bar
    from nautilus_trader.model.data import BarType
    from nautilus_trader.model.objects import Price
    from nautilus_trader.model.objects import Quantity
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    bar_type = BarType.from_str(BAR_TYPE)
    bars = [
        Bar(bar_type, Price(o, 1), Price(h, 1), Price(lo, 1), Price(c, 1), Quantity(v, 3), ts, ts)
        for ts, o, h, lo, c, v in frame.select("ts", "open", "high", "low", "close", "volume").iter_rows()
    ]
    ParquetDataCatalog(str(path)).write_data(bars)


def test_build_from_a_catalog_writes_one_row_per_bar_close_with_the_hash(tmp_path: Path) -> None:
    frame = real_bars("BTCUSDT", "1m", 1_200)
    write_catalog(tmp_path / "catalog", frame)
    out = tmp_path / "features.parquet"

    result = CliRunner().invoke(
        features_app,
        [
            "build",
            "--catalog",
            str(tmp_path / "catalog"),
            "--instrument-id",
            "BTCUSDT-PERP.BINANCE",
            "--interval",
            "1m",
            "--feature-set",
            "default",
            "--out",
            str(out),
        ],
    )

    assert result.exit_code == 0, result.output
    table = pl.read_parquet(out)
    warmup = default_feature_set().warmup_bars
    assert table.height == frame.height - warmup + 1
    assert table.columns == ["ts", *default_feature_set().names]
    expected_ts = frame.get_column("ts").slice(warmup - 1).cast(pl.Datetime("ns", "UTC"))
    assert table.get_column("ts").to_list() == expected_ts.to_list()
    assert table.null_count().row(0) == (0,) * table.width
    metadata = read_feature_metadata(out)
    specs = json.loads(metadata["feature_set_specs"])
    assert metadata["feature_set_hash"] != metadata["declared_feature_set_hash"].strip(
        '"'
    )  # OFI fell back to BVC
    assert [spec["kind"] for spec in specs["specs"] if spec["name"] == "ofi_20"] == ["ofi_bvc"]
    assert json.loads(metadata["source"]) == BAR_TYPE


def test_build_from_klines_with_start_end_and_a_training_range(tmp_path: Path) -> None:
    out = tmp_path / "eth.parquet"
    klines = tmp_path / "binance_futures_ETHUSDT_5m.parquet"  # the first 20,000 bars, 2023-01-01 on
    real_klines("binance_futures_ETHUSDT_5m", 20_000).write_parquet(klines)

    result = CliRunner().invoke(
        features_app,
        [
            "build",
            "--klines",
            str(klines),
            "--interval",
            "5m",
            "--start",
            "2023-03-01T00:00",
            "--end",
            "2023-03-05T00:00",
            "--train-end",
            "2023-03-01T00:00",
            "--out",
            str(out),
        ],
    )

    assert result.exit_code == 0, result.output
    table = pl.read_parquet(out)
    assert str(table.get_column("ts").min()) == "2023-03-01 00:00:00+00:00"  # warm-up came from earlier bars
    assert str(table.get_column("ts").max()) == "2023-03-05 00:00:00+00:00"
    assert table.height == 4 * 288 + 1
    specs = json.loads(read_feature_metadata(out)["feature_set_specs"])["specs"]
    ffd = next(spec for spec in specs if spec["name"] == "ffd_log_close")
    assert dict(ffd["params"])["fitted_on"] == "2023-01-01T00:05:00Z..2023-02-28T23:55:00Z (16991 bars)"


def test_unknown_instrument_in_the_catalog_names_what_is_there(tmp_path: Path) -> None:
    write_catalog(tmp_path / "catalog", real_bars("BTCUSDT", "1m", 50))

    result = CliRunner().invoke(
        features_app,
        [
            "build",
            "--catalog",
            str(tmp_path / "catalog"),
            "--instrument-id",
            "ETHUSDT-PERP.BINANCE",
            "--interval",
            "1m",
            "--out",
            str(tmp_path / "x.parquet"),
        ],
    )

    assert result.exit_code != 0
    assert "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL" in str(result.exception)


def test_the_old_instrument_flag_is_an_alias_of_instrument_id(tmp_path: Path) -> None:
    write_catalog(tmp_path / "catalog", real_bars("BTCUSDT", "1m", 50))
    args = [
        "build",
        "--catalog",
        str(tmp_path / "catalog"),
        "--interval",
        "1m",
        "--out",
        str(tmp_path / "x.parquet"),
    ]

    old = CliRunner().invoke(features_app, [*args, "--instrument", "ETHUSDT-PERP.BINANCE"])

    assert "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL" in str(old.exception)  # parsed as --instrument-id
