"""Catalogs of real data built by tests from the research series in data/ (see data/klines/PROVENANCE.md)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from qa_engine.data.funding import merge_funding_rates
from qa_engine.data.funding import read_funding_file
from qa_engine.data.ingest import catalog_writer
from qa_engine.data.ingest import ingest_klines
from qa_engine.data.ingest import write_instrument
from qa_engine.plugins import load_instrument

ROOT = Path(__file__).resolve().parents[1]


def october_2025_catalog(catalog: Path) -> Path:
    """Bybit linear BTCUSDT 5m bars and 8 h funding rates of October 2025 (the 10-10 crash included)."""
    instrument = load_instrument("bybit-linear", "BTCUSDT")
    ingest_klines(
        [ROOT / "data/klines/bybit_linear_BTCUSDT_5m.parquet"],
        instrument,
        "5m",
        catalog,
        start=date(2025, 10, 1),
        end=date(2025, 10, 31),
    )
    with catalog_writer(catalog) as root:
        write_instrument(root, instrument)
        merge_funding_rates(
            root,
            instrument.id.value,
            read_funding_file(ROOT / "data/funding/bybit_linear_BTCUSDT_funding.parquet"),
        )
    return catalog
