from __future__ import annotations

import fcntl
import hashlib
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog

from adapters.binance.providers import binance_futures_instrument
from adapters.binance.providers import binance_spot_instrument
from adapters.bybit.providers import bybit_linear_instrument
from qa_engine.data import ingest as ingest_module
from qa_engine.data.catalog import catalog_coverage
from qa_engine.data.catalog import instrument_ids
from qa_engine.data.ingest import IngestValidationError
from qa_engine.data.ingest import _bars_table
from qa_engine.data.ingest import bars_table_reference
from qa_engine.data.ingest import ingest_klines
from qa_engine.data.ingest import recover_interrupted_writes
from qa_engine.data.intervals import KlineInterval
from qa_engine.data.intervals import bar_type_string
from qa_engine.errors import DataError
from tests.factories import real_klines

BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL"


@pytest.fixture
def btc() -> object:
    return bybit_linear_instrument("BTCUSDT")


def _parquet(tmp_path: Path, name: str, frame: pl.DataFrame) -> Path:
    path = tmp_path / f"{name}.parquet"
    frame.write_parquet(path)
    return path


def _snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `root` (the writer's lock file included: a write
    leaves none behind), and every folder (an empty staging folder would be a leftover too)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "dir"
        for path in sorted(root.rglob("*"))
    }


def _catalog_bars(catalog: Path, bar_type: str = BAR_TYPE) -> list[Bar]:
    return ParquetDataCatalog(str(catalog)).bars(bar_types=[bar_type])


def test_first_bybit_bar_of_2025_is_stamped_at_its_close(tmp_path, btc):
    source = _parquet(tmp_path, "btc", real_klines("bybit_linear_BTCUSDT_5m", 12))

    result = ingest_klines([source], btc, "5m", tmp_path / "catalog")

    first = _catalog_bars(tmp_path / "catalog")[0]
    assert str(first.bar_type) == BAR_TYPE == result.bar_type
    assert first.ts_event == first.ts_init == int(datetime(2025, 1, 1, 0, 5, tzinfo=UTC).timestamp() * 1e9)
    assert (str(first.open), str(first.high), str(first.low), str(first.close), str(first.volume)) == (
        "93530.00",
        "93672.80",
        "93501.30",
        "93630.10",
        "147.130",
    )
    assert result.first_ts_event == datetime(2025, 1, 1, 0, 5, tzinfo=UTC)


def test_catalog_bars_equal_the_input_rows(tmp_path, btc):
    frame = real_klines("bybit_linear_BTCUSDT_5m", 2_000, offset=5_000)
    ingest_klines([_parquet(tmp_path, "btc", frame)], btc, "5m", tmp_path / "catalog")

    bars = _catalog_bars(tmp_path / "catalog")

    read_back = pl.DataFrame(
        {
            "ts_open": [bar.ts_event - 300_000_000_000 for bar in bars],
            "open": [float(str(bar.open)) for bar in bars],
            "high": [float(str(bar.high)) for bar in bars],
            "low": [float(str(bar.low)) for bar in bars],
            "close": [float(str(bar.close)) for bar in bars],
            "volume": [float(str(bar.volume)) for bar in bars],
        }
    ).with_columns(pl.col("ts_open").cast(pl.Datetime("ns", "UTC")))
    assert read_back.equals(frame)  # decimal text of each Price/Quantity == the input float, no rounding


@pytest.mark.parametrize(
    ("provider", "symbol", "file", "interval"),
    [
        (bybit_linear_instrument, "ETHUSDT", "bybit_linear_ETHUSDT_5m", KlineInterval.MINUTE_5),
        (binance_futures_instrument, "BTCUSDT", "binance_futures_BTCUSDT_1m", KlineInterval.MINUTE_1),
        (binance_spot_instrument, "ETHUSDT", "binance_spot_ETHUSDT_5m", KlineInterval.MINUTE_5),
    ],
)
def test_column_encoding_is_byte_identical_to_nautilus_own(provider, symbol, file, interval):
    instrument = provider(symbol)
    frame = real_klines(file, 20_000)
    bar_type = BarType.from_str(bar_type_string(instrument.id.value, interval))

    fast = _bars_table(frame, bar_type, instrument, interval, lambda *_: None)

    assert fast.equals(bars_table_reference(frame, bar_type, instrument, interval))
    assert fast.schema.metadata[b"price_precision"] == str(instrument.price_precision).encode()


def test_ingest_reads_back_like_nautilus_write_data(tmp_path, btc):
    frame = real_klines("bybit_linear_BTCUSDT_5m", 500)
    ingest_klines([_parquet(tmp_path, "btc", frame)], btc, "5m", tmp_path / "ours")
    reference = ParquetDataCatalog(str(tmp_path / "theirs"))
    interval = KlineInterval.MINUTE_5
    table = bars_table_reference(frame, BarType.from_str(BAR_TYPE), btc, interval)
    reference.write_data(reference.serializer.deserialize(Bar, table))

    assert _catalog_bars(tmp_path / "ours") == _catalog_bars(tmp_path / "theirs")


def test_reingesting_the_same_file_adds_nothing_and_changes_no_file(tmp_path, btc):
    source = _parquet(tmp_path, "btc", real_klines("bybit_linear_BTCUSDT_5m", 600))
    catalog = tmp_path / "catalog"
    first = ingest_klines([source], btc, "5m", catalog)
    before = _snapshot(catalog)

    second = ingest_klines([source], btc, "5m", catalog)

    assert (first.bars_added, first.bars_total) == (600, 600)
    assert (second.bars_added, second.bars_identical, second.bars_total) == (0, 600, 600)
    assert not second.catalog_changed
    assert _snapshot(catalog) == before
    assert len(_catalog_bars(catalog)) == 600


def test_overlapping_ingest_merges_without_duplicates(tmp_path, btc):
    frame = real_klines("bybit_linear_BTCUSDT_5m", 900)
    catalog = tmp_path / "catalog"
    ingest_klines([_parquet(tmp_path, "a", frame[:600])], btc, "5m", catalog)

    result = ingest_klines([_parquet(tmp_path, "b", frame[300:])], btc, "5m", catalog)

    assert (result.bars_added, result.bars_identical, result.bars_total) == (300, 300, 900)
    timestamps = [bar.ts_event for bar in _catalog_bars(catalog)]
    assert len(timestamps) == len(set(timestamps)) == 900
    assert timestamps == sorted(timestamps)
    assert len(list((catalog / "data" / "bar" / BAR_TYPE).glob("*.parquet"))) == 1


def test_conflicting_overlap_names_the_first_differing_bar_and_changes_nothing(tmp_path, btc):
    frame = real_klines("bybit_linear_BTCUSDT_5m", 100)
    catalog = tmp_path / "catalog"
    ingest_klines([_parquet(tmp_path, "a", frame)], btc, "5m", catalog)
    before = _snapshot(catalog)
    changed = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 40)
        .then(pl.col("volume") * 2)
        .otherwise(pl.col("volume"))
        .alias("volume")
    )

    with pytest.raises(DataError, match=r"1 input bars differ.*2025-01-01 03:25 close-time.*--replace"):
        ingest_klines([_parquet(tmp_path, "b", changed)], btc, "5m", catalog)

    assert _snapshot(catalog) == before


def test_replace_overwrites_the_differing_bars(tmp_path, btc):
    frame = real_klines("bybit_linear_BTCUSDT_5m", 100)
    catalog = tmp_path / "catalog"
    ingest_klines([_parquet(tmp_path, "a", frame)], btc, "5m", catalog)
    doubled = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 40)
        .then(pl.col("volume") * 2)
        .otherwise(pl.col("volume"))
        .alias("volume")
    )

    result = ingest_klines([_parquet(tmp_path, "b", doubled)], btc, "5m", catalog, replace=True)

    assert (result.bars_replaced, result.bars_identical, result.bars_total) == (1, 99, 100)
    assert float(str(_catalog_bars(catalog)[40].volume)) == pytest.approx(frame["volume"][40] * 2)


def test_failure_while_writing_leaves_the_catalog_unchanged(tmp_path, btc, monkeypatch):
    frame = real_klines("bybit_linear_BTCUSDT_5m", 600)
    catalog = tmp_path / "catalog"
    ingest_klines([_parquet(tmp_path, "a", frame[:300])], btc, "5m", catalog)
    before = _snapshot(catalog)

    def write_half_then_fail(table, path):
        path.write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(ingest_module, "_write_parquet", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        ingest_klines([_parquet(tmp_path, "b", frame)], btc, "5m", catalog)

    assert _snapshot(catalog) == before
    assert not (catalog / ".staging").exists()
    assert len(_catalog_bars(catalog)) == 300


def test_failure_between_the_two_renames_is_rolled_back(tmp_path, btc, monkeypatch):
    frame = real_klines("bybit_linear_BTCUSDT_5m", 600)
    catalog = tmp_path / "catalog"
    ingest_klines([_parquet(tmp_path, "a", frame[:300])], btc, "5m", catalog)
    before = _snapshot(catalog)
    renames = []

    def rename_then_crash(source, target):
        renames.append((source, target))
        if len(renames) == 2:  # old directory moved aside, new one not yet in place
            raise OSError("crash mid-swap")
        Path(source).rename(target)

    monkeypatch.setattr(ingest_module, "_rename", rename_then_crash)
    with pytest.raises(OSError, match="crash mid-swap"):
        ingest_klines([_parquet(tmp_path, "b", frame)], btc, "5m", catalog)

    assert _snapshot(catalog) == before


def test_crash_between_renames_is_recovered_by_the_next_ingest(tmp_path, btc):
    catalog = tmp_path / "catalog"
    ingest_klines([_parquet(tmp_path, "a", real_klines("bybit_linear_BTCUSDT_5m", 50))], btc, "5m", catalog)
    before = _snapshot(catalog)
    bar_directory = catalog / "data" / "bar" / BAR_TYPE
    stage = catalog / ".staging" / "interrupted"
    stage.mkdir(parents=True)
    (stage / "target").write_text(str(bar_directory.relative_to(catalog)))
    bar_directory.rename(stage / "old")  # what a power cut after the first rename leaves behind

    restored = recover_interrupted_writes(catalog)

    assert restored == [bar_directory]
    (catalog / ".staging").rmdir()  # recovery alone keeps the (now empty) staging folder; a writer removes it
    assert _snapshot(catalog) == before


def test_second_writer_is_refused_while_the_lock_is_held(tmp_path, btc):
    catalog = tmp_path / "catalog"
    (catalog / ".staging").mkdir(parents=True)
    source = _parquet(tmp_path, "a", real_klines("bybit_linear_BTCUSDT_5m", 10))
    with (catalog / ".staging" / "ingest.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)

        with pytest.raises(DataError, match="another ingest"):
            ingest_klines([source], btc, "5m", catalog)


def test_strict_mode_refuses_a_gap_and_writes_nothing(tmp_path, btc):
    frame = real_klines("bybit_linear_BTCUSDT_5m", 100)
    holed = _parquet(tmp_path, "holed", pl.concat([frame[:50], frame[52:]]))
    catalog = tmp_path / "catalog"

    with pytest.raises(IngestValidationError, match=r"\(strict\).*gaps: 1") as error:
        ingest_klines([holed], btc, "5m", catalog, strict=True)

    assert error.value.report.missing_bars == 2
    assert not (catalog / "data").exists()
    lenient = ingest_klines([holed], btc, "5m", catalog)
    assert lenient.bars_total == 98 and lenient.report.gap_count == 1


def test_crossed_bar_is_refused_without_strict(tmp_path, btc):
    frame = real_klines("bybit_linear_BTCUSDT_5m", 20)
    crossed = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.col("low")).otherwise(pl.col("high")).alias("high"),
        pl.when(pl.int_range(pl.len()) == 3).then(pl.col("high")).otherwise(pl.col("low")).alias("low"),
    )

    with pytest.raises(IngestValidationError, match=r"crossed OHLC: 1 \(at 2025-01-01 00:15\)"):
        ingest_klines([_parquet(tmp_path, "x", crossed)], btc, "5m", tmp_path / "catalog")


def test_exact_duplicate_rows_are_written_once_and_reported(tmp_path, btc):
    frame = real_klines("bybit_linear_BTCUSDT_5m", 30)

    result = ingest_klines(
        [_parquet(tmp_path, "d", pl.concat([frame, frame[10:12]]))], btc, "5m", tmp_path / "c"
    )

    assert (result.input_bars, result.duplicate_rows_collapsed, result.bars_total) == (32, 2, 30)
    assert result.report.duplicate_timestamps == 2


def test_start_and_end_days_are_inclusive_on_the_open_time(tmp_path, btc):
    source = _parquet(tmp_path, "btc", real_klines("bybit_linear_BTCUSDT_5m", 288 * 4))

    result = ingest_klines([source], btc, "5m", tmp_path / "c", start=date(2025, 1, 2), end=date(2025, 1, 3))

    assert result.bars_total == 288 * 2
    assert result.report.first_ts_open == datetime(2025, 1, 2, tzinfo=UTC)
    assert result.last_ts_event == datetime(2025, 1, 4, tzinfo=UTC)  # the 23:55 bar closes at midnight


def test_range_without_bars_is_a_data_error(tmp_path, btc):
    source = _parquet(tmp_path, "btc", real_klines("bybit_linear_BTCUSDT_5m", 10))

    with pytest.raises(DataError, match="no bars open between 2030-01-01"):
        ingest_klines([source], btc, "5m", tmp_path / "c", start=date(2030, 1, 1))


def test_hourly_bars_from_real_5m_bars_are_stamped_an_hour_after_open(tmp_path, btc):
    hourly = (
        real_klines("bybit_linear_BTCUSDT_5m", 288)
        .group_by_dynamic("ts_open", every="1h")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum().round(3),
        )
    )

    result = ingest_klines([_parquet(tmp_path, "h", hourly)], btc, "1h", tmp_path / "c")

    assert result.bar_type == "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"
    assert result.first_ts_event == datetime(2025, 1, 1, 1, tzinfo=UTC)
    assert result.bars_total == 24


def test_a_bar_off_the_interval_grid_is_reported_as_irregular(tmp_path, btc):
    frame = real_klines("bybit_linear_BTCUSDT_5m", 24)
    shifted = frame["ts_open"].to_list()
    shifted[10] = shifted[10] + timedelta(minutes=2)  # one bar 2 minutes off the 5-minute grid
    source = _parquet(tmp_path, "btc", frame.with_columns(pl.Series("ts_open", shifted)))

    with pytest.raises(IngestValidationError, match="irregular timestamps"):
        ingest_klines([source], btc, "5m", tmp_path / "c")


def test_coverage_and_instrument_ids_come_from_metadata(tmp_path, btc):
    catalog = tmp_path / "c"
    ingest_klines([_parquet(tmp_path, "a", real_klines("bybit_linear_BTCUSDT_5m", 100))], btc, "5m", catalog)
    eth = bybit_linear_instrument("ETHUSDT")
    ingest_klines([_parquet(tmp_path, "b", real_klines("bybit_linear_ETHUSDT_5m", 40))], eth, "5m", catalog)

    coverage = catalog_coverage(catalog)

    assert [tuple(item) for item in coverage] == [
        (BAR_TYPE, "BTCUSDT-LINEAR.BYBIT", 1_735_689_900_000_000_000, 1_735_719_600_000_000_000, 100),
        (
            "ETHUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL",
            "ETHUSDT-LINEAR.BYBIT",
            1_735_689_900_000_000_000,
            1_735_701_600_000_000_000,
            40,
        ),
    ]
    assert coverage[0].first_ts_event == datetime(2025, 1, 1, 0, 5, tzinfo=UTC)
    assert instrument_ids(catalog) == ["BTCUSDT-LINEAR.BYBIT", "ETHUSDT-LINEAR.BYBIT"]
    assert {str(item.id) for item in ParquetDataCatalog(str(catalog)).instruments()} == set(
        instrument_ids(catalog)
    )


def test_progress_reports_each_stage(tmp_path, btc):
    calls = []
    source = _parquet(tmp_path, "a", real_klines("bybit_linear_BTCUSDT_5m", 50))

    ingest_klines([source], btc, "5m", tmp_path / "c", progress=lambda *call: calls.append(call))

    assert {stage for stage, _, _ in calls} == {"read", "convert", "write"}
    assert ("write", 50, 50) in calls


def test_catalog_written_with_another_precision_is_not_merged(tmp_path, btc):
    catalog = tmp_path / "c"
    frame = real_klines("bybit_linear_BTCUSDT_5m", 20)
    ingest_klines([_parquet(tmp_path, "a", frame)], btc, "5m", catalog)
    fields = CryptoPerpetual.to_dict(btc) | {
        "price_precision": 1,
        "price_increment": "0.1",
        "min_price": "0.1",
    }
    coarser = CryptoPerpetual.from_dict(fields)

    with pytest.raises(DataError, match="price_precision=2, .*the input has .*price_precision=1"):
        ingest_klines([_parquet(tmp_path, "b", frame)], coarser, "5m", catalog)


def test_a_refused_ingest_leaves_the_catalog_byte_identical(tmp_path, btc):
    frame = real_klines("bybit_linear_BTCUSDT_5m", 300)
    catalog = tmp_path / "catalog"
    ingest_klines([_parquet(tmp_path, "a", frame)], btc, "5m", catalog)
    before = _snapshot(catalog)
    other_close = frame.with_columns(
        (pl.col("close") + 0.1).alias("close"), (pl.col("high") + 0.1).alias("high")
    )

    with pytest.raises(DataError):  # the same bars with other prices: refused without --replace
        ingest_klines([_parquet(tmp_path, "b", other_close)], btc, "5m", catalog)

    assert _snapshot(catalog) == before
    assert not (catalog / ".staging").exists()


def test_a_directory_is_named_as_a_directory(tmp_path, btc):
    with pytest.raises(DataError, match=r"is a directory, not a kline file"):
        ingest_klines([tmp_path], btc, "5m", tmp_path / "catalog")
    assert not (tmp_path / "catalog").exists()


@pytest.mark.parametrize(("interval", "own"), [("1m", "5m"), ("15m", "5m")])
def test_klines_of_another_interval_are_refused_naming_both(tmp_path, btc, interval, own):
    source = _parquet(tmp_path, "btc", real_klines("bybit_linear_BTCUSDT_5m", 300))

    with pytest.raises(
        DataError, match=f"interval '{interval}' does not match btc.parquet: its bars are {own} apart"
    ):
        ingest_klines([source], btc, interval, tmp_path / "catalog")

    assert not (tmp_path / "catalog").exists()


def test_catalog_validate_flags_bars_stored_under_another_interval(tmp_path, btc, monkeypatch):
    from qa_engine.data.catalog_validation import validate_catalog

    source = _parquet(tmp_path, "btc", real_klines("bybit_linear_BTCUSDT_5m", 300))
    monkeypatch.setattr(ingest_module, "check_interval", lambda *args: None)  # as before the check existed
    ingest_klines([source], btc, "1m", tmp_path / "catalog")

    report = validate_catalog(tmp_path / "catalog")

    [finding] = [f for f in report.errors if f.check == "spacing is the interval"]
    assert "bars are mostly 300 s apart, not 60 s" in finding.detail
