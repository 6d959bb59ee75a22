#!/usr/bin/env bash
# Re-creates the committed sample catalog (catalog/data) from the real kline files named in
# catalog/README.md (Provenance), with the same `qa catalog ingest` command users run.
# Usage (from anywhere): catalog/build_sample.sh KLINES_DIR [FUNDING_DIR]   (QA=/path/to/qa overrides
# the command). KLINES_DIR holds bybit_linear_BTCUSDT_5m.parquet, bybit_linear_ETHUSDT_5m.parquet and
# binance_futures_BTCUSDT_1m.parquet and bybit_linear_BTCUSDT_1h.parquet (ts_open + OHLCV, the schema
# qa catalog ingest reads; the 1h file is the repository's data/klines one, see its PROVENANCE.md); FUNDING_DIR
# (default: the repository's data/funding) the funding-rate files of the same instruments.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ ! -d "$1" ]; then
    echo "usage: catalog/build_sample.sh KLINES_DIR [FUNDING_DIR]  (see catalog/README.md)" >&2
    exit 2
fi
SOURCE=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
FUNDING=$(cd "${2:-data/funding}" && pwd)
QA="${QA:-.venv/bin/qa}"

rm -rf catalog/data catalog/.staging

# Bybit linear perpetuals, 5m, January 2025 (31 days, bar open 2025-01-01 00:00 -> 2025-01-31 23:55).
"$QA" catalog ingest "$SOURCE/bybit_linear_BTCUSDT_5m.parquet" --venue bybit-linear --symbol BTCUSDT \
    --interval 5m --start 2025-01-01 --end 2025-01-31 --strict --catalog catalog
"$QA" catalog ingest "$SOURCE/bybit_linear_ETHUSDT_5m.parquet" --venue bybit-linear --symbol ETHUSDT \
    --interval 5m --start 2025-01-01 --end 2025-01-31 --strict --catalog catalog

# Binance USD-M perpetual BTCUSDT, 1m, 30 days (bar open 2025-05-05 00:00 -> 2025-06-03 23:59,
# so bar close 2025-05-05 00:01 -> 2025-06-04 00:00).
"$QA" catalog ingest "$SOURCE/binance_futures_BTCUSDT_1m.parquet" --venue binance-futures --symbol BTCUSDT \
    --interval 1m --start 2025-05-05 --end 2025-06-03 --strict --catalog catalog

# Bybit linear BTCUSDT, 1h, 2025-12-01 .. 2026-02-08 (bar open 2025-12-01 00:00 -> 2026-02-08 22:00): the
# hourly Trinity's demo (configs/backtest/trinity_1h.toml): December warms it up, January and February
# are out of sample for artifacts/hourly (trained to 2025-10, validated on 2025-11 .. 12).
"$QA" catalog ingest "$SOURCE/bybit_linear_BTCUSDT_1h.parquet" --venue bybit-linear --symbol BTCUSDT \
    --interval 1h --start 2025-12-01 --end 2026-02-08 --strict --catalog catalog

# Funding rates of the same instruments over the same days (8 h settlements; the run range's last bar
# closes at 00:00 of the day after, a funding time, so that day is included).
"$QA" catalog ingest-funding "$FUNDING/bybit_linear_BTCUSDT_funding.parquet" --venue bybit-linear \
    --symbol BTCUSDT --start 2025-01-01 --end 2025-02-01 --catalog catalog
"$QA" catalog ingest-funding "$FUNDING/bybit_linear_BTCUSDT_funding.parquet" --venue bybit-linear \
    --symbol BTCUSDT --start 2025-12-01 --end 2026-02-09 --catalog catalog
"$QA" catalog ingest-funding "$FUNDING/bybit_linear_ETHUSDT_funding.parquet" --venue bybit-linear \
    --symbol ETHUSDT --start 2025-01-01 --end 2025-02-01 --catalog catalog
"$QA" catalog ingest-funding "$FUNDING/binance_futures_BTCUSDT_funding.parquet" --venue binance-futures \
    --symbol BTCUSDT --start 2025-05-05 --end 2025-06-04 --catalog catalog

rm -rf catalog/.staging  # the writer's lock and stage folder; nothing to commit
"$QA" catalog list --catalog catalog
du -sh catalog/data

# The committed files and their sha256: the tests copy exactly these (tests/pristine.py).
(cd catalog && find data -type f | LC_ALL=C sort | xargs sha256sum) > catalog/MANIFEST.sha256
