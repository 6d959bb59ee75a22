#!/usr/bin/env python
"""Run live trading on Bybit: a thin shim over `qa live run`."""

import sys

from qa_engine.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["live", "run", *sys.argv[1:]]))
