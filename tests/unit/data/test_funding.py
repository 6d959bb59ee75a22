"""Funding rates stored as Nautilus FundingRateUpdate (qa_engine.data.funding).

The rates here are the two real records of tests/data/bybit_api_samples/http_get_funding_history.json
plus, where a test needs a series, decimal strings chosen for the test; these tests check storage, not
market values.
"""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pyarrow.parquet as pq
import pytest
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog

from adapters.bybit.historical import funding_frame
from qa_engine.data.funding import funding_coverage
from qa_engine.data.funding import funding_directory
from qa_engine.data.funding import merge_funding_rates
from qa_engine.data.ingest import catalog_writer
from qa_engine.errors import DataError
from tests.factories import bybit_sample

BTC_BYBIT = "BTCUSDT-LINEAR.BYBIT"


def _bybit_sample() -> pl.DataFrame:
    payload = json.loads(bybit_sample("http_get_funding_history.json").read_text())
    return funding_frame(payload["result"]["list"])


def test_bybit_sample_parses_to_exact_rates_at_funding_times():
    frame = _bybit_sample().sort("ts_event")

    assert frame["ts_event"].to_list() == [1709856000000 * 1_000_000, 1709884800000 * 1_000_000]
    assert frame["rate"].to_list() == ["0.00015", "0.0001"]


def test_merged_rates_read_back_through_parquet_data_catalog_as_funding_rate_updates(tmp_path):
    with catalog_writer(tmp_path) as root:
        merge_funding_rates(root, BTC_BYBIT, _bybit_sample())

    updates = ParquetDataCatalog(str(tmp_path)).query(FundingRateUpdate, identifiers=[BTC_BYBIT])

    assert [type(item) for item in updates] == [FundingRateUpdate, FundingRateUpdate]
    # 1.231's deserializer leaves `rate` as the decimal text: readers wrap it in Decimal(str(...)).
    assert [
        (str(item.instrument_id), Decimal(str(item.rate)), item.ts_event, item.ts_init) for item in updates
    ] == [
        (BTC_BYBIT, Decimal("0.00015"), 1709856000000000000, 1709856000000000000),
        (BTC_BYBIT, Decimal("0.0001"), 1709884800000000000, 1709884800000000000),
    ]
    assert str(updates[0].rate) == "0.00015"


def test_our_file_equals_what_parquet_data_catalog_write_data_writes(tmp_path):
    frame = _bybit_sample()
    instrument_id = InstrumentId.from_str(BTC_BYBIT)
    updates = [
        FundingRateUpdate(instrument_id, Decimal(rate), ts, ts)
        for ts, rate in sorted(zip(frame["ts_event"], frame["rate"], strict=True))
    ]
    ParquetDataCatalog(str(tmp_path / "theirs")).write_data(updates)
    with catalog_writer(tmp_path / "ours") as root:
        merge_funding_rates(root, BTC_BYBIT, frame)

    theirs = [pq.read_table(f) for f in funding_directory(tmp_path / "theirs", BTC_BYBIT).glob("*.parquet")]
    ours = [pq.read_table(f) for f in funding_directory(tmp_path / "ours", BTC_BYBIT).glob("*.parquet")]
    assert len(theirs) == len(ours) == 1
    assert ours[0].equals(theirs[0])
    assert ours[0].schema.metadata == theirs[0].schema.metadata == {b"instrument_id": BTC_BYBIT.encode()}


def test_files_of_the_previous_format_are_still_read(tmp_path):
    import pyarrow as pa

    directory = funding_directory(tmp_path, BTC_BYBIT)
    directory.mkdir(parents=True)
    legacy = pa.table(
        {
            "instrument_id": [BTC_BYBIT],
            "rate": pa.array([Decimal("-0.000012")], pa.decimal128(38, 18)),
            "next_funding_ns": pa.nulls(1, pa.uint64()),
            "ts_event": pa.array([1709827200000000000], pa.uint64()),
            "ts_init": pa.array([1709827200000000000], pa.uint64()),
        }
    )
    pq.write_table(legacy, directory / "old.parquet")

    with catalog_writer(tmp_path) as root:
        merged = merge_funding_rates(root, BTC_BYBIT, _bybit_sample())

    assert (merged.added, merged.total) == (2, 3)
    updates = ParquetDataCatalog(str(tmp_path)).query(FundingRateUpdate, identifiers=[BTC_BYBIT])
    assert [str(item.rate) for item in updates] == ["-0.000012", "0.00015", "0.0001"]


def test_remerging_is_idempotent_and_a_changed_rate_is_refused(tmp_path):
    frame = _bybit_sample()
    with catalog_writer(tmp_path) as root:
        first = merge_funding_rates(root, BTC_BYBIT, frame)
        again = merge_funding_rates(root, BTC_BYBIT, frame)
        changed = frame.with_columns(
            pl.when(pl.col("rate") == "0.0001").then(pl.lit("0.0002")).otherwise("rate").alias("rate")
        )
        with pytest.raises(DataError, match="1 funding rates differ.*catalog 0.0001, venue 0.0002"):
            merge_funding_rates(root, BTC_BYBIT, changed)

    assert (first.added, again.added, again.identical, again.total) == (2, 0, 2, 2)
    coverage = funding_coverage(tmp_path)
    assert [(item.instrument_id, item.rows) for item in coverage] == [(BTC_BYBIT, 2)]
