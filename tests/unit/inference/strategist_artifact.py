"""A tiny Strategist artifact for tests, trained once per test process on real bars.

`train_strategist_from_config` on a few days of Bybit BTCUSDT 5m bars from data/klines (train
2025-02-01..02-06, validation ..02-08, test ..02-10), one epoch of 256 windows, a one-layer model
with K = 8: about 4 s on one CPU thread. The model is nearly untrained (validation loss ~ ln 3): the
tests that use it check plumbing and equalities, not skill. Its registered feature set is the
default set, so a FeatureActor with `artifact=<folder>` streams its fitted set.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

import pytest

from tests.factories import research_klines

FOLD = {
    "name": "tiny",
    "train_start": "2025-02-01T00:00:00",
    "validation_start": "2025-02-06T00:00:00",
    "test_start": "2025-02-08T00:00:00",
    "test_end": "2025-02-10T00:00:00",
}
CONTEXT_LENGTH = 8
EPISODE_BARS = 64


def strategist_train_config():
    from qa_engine.models.strategist.train import StrategistTrainConfig

    klines = research_klines("bybit_linear_BTCUSDT_5m")
    return StrategistTrainConfig.model_validate(
        {
            "id": "tiny-strategist",
            "data": {
                "sources": [{"symbol": "BTCUSDT", "klines": str(klines)}],
                "interval": "5m",
                "history_bars": 600,  # the fitted default set warms up in ~500 bars
                "folds": [FOLD],
            },
            "model": {"context_length": CONTEXT_LENGTH, "n_embd": 16, "n_head": 2, "n_layer": 1},
            "trainer": {
                "max_epochs": 1,
                "batch_size": 64,
                "train_windows_per_epoch": 256,
                "validation_windows": 256,
                "warmup_steps": 2,
                "threads": 1,
            },
            "episode_bars": EPISODE_BARS,
            "evaluate_test": True,
        }
    )


@cache
def tiny_strategist_run() -> Path:
    """The run folder (artifact/, out_of_sample.json, ...) of the tiny Strategist; trained on first use."""
    torch = pytest.importorskip("torch")
    from qa_engine.models.strategist.train import train_strategist_from_config

    run_dir = Path(tempfile.mkdtemp(prefix="qa-tiny-strategist-"))
    atexit.register(shutil.rmtree, run_dir, True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_strategist_from_config(strategist_train_config(), run_dir)
    finally:
        torch.set_num_threads(threads)
    return run_dir


def tiny_strategist_artifact() -> Path:
    return tiny_strategist_run() / "artifact"
