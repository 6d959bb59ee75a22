"""Builders for actor tests: a tiny Guardian artifact trained on real bars, a bare Nautilus kernel to
drive an actor's handlers by hand, and FeatureVectors made from batch-computed real features."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from nautilus_trader.common.actor import Actor
from nautilus_trader.common.component import MessageBus
from nautilus_trader.common.component import TestClock
from nautilus_trader.data.engine import DataEngine
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.portfolio.portfolio import Portfolio
from nautilus_trader.test_kit.stubs.component import TestComponentStubs
from nautilus_trader.test_kit.stubs.identifiers import TestIdStubs

from qa_engine.features.batch import compute_features_batch
from qa_engine.features.io import interval_ns
from qa_engine.features.io import load_catalog_bars
from qa_engine.features.io import load_kline_file
from qa_engine.features.spec import FeatureSet
from qa_engine.signals import FeatureVector
from qa_engine.signals import pack
from tests.pristine import pristine_catalog

REPO_ROOT = Path(__file__).resolve().parents[3]
INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"
BAR_TYPE = f"{INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL"
STEP_NS = interval_ns("5m")
GUARDIAN_TRAINING_BARS = "bybit_linear_BTCUSDT_5m"  # data/klines, real Bybit klines


def tiny_guardian_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Guardian (16-bar windows, 4-d latent, one short epoch) trained on real Bybit BTCUSDT 5m
    bars of 2025-02-01 .. 2025-02-11 (after the sample catalog's January), exported as an artifact.
    Built once per test session (about 6 s on one core); stands in until artifacts/guardian exists."""
    folder = tmp_path_factory.getbasetemp() / "tiny_guardian_artifact"
    if (folder / "manifest.json").is_file():
        return folder
    import torch

    from qa_engine.features.build import build_feature_table
    from qa_engine.features.sets import guardian_feature_set
    from qa_engine.models.data import FoldConfig
    from qa_engine.models.guardian.train import export_guardian
    from qa_engine.models.guardian.train import train_guardian
    from tests.factories import research_klines
    from tests.unit.models.guardian.guardian_data import TINY
    from tests.unit.models.guardian.guardian_data import TINY_TRAINER

    source = research_klines(GUARDIAN_TRAINING_BARS)
    torch.set_num_threads(1)
    fold = FoldConfig(
        name="tiny",
        train_start="2025-02-01",
        validation_start="2025-02-07",
        test_start="2025-02-09",
        test_end="2025-02-11",
    )
    train_start, _ = fold.bounds_ns("train")
    bars = load_kline_file(source, "5m").filter(
        (pl.col("ts") >= train_start - 400 * STEP_NS) & (pl.col("ts") < fold.bounds_ns("test")[1])
    )
    registered = guardian_feature_set()
    table = build_feature_table(bars, registered, STEP_NS, train_end_ns=fold.bounds_ns("train")[1])
    config, trainer = TINY, TINY_TRAINER
    run_dir = tmp_path_factory.mktemp("tiny_guardian_run")
    trained = train_guardian(
        table.table, fold, run_dir, config, trainer, "5m", table.feature_set, registered.hash
    )
    export_guardian(trained.model, folder)
    return folder


@cache
def batch_features(feature_set: FeatureSet, start: str, end: str) -> tuple[np.ndarray, np.ndarray]:
    """(ts (N,), values (N, F)) of `feature_set` computed in batch (qa_engine.features) over the sample
    catalog's Bybit BTCUSDT 5m bars closing in [start, end) (ISO, UTC); NaN during the warm-up."""
    bars, _ = load_catalog_bars(pristine_catalog(), INSTRUMENT_ID, "5m")
    table = compute_features_batch(bars, feature_set, STEP_NS)
    ts = table.get_column("ts").dt.epoch("ns").to_numpy()
    start_ns, end_ns = (int(np.datetime64(text, "ns").astype(np.int64)) for text in (start, end))
    rows = (ts >= start_ns) & (ts < end_ns)
    values = table.select(feature_set.names).to_numpy().astype(np.float64)  # nulls -> NaN
    return ts[rows], values[rows]


def feature_vector(feature_set_hash: str, ts_ns: int, values: np.ndarray, warm: bool = True) -> FeatureVector:
    return FeatureVector(
        ts_event=int(ts_ns),
        ts_init=int(ts_ns),
        instrument_id=InstrumentId.from_str(INSTRUMENT_ID),
        feature_set_hash=feature_set_hash,
        values_f8=pack(values),
        warm=warm,
    )


class Kernel:
    """The bare Nautilus components an actor needs (message bus, cache, clock, data engine), so a test
    can start an actor and call its handlers directly; `published` collects what it publishes."""

    def __init__(self) -> None:
        self.clock = TestClock()
        self.msgbus = MessageBus(trader_id=TestIdStubs.trader_id(), clock=self.clock)
        self.cache = TestComponentStubs.cache()
        self.portfolio = Portfolio(msgbus=self.msgbus, cache=self.cache, clock=self.clock)
        self.data_engine = DataEngine(msgbus=self.msgbus, cache=self.cache, clock=self.clock)
        self.published: list = []

    def start(self, actor: Actor) -> Actor:
        actor.register_base(portfolio=self.portfolio, msgbus=self.msgbus, cache=self.cache, clock=self.clock)
        self.msgbus.subscribe(topic=f"data.{actor.output_type.topic}", handler=self.published.append)
        actor.start()
        # Fire what is due now, as the engine's clock would on the next event (e.g. a refusal's stop).
        for handler in self.clock.advance_time(self.clock.timestamp_ns()):
            handler.handle()
        return actor
