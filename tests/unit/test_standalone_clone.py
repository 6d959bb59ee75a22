"""A clone stands on its own: no project file outside the docs reaches for the workspace's data folder
beside the repository, every shipped data file is there with the rows and bytes its provenance records, and
a missing file or row fails loudly instead of skipping."""

from __future__ import annotations

import hashlib
import re
import subprocess

import polars as pl
import pytest

from tests import factories
from tests.factories import KLINE_SLICES
from tests.factories import KLINES_DIR
from tests.factories import REPO_ROOT
from tests.factories import TEST_DATA
from tests.factories import real_klines

# Written in pieces so that this file does not match itself.
FORBIDDEN = re.compile(
    "|".join(
        [
            re.escape(".." + "/shared"),  # also two levels up
            re.escape("/work" + "/shared"),
            r"""["']shared["']\s*/\s*["']data["']""",  # a path joined from those two names
        ]
    ).encode()
)
FUNDING_DIR = REPO_ROOT / "data" / "funding"
PROVENANCE_FILES = (
    KLINES_DIR / "PROVENANCE.md",
    FUNDING_DIR / "PROVENANCE.md",
    TEST_DATA / "PROVENANCE.md",
    TEST_DATA / "bybit_api_samples" / "README.md",
)
KLINE_SCHEMA = pl.Schema(
    {
        "ts_open": pl.Datetime("ns", "UTC"),
        "open": pl.Float64,
        "high": pl.Float64,
        "low": pl.Float64,
        "close": pl.Float64,
        "volume": pl.Float64,
    }
)


def project_files() -> list[str]:
    """Every file of the checkout that a commit would hold: tracked, plus untracked files git does not
    ignore (`git ls-files`)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (REPO_ROOT / name).is_file()})


def offending_lines(names: list[str]) -> list[str]:
    found = []
    for name in names:
        if name.endswith(".md"):  # docs may say where data came from
            continue
        content = (REPO_ROOT / name).read_bytes()
        for match in FORBIDDEN.finditer(content):
            line = content.count(b"\n", 0, match.start()) + 1
            found.append(f"{name}:{line}: {match.group().decode(errors='replace')}")
    return found


def test_no_project_file_outside_the_docs_refers_to_a_data_folder_beside_the_repository() -> None:
    names = project_files()

    assert len(names) > 100 and "tests/factories.py" in names
    assert offending_lines(names) == []


def test_the_reference_check_sees_a_reference(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("tests.unit.test_standalone_clone.REPO_ROOT", tmp_path)
    (tmp_path / "config.toml").write_text('klines = "' + ".." + '/shared/data/x.parquet"\n')
    joined = '"shared" ' + '/ "data"'
    (tmp_path / "bench.py").write_text(f"DATA = ROOT.parent / {joined}\n")
    (tmp_path / "notes.md").write_text("copied from .." + "/shared/data\n")

    assert offending_lines(["config.toml", "bench.py", "notes.md"]) == [
        "config.toml:1: " + ".." + "/shared",
        f"bench.py:1: {joined}",
    ]


@pytest.mark.parametrize("piece", KLINE_SLICES, ids=lambda piece: piece.path.name)
def test_every_kline_slice_is_shipped_with_its_rows_and_schema(piece) -> None:
    frame = pl.read_parquet(piece.path)

    assert frame.schema == KLINE_SCHEMA
    assert frame.height == piece.rows
    assert frame.get_column("ts_open").is_sorted() and frame.get_column("ts_open").n_unique() == frame.height
    assert 0 <= piece.first_row < piece.end_row <= factories.UPSTREAM_ROWS[piece.name]


def test_every_shipped_data_file_has_its_sha256_in_a_provenance_file() -> None:
    documented = "".join(path.read_text() for path in PROVENANCE_FILES)
    shipped = [
        path
        for folder in (KLINES_DIR, FUNDING_DIR, TEST_DATA)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix not in {".md", ".py", ".pyc"}
    ]

    assert len(shipped) >= len(KLINE_SLICES) + 7
    missing = [
        str(path.relative_to(REPO_ROOT))
        for path in shipped
        if hashlib.sha256(path.read_bytes()).hexdigest() not in documented
    ]
    assert missing == []


def test_rows_that_are_not_shipped_are_an_error_not_a_skip() -> None:
    with pytest.raises(
        LookupError, match=r"rows 100000\.\.100010 of binance_futures_BTCUSDT_5m are not shipped"
    ):
        real_klines("binance_futures_BTCUSDT_5m", 10, offset=100_000)
    with pytest.raises(LookupError, match="no real kline series 'binance_spot_BTCUSDT_5m'"):
        real_klines("binance_spot_BTCUSDT_5m", 10)


def test_a_missing_slice_file_is_an_error_not_a_skip(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(factories, "TEST_KLINES_DIR", tmp_path)
    factories.kline_stretches.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="shipped test data .* is missing"):
            real_klines("binance_futures_ETHUSDT_1m", 10)
    finally:
        factories.kline_stretches.cache_clear()


def test_rows_across_the_hole_come_from_the_test_slice_and_data_klines_as_one_stretch() -> None:
    bars = real_klines("binance_futures_BTCUSDT_5m", 4, start="2024-05-14T15:30")

    assert [str(t) for t in bars.get_column("ts_open")] == [
        "2024-05-14 15:30:00+00:00",
        "2024-05-14 15:35:00+00:00",
        "2024-12-31 00:00:00+00:00",
        "2024-12-31 00:05:00+00:00",
    ]


@pytest.mark.parametrize("piece", KLINE_SLICES, ids=lambda piece: piece.path.name)
def test_real_bars_are_what_load_kline_file_gives_for_the_same_rows(piece) -> None:
    from qa_engine.features.io import load_kline_file

    expected = load_kline_file(piece.path, piece.name.rsplit("_", 1)[1])

    assert factories.real_bars(piece.name, piece.rows, offset=piece.first_row).equals(expected)
