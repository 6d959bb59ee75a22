"""`qa live run` in a child process, as `qa parity` and the soak run it against the loopback venue."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qa_engine.config.loader import dump_toml
from qa_engine.config.models import LiveConfig
from qa_engine.live.clients import KEY_VARIABLES


@contextmanager
def live_child(
    live: LiveConfig,
    run_dir: Path,
    live_dir: Path,
    api_key: str,
    api_secret: str,
    extra_env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """Start the node of `live` (written to run_dir/live.toml; the testnet key pair in its environment only,
    never in a file), its output in run_dir/live.stdout, its run folder `live_dir`. The caller stops it."""
    live_toml = run_dir / "live.toml"
    live_toml.write_text(dump_toml(live))
    key_name, secret_name = KEY_VARIABLES["testnet"]
    env = os.environ | {key_name: api_key, secret_name: api_secret} | (extra_env or {})
    command = [sys.executable, "-m", "qa_engine.cli.main", "live", "run", "--config", str(live_toml),
               "--out", str(live_dir)]  # fmt: skip
    with (run_dir / "live.stdout").open("w") as stdout:
        yield subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.STDOUT)
