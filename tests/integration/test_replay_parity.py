"""Replay mode: signal records built in batch (`qa_engine.replay`) and replayed from the catalog reach
the subscribers exactly like the model actors' messages, after the bar of their close time.

A copy of the sample catalog's January 2025 Bybit BTCUSDT 5m bars (real bars) lives in tmp_path; the
records are built over it with the committed Oracle and Guardian (a tiny Guardian trained on real
February bars, tests/unit/actors/harness.py, where artifacts/guardian is missing) and the Strategist's
feature set. The Trinity runs use a tiny Strategist (tests/unit/inference/strategist_artifact.py)
with its gates opened: the committed Strategist proposes "flat" on every January bar, so its runs
would compare two empty order lists. The streamed runs start at the catalog's first bar, like the
build, so both begin their warm-up on the same bar.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import DataType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from actors.feature_actor import FeatureActor
from actors.guardian_actor import GuardianActor
from actors.oracle_actor import OracleActor
from qa_engine.backtest.runner import run_backtest
from qa_engine.config.models import BacktestConfig
from qa_engine.features.io import parse_time
from qa_engine.replay.build import SignalsRequest
from qa_engine.replay.build import build_signals
from qa_engine.signals import FeatureVector
from qa_engine.signals import Forecast
from qa_engine.signals import Regime
from qa_engine.signals import subscribe_bus
from tests.pristine import pristine_catalog
from tests.unit.actors.harness import tiny_guardian_artifact
from tests.unit.inference.strategist_artifact import tiny_strategist_artifact

REPO_ROOT = Path(__file__).resolve().parents[2]
ORACLE = REPO_ROOT / "artifacts" / "oracle"
INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"
BAR_TYPE = f"{INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL"
START, END = "2025-01-01T00:00:00Z", "2025-01-04T00:00:00Z"
TRINITY_END = "2025-01-08T00:00:00Z"  # the Trinity runs: 2 days of model warm-up, then 5 days of trading


class ReplayProbeConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    trade_every_forecasts: int = 40  # a market order on every N-th Forecast (probes the fill price)


class ReplayProbeStrategy(Strategy):
    """Records every bar, Forecast, Regime and FeatureVector in arrival order; on every N-th Forecast
    it submits a market order at once, to see which price the matching engine holds at that moment."""

    def __init__(self, config: ReplayProbeConfig) -> None:
        super().__init__(config)
        self.arrivals: list[tuple[str, int]] = []  # (class name, ts_event)
        self.closes: dict[int, float] = {}
        self.received: dict[str, list] = {"Forecast": [], "Regime": [], "FeatureVector": []}
        # (ts of the Forecast that triggered it, ts_init of the order)
        self.orders: list[tuple[int, int]] = []
        self.fills: list[tuple[int, float]] = []  # (ts_event, last_px)

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.subscribe_bars(self.config.bar_type)
        instrument = self.config.instrument_id.value
        for data_cls in (Forecast, Regime, FeatureVector):
            subscribe_bus(self, DataType(data_cls, metadata={"instrument_id": instrument}))

    def on_bar(self, bar: Bar) -> None:
        self.arrivals.append(("Bar", bar.ts_event))
        self.closes[bar.ts_event] = bar.close.as_double()

    def on_data(self, data) -> None:
        name = type(data).__name__
        self.arrivals.append((name, data.ts_event))
        self.received[name].append(data)
        if name == "Forecast" and len(self.received[name]) % self.config.trade_every_forecasts == 0:
            side = OrderSide.BUY if len(self.orders) % 2 == 0 else OrderSide.SELL
            order = self.order_factory.market(
                self.config.instrument_id, side, self.instrument.make_qty(self.instrument.min_quantity)
            )
            self.orders.append((data.ts_event, order.ts_init))
            self.submit_order(order)

    def on_order_filled(self, event) -> None:
        self.fills.append((event.ts_event, float(event.last_px)))

    def on_stop(self) -> None:
        """Records stay in memory for the test."""


def config_of(
    catalog: Path, strategies: list[dict], actors: list[dict], signals: list[dict], end: str = END
) -> BacktestConfig:
    return BacktestConfig.model_validate(
        {
            "id": "replay-parity",
            "venues": [{"name": "BYBIT", "slippage_bps": 0.0}],  # fills at exactly the bar close
            "data": {
                "catalog": str(catalog),
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "5m"}],
                "start": START,
                "end": end,
                "signals": signals,
            },
            "strategies": strategies,
            "actors": actors,
            "engine": {"purge_closed_orders_every_bars": 0},  # the tests read every order from the Cache
        },
    )


def component(name: str, **params) -> dict:
    return {"name": name, "params": {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE, **params}}


PROBE = "tests.integration.test_replay_parity:ReplayProbeStrategy"


@pytest.fixture(scope="module")
def guardian_folder(tmp_path_factory) -> Path:
    committed = REPO_ROOT / "artifacts" / "guardian"
    return committed if (committed / "manifest.json").is_file() else tiny_guardian_artifact(tmp_path_factory)


@pytest.fixture(scope="module")
def strategist_folder() -> Path:
    return tiny_strategist_artifact()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, guardian_folder, strategist_folder) -> Path:
    """The sample catalog copied to tmp, with Forecast, Regime and every model's FeatureVector records
    built from the catalog's first bar to TRINITY_END (no history before it: the streamed runs start
    there too)."""
    root = tmp_path_factory.mktemp("replay") / "catalog"
    shutil.copytree(pristine_catalog() / "data", root / "data")
    build_signals(
        SignalsRequest(
            catalog=root,
            instrument_id=INSTRUMENT_ID,
            interval="5m",
            oracle=ORACLE,
            guardian=guardian_folder,
            strategist=strategist_folder,
            end_ns=parse_time(TRINITY_END[:-1], "end"),
            feature_vectors="all",
        )
    )
    return root


def run(config: BacktestConfig, run_dir: Path) -> dict:
    """Run; return the components by class name and by component id, the orders and the fills."""
    captured = {}

    def inspect(engine):
        for item in [*engine.trader.actors(), *engine.trader.strategies()]:
            captured[type(item).__name__] = captured[str(item.id)] = item
        captured["orders"] = orders_of(engine.cache)

    run_backtest(config, run_dir=run_dir, inspect=inspect)
    captured["fills"] = fills_of(captured["RunRecorderActor"])
    return captured


def orders_of(cache) -> list[tuple]:
    """Every order of the run (time, side, type, quantity, prices, tags, status), in time order."""
    return sorted(
        (
            order.ts_init,
            order.side_string(),
            order.type_string(),
            str(order.quantity),
            str(getattr(order, "price", None)),
            str(getattr(order, "trigger_price", None)),
            tuple(order.tags or ()),
            order.status_string(),
        )
        for order in cache.orders()
    )


def fills_of(recorder) -> list[dict]:
    keys = ("ts_ns", "side", "quantity", "price", "fee", "client_order_id", "signal", "reasoning")
    return [{key: row.get(key) for key in keys} for row in recorder.fill_rows]


@pytest.fixture(scope="module")
def streamed(catalog, guardian_folder, tmp_path_factory) -> dict:
    """FeatureActor x 2 + OracleActor + GuardianActor, and the probe (which trades on Forecasts)."""
    actors = [
        component("features", artifact=str(ORACLE), component_id="FeatureActor-oracle", keep_history=True),
        component("features", artifact=str(guardian_folder), component_id="FeatureActor-guardian"),
        component("oracle", artifact=str(ORACLE), keep_history=True),
        component("guardian", artifact=str(guardian_folder), keep_history=True),
    ]
    config = config_of(catalog, [component(PROBE)], actors, signals=[])
    return run(config, tmp_path_factory.mktemp("streamed"))


def oracle_feature_set_hash() -> str:
    from qa_engine.inference.artifact import load_artifact

    return load_artifact(ORACLE).manifest.feature_set.hash


@pytest.fixture(scope="module")
def replayed(catalog, tmp_path_factory) -> dict:
    """No model actors: the Forecast, Regime and (Oracle's) FeatureVector records come from the catalog."""
    signals = [
        {"type": "Forecast", "instrument_id": INSTRUMENT_ID},
        {"type": "Regime", "instrument_id": INSTRUMENT_ID},
        {
            "type": "FeatureVector",
            "instrument_id": INSTRUMENT_ID,
            "feature_set_hash": oracle_feature_set_hash(),
        },
    ]
    config = config_of(catalog, [component(PROBE)], actors=[], signals=signals)
    return run(config, tmp_path_factory.mktemp("replayed"))


def test_replayed_forecasts_equal_the_oracle_actors(streamed, replayed) -> None:
    oracle: OracleActor = streamed["OracleActor"]
    published, replayed_forecasts = oracle.history, replayed["ReplayProbeStrategy"].received["Forecast"]
    assert oracle.config_errors == [] and len(published) > 200
    assert [f.ts_event for f in replayed_forecasts] == [f.ts_event for f in published]
    assert [f.ts_init for f in replayed_forecasts] == [f.ts_init for f in published]
    assert {f.model_id for f in replayed_forecasts} == {oracle.model_id}
    assert {tuple(f.quantiles) for f in replayed_forecasts} == {tuple(p.quantiles) for p in published}
    np.testing.assert_allclose(
        np.stack([f.values for f in replayed_forecasts]),
        np.stack([f.values for f in published]),
        rtol=0,
        atol=1e-6,
    )
    # the streamed probe saw the actor's messages, the replayed probe the records: the same
    assert len(streamed["ReplayProbeStrategy"].received["Forecast"]) == len(published)


def test_replayed_regimes_equal_the_guardian_actors(streamed, replayed) -> None:
    guardian: GuardianActor = streamed["GuardianActor"]
    published, replayed_regimes = guardian.history, replayed["ReplayProbeStrategy"].received["Regime"]
    assert guardian.config_errors == [] and len(published) > 200
    assert [r.ts_event for r in replayed_regimes] == [r.ts_event for r in published]
    assert [r.regime_id for r in replayed_regimes] == [r.regime_id for r in published]
    assert len({r.regime_id for r in published}) > 1  # the comparison covers regime switches
    assert [r.risk_scale for r in replayed_regimes] == [r.risk_scale for r in published]
    np.testing.assert_allclose(
        np.stack([r.probabilities for r in replayed_regimes]),
        np.stack([r.probabilities for r in published]),
        rtol=0,
        atol=1e-6,
    )


def test_replayed_feature_vectors_equal_the_feature_actors(streamed, replayed) -> None:
    """Batch features (the build) vs the streaming engine (FeatureActor): within 1e-9, same warm flags."""
    actor: FeatureActor = streamed["FeatureActor-oracle"]
    published, records = actor.history, replayed["ReplayProbeStrategy"].received["FeatureVector"]
    assert len(published) == 3 * 288
    assert {r.feature_set_hash for r in records} == {actor.feature_set_hash}  # one set of the several held
    assert [r.ts_event for r in records] == [v.ts_event for v in published]
    assert [r.warm for r in records] == [v.warm for v in published]
    assert sum(r.warm for r in records) == len(records) - (actor.engine.feature_set.warmup_bars - 1)
    np.testing.assert_allclose(
        np.stack([r.values for r in records]), np.stack([v.values for v in published]), rtol=0, atol=1e-9
    )  # NaN where a feature still warms up, in both


def test_a_replayed_record_arrives_after_its_bar_and_an_order_fills_at_that_bars_close(replayed) -> None:
    """Same-timestamp ordering, pinned: the engine sorts its stream by ts_init stably and the bar data
    config comes first, so bar t is processed (matching engine, then subscribers) before the records
    stamped t; a market order submitted on receipt of Forecast t fills at once at bar t's close."""
    probe: ReplayProbeStrategy = replayed["ReplayProbeStrategy"]
    position = {item: index for index, item in enumerate(probe.arrivals)}
    for forecast in probe.received["Forecast"]:
        assert position[("Bar", forecast.ts_event)] < position[("Forecast", forecast.ts_event)]
    both = [r.ts_event for r in probe.received["Regime"] if ("Forecast", r.ts_event) in position]
    assert len(both) > 200
    for ts in both:  # records of one time arrive in the order data.signals lists them
        assert position[("Bar", ts)] < position[("Forecast", ts)] < position[("Regime", ts)]
    assert len(probe.orders) >= 5 and len(probe.fills) == len(probe.orders)
    for (forecast_ts, order_ts), (fill_ts, price) in zip(probe.orders, probe.fills, strict=True):
        assert order_ts == fill_ts == forecast_ts
        assert price == probe.closes[forecast_ts]


def test_streamed_orders_fill_like_replayed_ones(streamed, replayed) -> None:
    """The probe trades on the same Forecasts in both runs: same order times, same fill prices."""
    assert streamed["ReplayProbeStrategy"].fills == replayed["ReplayProbeStrategy"].fills


# ---- TrinityStrategy: streamed models vs replayed records ----------------------------------------


def run_trinity(
    catalog: Path, run_dir: Path, actors: list[dict], signals: list[dict], strategist: Path
) -> dict:
    # Gates opened so that the nearly untrained tiny Strategist trades (confidences ~0.4) and the Oracle's
    # medians (|q50| < 5 bp on these bars) clear the cost: the test is about equal orders, not skill.
    strategy = component(
        "trinity",
        strategist_artifact=str(strategist),
        preset="aggressive",
        confidence_threshold_pct=0.0,
        taker_fee_rate=0.0,
        cost_margin_bps=0.0,
    )
    return run(config_of(catalog, [strategy], actors, signals, end=TRINITY_END), run_dir)


def test_streamed_and_replayed_trinity_runs_place_the_same_orders_and_fills(
    catalog, guardian_folder, strategist_folder, tmp_path_factory
) -> None:
    from qa_engine.inference.strategist import load_strategist

    strategist_hash = load_strategist(strategist_folder).manifest.feature_set.hash
    feature_folders = {}  # one FeatureActor per distinct fitted set
    for folder in (strategist_folder, ORACLE, guardian_folder):
        from qa_engine.inference.artifact import load_artifact

        feature_folders.setdefault(load_artifact(folder).manifest.feature_set.hash, folder)
    actors = [
        component("features", artifact=str(folder), component_id=f"FeatureActor-{index}")
        for index, folder in enumerate(feature_folders.values())
    ]
    actors += [
        component("oracle", artifact=str(ORACLE)),
        component("guardian", artifact=str(guardian_folder)),
    ]
    streamed = run_trinity(
        catalog, tmp_path_factory.mktemp("trinity_streamed"), actors, [], strategist_folder
    )
    signals = [
        {"type": "FeatureVector", "instrument_id": INSTRUMENT_ID, "feature_set_hash": strategist_hash},
        {"type": "Forecast", "instrument_id": INSTRUMENT_ID},
        {"type": "Regime", "instrument_id": INSTRUMENT_ID},
    ]
    replayed = run_trinity(
        catalog, tmp_path_factory.mktemp("trinity_replayed"), [], signals, strategist_folder
    )

    streamed_orders, streamed_fills = streamed["orders"], streamed["fills"]
    replayed_orders, replayed_fills = replayed["orders"], replayed["fills"]
    strategy, replay_strategy = streamed["TrinityStrategy"], replayed["TrinityStrategy"]
    assert strategy.config_errors == replay_strategy.config_errors == []
    assert strategy.decisions == replay_strategy.decisions > 1000
    assert len(streamed_fills) >= 20  # the comparison covers real trading: entries, stops, exits
    assert {order[2] for order in streamed_orders} >= {"MARKET", "STOP_MARKET", "LIMIT"}
    assert replayed_orders == streamed_orders
    assert replayed_fills == streamed_fills
    assert replay_strategy.policy.calls == strategy.policy.calls


# ---- a real gap in the bars -------------------------------------------------------------------------


GAP_INSTRUMENT_ID = "BTCUSDT-PERP.BINANCE"
GAP_START, GAP_END = "2024-05-12T00:00:00Z", "2025-01-03T00:00:00Z"


@pytest.fixture(scope="module")
def gap_catalog(tmp_path_factory, guardian_folder) -> Path:
    """Binance USD-M BTCUSDT 5m bars around the real 230-day hole of the series (last bar before it
    closes 2024-05-14 15:40, the next 2024-12-31 00:05), ingested with the project's own ingest, and
    Forecast / Regime records built over them."""
    from datetime import date

    from qa_engine.data.ingest import ingest_klines
    from qa_engine.plugins import load_instrument
    from tests.factories import real_klines

    folder = tmp_path_factory.mktemp("gap")
    klines = folder / "binance_futures_BTCUSDT_5m.parquet"  # bars opening 2024-05-12 .. 2025-01-03 00:15
    real_klines("binance_futures_BTCUSDT_5m", 1_632, start="2024-05-12").write_parquet(klines)
    root = folder / "catalog"
    ingest_klines(
        [klines],
        load_instrument("binance-futures", "BTCUSDT"),
        "5m",
        root,
        start=date(2024, 5, 12),
        end=date(2025, 1, 2),
    )
    build_signals(
        SignalsRequest(
            catalog=root,
            instrument_id=GAP_INSTRUMENT_ID,
            interval="5m",
            oracle=ORACLE,
            guardian=guardian_folder,
        )
    )
    return root


def test_records_across_a_real_gap_equal_the_actors(gap_catalog, guardian_folder, tmp_path_factory) -> None:
    """After the gap the actors restart their warm-up and the Guardian its persistence filter; the
    records built in batch follow the same rules."""
    bar_type = f"{GAP_INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL"

    def config(strategies, actors, signals) -> BacktestConfig:
        return BacktestConfig.model_validate(
            {
                "id": "replay-gap",
                "venues": [{"name": "BINANCE"}],
                "data": {
                    "catalog": str(gap_catalog),
                    "bars": [{"instrument_id": GAP_INSTRUMENT_ID, "interval": "5m"}],
                    "start": GAP_START,
                    "end": GAP_END,
                    "signals": signals,
                },
                "strategies": strategies,
                "actors": actors,
            }
        )

    def part(name: str, **params) -> dict:
        return {"name": name, "params": {"instrument_id": GAP_INSTRUMENT_ID, "bar_type": bar_type, **params}}

    probe = part(PROBE, trade_every_forecasts=1_000_000)
    actors = [
        part("features", artifact=str(ORACLE), component_id="FeatureActor-oracle"),
        part("features", artifact=str(guardian_folder), component_id="FeatureActor-guardian"),
        part("oracle", artifact=str(ORACLE), keep_history=True),
        part("guardian", artifact=str(guardian_folder), keep_history=True),
    ]
    streamed = run(config([probe], actors, []), tmp_path_factory.mktemp("gap_streamed"))
    signals = [{"type": t, "instrument_id": GAP_INSTRUMENT_ID} for t in ("Forecast", "Regime")]
    replayed = run(config([probe], [], signals), tmp_path_factory.mktemp("gap_replayed"))

    forecasts, records = streamed["OracleActor"].history, replayed["ReplayProbeStrategy"].received["Forecast"]
    gap_ns = parse_time("2024-06-01T00:00", "gap")
    before = [f for f in forecasts if f.ts_event < gap_ns]
    after = [f for f in forecasts if f.ts_event > gap_ns]
    assert before and after  # forecasts on both sides of the gap
    first_after = min(f.ts_event for f in after)
    manifest = streamed["OracleActor"].artifact.manifest
    warmup_and_window = manifest.feature_set.warmup_bars - 1 + manifest.window.encoder_bars - 1
    first_bar_after = parse_time("2024-12-31T00:05", "t")  # the series' first bar after the hole
    assert first_after == first_bar_after + warmup_and_window * 300_000_000_000  # the warm-up restarted
    assert [r.ts_event for r in records] == [f.ts_event for f in forecasts]
    np.testing.assert_allclose(
        np.stack([r.values for r in records]), np.stack([f.values for f in forecasts]), rtol=0, atol=1e-6
    )
    regimes, regime_records = (
        streamed["GuardianActor"].history,
        replayed["ReplayProbeStrategy"].received["Regime"],
    )
    assert [r.ts_event for r in regime_records] == [r.ts_event for r in regimes]
    assert [r.regime_id for r in regime_records] == [r.regime_id for r in regimes]
