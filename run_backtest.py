#!/usr/bin/env python
"""Run a backtest: a thin shim over `qa backtest run` (same options: --config, --set, --out, --dry-run)."""

import sys

from qa_engine.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["backtest", "run", *sys.argv[1:]]))
