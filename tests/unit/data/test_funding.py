"""Funding rates stored as Nautilus FundingRateUpdate (qa_engine.data.funding).

The rates here are the two real records of ../shared/data/bybit_api_samples/http_get_funding_history.json
plus, where a test needs a series, decimal strings chosen for the test (the shared data holds no funding
history); these tests check storage, not market values.
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
from qa_engine.data.funding import FUNDING_SCHEMA
from qa_engine.data.funding import funding_coverage
from qa_engine.data.funding import funding_table
from qa_engine.data.funding import merge_funding_rates
from qa_engine.data.funding import register_funding_rate_arrow
from qa_engine.data.ingest import catalog_writer
from qa_engine.errors import DataError
from tests.factories import shared_data_dir

BTC_BYBIT = "BTCUSDT-LINEAR.BYBIT"


def _bybit_sample() -> pl.DataFrame:
    payload = json.loads(
        (shared_data_dir() / "bybit_api_samples" / "http_get_funding_history.json").read_text()
    )
    return funding_frame(payload["result"]["list"])


def test_bybit_sample_parses_to_exact_rates_at_funding_times():
    frame = _bybit_sample().sort("ts_event")

    assert frame["ts_event"].to_list() == [1709856000000 * 1_000_000, 1709884800000 * 1_000_000]
    assert frame["rate"].to_list() == ["0.00015", "0.0001"]


def test_merged_rates_read_back_through_parquet_data_catalog_as_funding_rate_updates(tmp_path):
    register_funding_rate_arrow()
    with catalog_writer(tmp_path) as root:
        merge_funding_rates(root, BTC_BYBIT, _bybit_sample())

    updates = ParquetDataCatalog(str(tmp_path)).query(FundingRateUpdate, identifiers=[BTC_BYBIT])

    assert [type(item) for item in updates] == [FundingRateUpdate, FundingRateUpdate]
    assert [(str(item.instrument_id), item.rate, item.ts_event, item.ts_init) for item in updates] == [
        (BTC_BYBIT, Decimal("0.00015"), 1709856000000000000, 1709856000000000000),
        (BTC_BYBIT, Decimal("0.0001"), 1709884800000000000, 1709884800000000000),
    ]
    assert str(updates[0].rate) == "0.00015"


def test_our_table_equals_what_parquet_data_catalog_write_data_writes(tmp_path):
    register_funding_rate_arrow()
    frame = _bybit_sample()
    instrument_id = InstrumentId.from_str(BTC_BYBIT)
    updates = [
        FundingRateUpdate(instrument_id, Decimal(rate), ts, ts)
        for ts, rate in sorted(zip(frame["ts_event"], frame["rate"], strict=True))
    ]

    ParquetDataCatalog(str(tmp_path)).write_data(updates)

    written = list((tmp_path / "data" / "funding_rate_update" / BTC_BYBIT).glob("*.parquet"))
    theirs = pq.read_table(written[0])
    ours = funding_table(BTC_BYBIT, frame)
    assert theirs.cast(FUNDING_SCHEMA).equals(ours.cast(FUNDING_SCHEMA))
    assert theirs.schema.metadata[b"instrument_id"] == BTC_BYBIT.encode()


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
