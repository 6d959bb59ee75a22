"""Re-create the shipped real-data files from the upstream files, and check them.

    PYTHONPATH=. .venv/bin/python tests/data/build_test_data.py UPSTREAM_DIR [--check]

UPSTREAM_DIR holds the merged kline series named in `tests.factories.UPSTREAM_ROWS`
(`<name>.parquet`: ts_open timestamp[ns, UTC] + OHLCV float64, sorted, one file per series, built from the
repositories listed in tests/data/PROVENANCE.md and data/klines/PROVENANCE.md), `ticks/` and
`bybit_api_samples/`. Every slice of `tests.factories.KLINE_SLICES` is written to its path (data/klines/ or
tests/data/klines/) with pyarrow, zstd level 19, no dictionary, DELTA_BINARY_PACKED on ts_open (the upstream
files' settings), rows copied unchanged; a slice that is a whole series is copied byte for byte, and so are
the tick samples and API payloads of COPIED. --check writes nothing: it compares every shipped file with
the upstream rows (or bytes). Both print one line per file: path, upstream rows, row count, sha256, bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.factories import KLINE_SLICES
from tests.factories import REPO_ROOT
from tests.factories import TEST_DATA
from tests.factories import UPSTREAM_ROWS

# Files copied byte for byte: path under UPSTREAM_DIR -> path in the repository.
COPIED = {
    f"ticks/{name}": TEST_DATA / "ticks" / name
    for name in (
        "binance_futures_BTCUSDT_trades_20240808.parquet",
        "binance_futures_ETHUSDT_trades_20240808.parquet",
        "binance_futures_BTCUSDT_bookticker_20240808.parquet",
        "binance_futures_ETHUSDT_bookticker_20240808.parquet",
    )
} | {
    f"bybit_api_samples/{name}": TEST_DATA / "bybit_api_samples" / name
    for name in (
        "http_get_funding_history.json",
        "http_get_klines_linear.json",
        "http_get_instruments_linear_symbol_type.json",
    )
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_slice(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table.replace_schema_metadata(None),
        path,
        compression="zstd",
        compression_level=19,
        use_dictionary=False,
        column_encoding={"ts_open": "DELTA_BINARY_PACKED"},
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "upstream", type=Path, help="folder of the upstream kline series, ticks/ and bybit_api_samples/"
    )
    parser.add_argument("--check", action="store_true", help="compare the shipped files, write nothing")
    arguments = parser.parse_args()
    upstream: Path = arguments.upstream
    problems = []
    tables: dict[str, pa.Table] = {}
    for piece in KLINE_SLICES:
        source = upstream / f"{piece.name}.parquet"
        if piece.name not in tables:
            tables[piece.name] = pq.read_table(source)
            if tables[piece.name].num_rows != UPSTREAM_ROWS[piece.name]:
                problems.append(
                    f"{source}: {tables[piece.name].num_rows} rows, expected {UPSTREAM_ROWS[piece.name]}"
                )
        whole = piece.first_row == 0 and piece.end_row == UPSTREAM_ROWS[piece.name]
        rows = tables[piece.name].slice(piece.first_row, piece.rows)
        if not arguments.check:
            if whole:
                piece.path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, piece.path)
            else:
                write_slice(rows, piece.path)
        shipped = pq.read_table(piece.path)
        if not shipped.equals(rows) or shipped.schema != rows.schema.remove_metadata():
            problems.append(
                f"{piece.path}: rows or schema differ from upstream rows {piece.first_row}..{piece.end_row}"
            )
        if whole and sha256(piece.path) != sha256(source):
            problems.append(f"{piece.path}: not a byte copy of {source}")
        print(
            f"{piece.path.relative_to(REPO_ROOT)}\t{piece.first_row}..{piece.end_row}\t{piece.rows}\t"
            f"{sha256(piece.path)}\t{piece.path.stat().st_size}"
        )
    for relative, target in COPIED.items():
        source = upstream / relative
        if not arguments.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        if target.read_bytes() != source.read_bytes():
            problems.append(f"{target}: not a byte copy of {source}")
        print(f"{target.relative_to(REPO_ROOT)}\twhole file\t-\t{sha256(target)}\t{target.stat().st_size}")
    for problem in problems:
        print("PROBLEM:", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
