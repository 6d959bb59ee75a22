"""TrinityStrategy: the join by timestamp, the gates, ATR sizing, and real backtests on the sample
catalog with a FeatureActor of a (tiny, test-trained) Strategist and stub Forecast / Regime publishers
(tests/plugins/stub_signals.py): brackets at the ATR distances, a reasoning tag on every order, no
orphan stop after a position closes."""

from __future__ import annotations

import csv
import itertools
from decimal import Decimal
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import DataType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import OrderType
from nautilus_trader.model.identifiers import InstrumentId

from qa_engine.config.models import RiskConfig
from qa_engine.errors import ConfigError
from qa_engine.errors import PluginError
from qa_engine.inference.strategist import PolicyAction
from qa_engine.signals import Action
from qa_engine.signals import FeatureVector
from qa_engine.signals import Signal
from qa_engine.signals import pack
from strategies.trinity import PRESETS
from strategies.trinity import GateInputs
from strategies.trinity import TimestampJoin
from strategies.trinity import TrinityStrategy
from strategies.trinity import TrinityStrategyConfig
from strategies.trinity import decide
from strategies.trinity import outcome_kind
from strategies.trinity import risk_sized_quantity
from tests.plugins.stub_signals import StubSignalsActorConfig
from tests.plugins.stub_signals import stub_forecast
from tests.plugins.stub_signals import stub_pattern
from tests.plugins.stub_signals import stub_regime
from tests.unit.inference.strategist_artifact import tiny_strategist_artifact

INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"
BAR_TYPE = f"{INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL"
STEP_NS = 300_000_000_000
COST = 2 * 0.0006 + 2e-4  # a taker fee of 0.06% twice + the "full" preset's 2 bp margin (the gate tests)
ENGINE_COST = 2 * 0.00055 + 2e-4  # the sample catalog's Bybit taker fee (0.055%) twice + the 2 bp margin
STUB = "tests.plugins.stub_signals:StubSignalsActor"


# ---- the join -------------------------------------------------------------------------------------


def test_join_releases_each_timestamp_once_in_every_delivery_order():
    kinds = ("bar", "features", "forecast", "regime")
    for order in itertools.permutations(kinds):
        join = TimestampJoin(kinds)
        released = []
        for ts in (100, 200):
            for kind in order:
                released += join.add(kind, ts, f"{kind}@{ts}")
        assert [(inputs.ts, complete) for inputs, complete in released] == [(100, True), (200, True)]
        last = released[-1][0]
        assert (last.bar, last.features, last.forecast, last.regime) == tuple(f"{k}@200" for k in kinds)
        assert join.add("forecast", 200, "again") == [] and join.duplicates == 1  # decided once


def test_join_drops_stale_pieces_and_releases_an_incomplete_timestamp_when_a_later_one_starts():
    join = TimestampJoin(("bar", "features", "forecast"))
    assert join.add("bar", 100, "b100") == [] and join.add("features", 100, "f100") == []
    released = join.add("features", 200, "f200")  # the forecast of 100 never came
    assert [(inputs.ts, complete) for inputs, complete in released] == [(100, False)]
    assert released[0][0].bar == "b100" and released[0][0].forecast is None
    assert join.add("forecast", 100, "late") == [] and join.stale_dropped == 1
    assert join.add("bar", 200, "b200") == []
    assert [(i.ts, c) for i, c in join.add("forecast", 200, "c200")] == [(200, True)]
    assert join.incomplete == 1


# ---- the gates ------------------------------------------------------------------------------------


def gates(held=0.0, median=0.0030, risk_scale=1.0, atr=100.0, threshold=60.0) -> GateInputs:
    return GateInputs(
        held=held,
        forecast_median=median,
        horizon_bars=12,
        cost=COST,
        regime_id=1,
        risk_scale=risk_scale,
        atr=atr,
        confidence_threshold_pct=threshold,
        strong_confidence_pct=80.0,
    )


def proposal(level: float, probability: float) -> PolicyAction:
    levels = [-1.0, 0.0, 1.0]
    probabilities = np.full(3, (1.0 - probability) / 2)
    probabilities[levels.index(level)] = probability
    return PolicyAction(levels.index(level), level, probabilities)


def test_an_entry_needs_the_forecast_median_to_clear_the_round_trip_cost_in_its_direction():
    entered = decide(proposal(1.0, 0.7), gates(median=0.0015))  # +15 bp > 14 bp
    assert entered.target_fraction == 1.0 and entered.signal == Signal.BUY
    assert "q50(+12)=+15.0bp > cost 14.0bp" in entered.reasoning and "-> enter long" in entered.reasoning
    below = decide(proposal(1.0, 0.7), gates(median=0.0013))  # +13 bp <= 14 bp
    assert below.target_fraction is None and below.signal == Signal.HOLD
    assert "forecast does not clear cost" in below.reasoning
    wrong_way = decide(proposal(-1.0, 0.7), gates(median=0.0030))  # short against a rising median
    assert wrong_way.target_fraction is None
    short = decide(proposal(-1.0, 0.7), gates(median=-0.0030))
    assert short.target_fraction == -1.0 and short.signal == Signal.SELL


def test_risk_scale_zero_allows_no_new_risk_but_allows_exits():
    assert decide(proposal(1.0, 0.9), gates(risk_scale=0.0)).target_fraction is None  # no entry
    exit_long = decide(proposal(0.0, 0.9), gates(held=1.0, risk_scale=0.0))
    assert exit_long.target_fraction == 0.0 and exit_long.signal == Signal.SELL
    assert "-> close long" in exit_long.reasoning
    flip = decide(proposal(-1.0, 0.9), gates(held=1.0, median=-0.0030, risk_scale=0.0))
    assert flip.target_fraction == 0.0  # the flip's short leg is new risk: only the close remains
    assert "no new risk" in flip.reasoning
    keep = decide(proposal(1.0, 0.9), gates(held=1.0, risk_scale=0.0))
    assert keep.target_fraction is None  # already long: nothing to do


def test_a_confidence_below_the_threshold_does_nothing_even_an_exit():
    assert decide(proposal(1.0, 0.59), gates(threshold=60.0)).target_fraction is None
    below = decide(proposal(0.0, 0.59), gates(held=1.0, threshold=60.0))
    assert below.target_fraction is None and below.signal == Signal.HOLD
    assert "< 60% threshold" in below.reasoning
    assert decide(proposal(0.0, 0.61), gates(held=1.0, threshold=60.0)).target_fraction == 0.0


def test_the_end_of_run_tally_names_why_a_bar_did_not_trade():
    def kind(prop, gate, ready=True):
        return outcome_kind(ready, prop, decide(prop, gate))

    assert kind(proposal(1.0, 0.7), gates(median=0.0030)) == "trade"
    assert kind(proposal(1.0, 0.7), gates(median=0.0013)).startswith("blocked by the forecast")
    assert kind(proposal(1.0, 0.9), gates(risk_scale=0.0)).startswith("blocked by the regime")
    assert kind(proposal(1.0, 0.9), gates(atr=None)) == "blocked: ATR warming up"
    assert kind(proposal(1.0, 0.59), gates(threshold=60.0)) == "below the confidence threshold"
    assert kind(proposal(1.0, 0.9), gates(held=1.0)) == "Strategist keeps the position"
    assert kind(None, gates()).startswith("flat, no entry can pass")
    assert kind(None, gates(), ready=False) == "warming up"


def test_signal_strength_rule():
    assert decide(proposal(1.0, 0.85), gates(median=0.0030)).signal == Signal.STRONG_BUY  # >= 2x cost
    assert decide(proposal(1.0, 0.85), gates(median=0.0020)).signal == Signal.BUY  # < 2x cost
    assert decide(proposal(1.0, 0.75), gates(median=0.0030)).signal == Signal.BUY  # < 80%
    assert decide(proposal(-1.0, 0.85), gates(median=-0.0030)).signal == Signal.STRONG_SELL
    assert decide(proposal(0.0, 0.95), gates(held=-1.0)).signal == Signal.BUY  # exits are never strong
    assert decide(None, gates()).signal == Signal.HOLD


# ---- sizing -------------------------------------------------------------------------------------


def sized(equity, price, atr, **overrides) -> Decimal:
    arguments = {
        "risk_per_trade_pct": 2.0,
        "risk_scale": 1.0,
        "atr_stop_multiple": 2.0,
        "max_leverage": 3.0,
        "size_increment": Decimal("0.001"),
        **overrides,
    }
    return risk_sized_quantity(Decimal(equity), Decimal(price), atr, **arguments)


def test_risk_sizing_by_atr_stop_with_leverage_cap_and_lot_step():
    # 10,000 x 1% / (2.5 x 500) = 0.08 BTC (8,000 USDT, 0.8x): the risk budget binds
    assert sized(10_000, 100_000, 500.0, risk_per_trade_pct=1.0, atr_stop_multiple=2.5) == Decimal("0.080")
    # 10,000 x 2% / (2 x 300) = 0.3333.. -> 0.333 (rounded down to the 0.001 lot step; 1.67x at 50,000)
    assert sized(10_000, 50_000, 300.0) == Decimal("0.333")
    # the same at 100,000 would be 3.33x: capped at 3 x 10,000 / 100,000 = 0.3
    assert sized(10_000, 100_000, 300.0) == Decimal("0.300")
    # 10,000 x 2% x 0.5 / (2 x 100) = 0.5 BTC = 5x; capped at 3 x 10,000 / 100,000 = 0.3
    assert sized(10_000, 100_000, 100.0, risk_scale=0.5) == Decimal("0.300")
    assert sized(10_000, 100_000, 100.0, max_leverage=10.0) == Decimal("1.000")
    assert sized(10_000, 100_000, 100.0, max_quantity=Decimal("0.25")) == Decimal("0.250")  # venue max
    assert sized(10_000, 100_000, 100.0, min_quantity=Decimal("0.5"), max_leverage=3.0) == 0  # under min
    assert sized(10_000, 100_000, 0.0) == 0 and sized(10_000, 100_000, 100.0, risk_scale=0.0) == 0


# ---- presets and configs -------------------------------------------------------------------------


def config(**params) -> TrinityStrategyConfig:
    return TrinityStrategyConfig(
        instrument_id=InstrumentId.from_str(INSTRUMENT_ID), bar_type=BarType.from_str(BAR_TYPE), **params
    )


def test_presets_fill_defaults_that_explicit_params_override():
    expected = {"full": (60, 2), "fast": (60, 2), "conservative": (75, 1), "aggressive": (50, 5)}
    for name, (confidence, risk) in expected.items():
        settings = config(preset=name).settings()
        assert (settings.confidence_threshold_pct, settings.risk_per_trade_pct) == (confidence, risk)
        assert 1.0 <= settings.atr_stop_multiple <= 2.5
    assert config(preset="fast").settings().forecast_horizon_bars == 6
    overridden = config(preset="conservative", confidence_threshold_pct=55.0).settings()
    assert overridden.confidence_threshold_pct == 55.0
    assert overridden.risk_per_trade_pct == PRESETS["conservative"].risk_per_trade_pct
    with pytest.raises(ValueError, match="unknown preset 'turbo'"):
        config(preset="turbo")
    with pytest.raises(ValueError, match="max_leverage"):
        config(max_leverage=20.0)


@pytest.mark.parametrize(
    "name", ["trinity", "trinity_fast", "trinity_conservative", "trinity_aggressive", "trinity_1h"]
)
def test_run_configs_load_and_build(name, repo_root, monkeypatch):
    from qa_engine.config.build import build_backtest_run_config
    from qa_engine.config.loader import load_config
    from qa_engine.config.models import BacktestConfig

    monkeypatch.chdir(repo_root)
    loaded = load_config(BacktestConfig, repo_root / "configs" / "backtest" / f"{name}.toml")
    strategy = next(s for s in loaded.strategies if s.name == "trinity")
    preset = strategy.params.get("preset", "full")
    assert preset == {"trinity": "full", "trinity_1h": "swing"}.get(name) or preset == name.split("_")[1]
    artifacts = {a.params.get("artifact") for a in loaded.actors}
    assert strategy.params["strategist_artifact"] in artifacts  # a FeatureActor streams its set
    regime = "volatility_regime" if name == "trinity_1h" else "guardian"
    assert {a.name for a in loaded.actors} >= {"features", "oracle", regime}
    build_backtest_run_config(loaded)  # every plug-in resolves and its params validate


# ---- handlers fed directly: the delivery order does not matter ---------------------------------------


class Pieces:
    """Real bars of the sample catalog, FeatureVectors of the tiny Strategist's fitted set computed in
    batch, and stub Forecasts / Regimes (a changing pattern every 4 bars)."""

    def __init__(self, catalog: Path, bars_wanted: int) -> None:
        from nautilus_trader.persistence.catalog import ParquetDataCatalog

        from qa_engine.features.batch import compute_features_batch
        from qa_engine.features.io import load_catalog_bars
        from qa_engine.inference.strategist import StrategistPolicy

        policy = StrategistPolicy(tiny_strategist_artifact())
        feature_set = policy.feature_set()
        frame, _ = load_catalog_bars(catalog, INSTRUMENT_ID, "5m", end_ns=None)
        table = compute_features_batch(frame.head(800), feature_set, STEP_NS)
        values = table.select(feature_set.names).to_numpy()
        warm = np.flatnonzero(np.all(np.isfinite(values), axis=1))[0]
        first = warm - 20  # 20 bars before the features are warm: resets, ATR warm-up
        store = ParquetDataCatalog(str(catalog))
        self.instrument = store.instruments(instrument_ids=[INSTRUMENT_ID])[0]
        self.bars = store.bars(bar_types=[BAR_TYPE])[first : first + bars_wanted]
        ts = table.get_column("ts").cast(pl.Int64).to_numpy()
        assert int(ts[first]) == self.bars[0].ts_event
        self.stub = StubSignalsActorConfig(
            instrument_id=InstrumentId.from_str(INSTRUMENT_ID),
            bar_type=BarType.from_str(BAR_TYPE),
            block_bars=4,
            median_bps=(30.0, 5.0, -30.0),
            risk_scales=(1.0, 0.0, 0.5),
        )
        self.by_bar = []
        for index, bar in enumerate(self.bars):
            row = values[first + index]
            vector = FeatureVector(
                ts_event=bar.ts_event,
                ts_init=bar.ts_event,
                instrument_id=InstrumentId.from_str(INSTRUMENT_ID),
                feature_set_hash=feature_set.hash,
                values_f8=pack(row),
                warm=bool(np.all(np.isfinite(row))),
            )
            median, regime, risk_scale = stub_pattern(self.stub, index)
            self.by_bar.append(
                {
                    "bar": bar,
                    "features": vector,
                    "forecast": stub_forecast(self.stub, bar.ts_event, median),
                    "regime": stub_regime(self.stub, bar.ts_event, regime, risk_scale),
                }
            )


@cache
def built_pieces(catalog: Path) -> Pieces:
    return Pieces(catalog, bars_wanted=36)


@pytest.fixture
def pieces(sample_catalog) -> Pieces:
    return built_pieces(sample_catalog)


def started(pieces: Pieces, **params):
    """A TrinityStrategy registered and running in a BacktestEngine that replays nothing: the test
    calls its handlers. Orders reach the simulated venue's queue but are never processed."""
    from nautilus_trader.backtest.engine import BacktestEngine
    from nautilus_trader.backtest.engine import BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.enums import AccountType
    from nautilus_trader.model.enums import OmsType
    from nautilus_trader.model.identifiers import Venue
    from nautilus_trader.model.objects import Money

    engine = BacktestEngine(
        BacktestEngineConfig(trader_id="TESTER-001", logging=LoggingConfig(bypass_logging=True))
    )
    engine.add_venue(
        venue=Venue("BYBIT"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(10_000, USDT)],
        base_currency=USDT,
        default_leverage=Decimal(3),
    )
    engine.add_instrument(pieces.instrument)
    strategy = TrinityStrategy(
        config(strategist_artifact=str(tiny_strategist_artifact()), keep_history=True, **params)
    )
    engine.add_strategy(strategy)
    start = pieces.bars[0].ts_init
    engine.run(start=start, end=start, streaming=True)
    assert strategy.is_running and strategy.policy is not None
    return engine, strategy


def feed(strategy, parts: dict, order) -> None:
    for kind in order:
        if kind == "bar":
            strategy.handle_bar(parts["bar"])
        else:
            strategy.handle_data(parts[kind])


def decisions(strategy) -> list[tuple]:
    return [
        (a.ts_event, a.target_position, a.signal, round(a.confidence_pct, 9), a.reasoning)
        for a in strategy.history
    ]


def test_every_delivery_order_gives_the_same_single_decision_per_bar(pieces):
    kinds = ("bar", "features", "forecast", "regime")
    outcomes = {}
    for order in itertools.permutations(kinds):
        engine, strategy = started(pieces, confidence_threshold_pct=0.0)
        published = []
        action_type = DataType(Action, metadata={"instrument_id": INSTRUMENT_ID})
        engine.kernel.msgbus.subscribe(topic=f"data.{action_type.topic}", handler=published.append)
        for parts in pieces.by_bar:
            feed(strategy, parts, order)
        outcomes[order] = (decisions(strategy), strategy.orders_submitted, strategy.policy.calls)
        assert len(published) == len(pieces.bars) == len(strategy.history)  # one Action per bar
        assert [a.ts_event for a in published] == [bar.ts_event for bar in pieces.bars]
        engine.dispose()
    reference = outcomes[kinds]
    assert all(outcome == reference for outcome in outcomes.values())
    made, orders, calls = reference
    assert orders == 1 and calls > 0  # one entry; the venue never fills it, so later ones wait
    assert any("-> enter" in reasoning for *_, reasoning in made)
    assert any("DT context warming up" in reasoning for *_, reasoning in made)


def test_a_missing_forecast_means_no_decision_and_a_late_piece_is_dropped(pieces):
    engine, strategy = started(pieces, confidence_threshold_pct=0.0)
    kinds = ("bar", "features", "forecast", "regime")
    for parts in pieces.by_bar[:-2]:
        feed(strategy, parts, kinds)
    seen = strategy.policy.context.seen
    feed(strategy, pieces.by_bar[-2], ("bar", "features", "regime"))  # no Forecast for this bar
    feed(strategy, pieces.by_bar[-1], ("features",))  # the next bar starts: the previous is released
    assert strategy.join.incomplete == 1
    assert strategy.policy.context.seen == seen + 1  # its bar still entered the Strategist's context
    strategy.handle_data(pieces.by_bar[-2]["forecast"])  # too late: stale
    assert strategy.join.stale_dropped == 1
    assert [a.ts_event for a in strategy.history][-1] == pieces.bars[-3].ts_event  # nothing decided
    feed(strategy, pieces.by_bar[-1], ("bar", "forecast", "regime"))
    assert strategy.history[-1].ts_event == pieces.bars[-1].ts_event
    engine.dispose()


# ---- real backtests ------------------------------------------------------------------------------


def backtest_config(sample_catalog, days: int, strategy_params: dict, stub_params: dict | None = None):
    from qa_engine.config.models import BacktestConfig

    folder = str(tiny_strategist_artifact())
    common = {"instrument_id": INSTRUMENT_ID, "bar_type": BAR_TYPE}
    return BacktestConfig.model_validate(
        {
            "id": "trinity-stubs",
            "venues": [{"name": "BYBIT", "slippage_bps": 0.0}],  # fills at exactly the decision close
            "data": {
                "catalog": str(sample_catalog),
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "5m"}],
                "start": "2025-01-01T00:00:00Z",
                "end": f"2025-01-{1 + days:02d}T00:00:00Z",
            },
            "strategies": [
                {"name": "trinity", "params": {**common, "strategist_artifact": folder, **strategy_params}}
            ],
            "actors": [
                {"name": "features", "params": {**common, "artifact": folder}},
                {"name": STUB, "params": {**common, **(stub_params or {})}},
            ],
            "engine": {"purge_closed_orders_every_bars": 0},  # the test reads every order at the end
        },
    )


def run(config, run_dir: Path) -> dict:
    from qa_engine.backtest.recorder import RunRecorderActor
    from qa_engine.backtest.runner import run_backtest

    captured = {}

    def inspect(engine):
        captured["strategy"] = next(s for s in engine.trader.strategies() if isinstance(s, TrinityStrategy))
        captured["orders"] = list(engine.cache.orders())
        captured["fills"] = next(
            a for a in engine.trader.actors() if isinstance(a, RunRecorderActor)
        ).fill_rows

    captured["outcome"] = run_backtest(config, run_dir=run_dir, inspect=inspect)
    return captured


def true_range_atr(sample_catalog, period: int = 14) -> dict[int, tuple[float, float]]:
    """ts -> (close, simple-mean ATR of `period` true ranges), from the catalog's bars, by hand."""
    from qa_engine.features.io import load_catalog_bars

    bars, _ = load_catalog_bars(sample_catalog, INSTRUMENT_ID, "5m", end_ns=None)
    high, low, close = (bars.get_column(c).to_numpy() for c in ("high", "low", "close"))
    previous = np.concatenate([[close[0]], close[:-1]])  # the first bar has no previous close
    true_range = np.maximum(high, previous) - np.minimum(low, previous)
    atr = np.convolve(true_range, np.ones(period) / period, mode="full")[: len(true_range)]
    ts = bars.get_column("ts").cast(pl.Int64).to_numpy()
    return {
        int(t): (float(c), float(a))
        for t, c, a in zip(ts[period - 1 :], close[period - 1 :], atr[period - 1 :], strict=True)
    }


def test_backtest_places_brackets_at_atr_distances_tags_every_order_and_leaves_no_orphan_stop(
    sample_catalog, tmp_path
):
    stub = {"block_bars": 48, "median_bps": [30.0, -30.0, 5.0], "risk_scales": [1.0, 1.0, 0.5, 0.0]}
    captured = run(backtest_config(sample_catalog, 4, {"confidence_threshold_pct": 0.0}, stub), tmp_path)
    strategy, orders, fills = captured["strategy"], captured["orders"], captured["fills"]
    bars = captured["outcome"].bars
    assert strategy.decisions == bars == 4 * 288 and strategy.join.incomplete == 0  # one per bar
    prices = true_range_atr(sample_catalog)
    stub_config = StubSignalsActorConfig(
        instrument_id=InstrumentId.from_str(INSTRUMENT_ID), bar_type=BarType.from_str(BAR_TYPE), **stub
    )
    first_ts = min(prices) - 13 * STEP_NS

    by_list = {}
    for order in orders:
        if order.order_list_id is not None:
            by_list.setdefault(order.order_list_id, []).append(order)
    assert len(by_list) >= 5, "the stubs open several gates: brackets are expected"
    brackets = sorted(({o.order_type: o for o in group} for group in by_list.values()), key=len)
    assert {len(bracket) for bracket in brackets} == {3}  # market entry, stop-market, limit
    brackets.sort(key=lambda bracket: bracket[OrderType.MARKET].ts_init)
    for index, bracket in enumerate(brackets):
        entry, stop, take = (bracket[t] for t in (OrderType.MARKET, OrderType.STOP_MARKET, OrderType.LIMIT))
        close, atr = prices[entry.ts_init]  # decided at the close of that bar
        side = 1.0 if entry.side == OrderSide.BUY else -1.0
        assert entry.is_closed and float(entry.avg_px) == close  # filled at the decision bar's close
        stop_distance = max(2.0 * atr, 2.0 * ENGINE_COST * close)  # the "full" preset's floor: 2 round trips
        assert float(stop.trigger_price) == pytest.approx(close - side * stop_distance, abs=0.05 + 1e-6)
        assert float(take.price) == pytest.approx(close + side * 1.5 * stop_distance, abs=0.05 + 1e-6)
        median, _, risk_scale = stub_pattern(stub_config, (entry.ts_init - first_ts) // STEP_NS)
        assert risk_scale > 0 and side * median > COST  # the gates held for every entry
        if index == 0:  # equity is exactly the starting balance: size by hand
            risk_quantity = 10_000 * 0.02 * risk_scale / stop_distance
            expected = np.floor(min(risk_quantity, 3 * 10_000 / close) * 1000) / 1000
            assert float(entry.quantity) == pytest.approx(expected, abs=1e-9)

    for order in orders:  # a decision tag on every order: "SIGNAL|confidence|reasoning"
        signal, confidence, reasoning = order.tags[0].split("|", 2)
        assert signal in {s.value for s in Signal} and signal != "HOLD" and 0 <= float(confidence) <= 100
        assert reasoning.startswith(("DT ", "stop-loss 2 x ATR", "take-profit 3 x ATR"))
    with (tmp_path / "fills.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(fills) > 0 and all(row["reasoning"] for row in rows)

    # no orphan: every child is closed by the time its position went flat
    children = {o.client_order_id.value: o for o in orders if o.order_type != OrderType.MARKET}
    entries = {
        o.client_order_id.value: o
        for o in orders
        if o.order_list_id is not None and o.order_type == OrderType.MARKET
    }
    checked = 0
    for row_index, row in enumerate(fills):
        if row["client_order_id"] not in entries:
            continue
        flat = next((r for r in fills[row_index + 1 :] if Decimal(r["position_after"]) == 0), None)
        if flat is None:
            continue  # still open at the end (on_stop cancels)
        for child_id in entries[row["client_order_id"]].linked_order_ids:
            child = children[child_id.value]
            assert child.is_closed and child.ts_last <= flat["ts_ns"], f"orphan {child}"
            checked += 1
    assert checked >= 6
    assert not [o for o in orders if o.is_open]  # on_stop cancelled what the last position had


def test_skipping_idle_inference_changes_no_decision(sample_catalog, tmp_path):
    stub = {"block_bars": 24, "median_bps": [30.0, 5.0, -30.0, -5.0]}
    params = {"confidence_threshold_pct": 0.0, "keep_history": True}
    skipping = run(backtest_config(sample_catalog, 3, params, stub), tmp_path / "skip")
    calling = run(
        backtest_config(sample_catalog, 3, {**params, "skip_idle_inference": False}, stub), tmp_path / "all"
    )
    skipped, called = decisions(skipping["strategy"]), decisions(calling["strategy"])
    assert [d[:3] for d in skipped] == [d[:3] for d in called]  # ts, target position, signal
    assert all(s == c for s, c in zip(skipped, called, strict=True) if "DT skipped" not in s[4])
    assert all(c[2] == "HOLD" for s, c in zip(skipped, called, strict=True) if "DT skipped" in s[4])
    assert [(f["ts_ns"], f["side"], f["quantity"], f["price"]) for f in skipping["fills"]] == [
        (f["ts_ns"], f["side"], f["quantity"], f["price"]) for f in calling["fills"]
    ]
    assert skipping["strategy"].inference_skipped > 0
    assert (
        skipping["strategy"].policy.calls + skipping["strategy"].inference_skipped
        == calling["strategy"].policy.calls
    )


def test_a_missing_artifact_is_a_config_error(sample_catalog, tmp_path):
    from qa_engine.backtest.runner import run_backtest

    config = backtest_config(sample_catalog, 1, {})
    strategy = config.strategies[0].model_copy(
        update={"params": {**config.strategies[0].params, "strategist_artifact": str(tmp_path / "nope")}}
    )
    config = config.model_copy(update={"strategies": [strategy], "actors": []})
    with pytest.raises(ConfigError, match="cannot use the Strategist .*nope"):
        run_backtest(config, run_dir=tmp_path / "run")


def test_an_error_inside_the_strategy_is_a_plugin_error(sample_catalog, tmp_path):
    from qa_engine.backtest.runner import run_backtest

    config = backtest_config(sample_catalog, 2, {}, {"quantiles": [0.1, 0.9]})  # no median to gate on
    with pytest.raises(PluginError, match="TrinityStrategy.*no 0.5 quantile"):
        run_backtest(config, run_dir=tmp_path)


def test_with_the_real_model_actors_every_decision_joins_their_messages_of_the_same_bar(
    repo_root, sample_catalog, tmp_path
):
    """configs/backtest/trinity.toml (FeatureActors, OracleActor, GuardianActor, the committed
    artifacts) over three days: once the Oracle is warm every bar is decided once, on the Forecast and
    Regime the actors published for that very bar."""
    from actors.guardian_actor import GuardianActor
    from actors.oracle_actor import OracleActor
    from qa_engine.backtest.runner import run_backtest
    from qa_engine.config.loader import load_config
    from qa_engine.config.models import BacktestConfig

    if not all(
        (repo_root / "artifacts" / name / "manifest.json").is_file() for name in ("guardian", "strategist")
    ):
        pytest.skip("artifacts/guardian or artifacts/strategist is not trained yet")
    loaded = load_config(BacktestConfig, repo_root / "configs" / "backtest" / "trinity.toml").model_dump()
    loaded["data"].update(catalog=str(sample_catalog), end="2025-01-04T00:00:00Z")
    for component in loaded["actors"] + loaded["strategies"]:
        component["params"]["keep_history"] = True
        for key in ("artifact", "strategist_artifact", "features_from"):
            if key in component["params"]:
                component["params"][key] = str(repo_root / component["params"][key])
    captured = {}

    def inspect(engine):
        for component in [*engine.trader.actors(), *engine.trader.strategies()]:
            captured[type(component)] = component

    outcome = run_backtest(BacktestConfig.model_validate(loaded), run_dir=tmp_path, inspect=inspect)
    strategy, oracle, guardian = captured[TrinityStrategy], captured[OracleActor], captured[GuardianActor]
    forecasts = {f.ts_event: f for f in oracle.history}
    regimes = {r.ts_event: r for r in guardian.history}
    assert strategy.decisions == len(strategy.history) == len(forecasts) > 200
    assert strategy.decisions + strategy.join.incomplete == outcome.bars and strategy.join.stale_dropped == 0
    median = next(iter(forecasts.values())).quantiles.tolist().index(0.5)
    for action in strategy.history:
        forecast, regime = forecasts[action.ts_event], regimes[action.ts_event]
        q50_bp = 1e4 * forecast.values[forecast.horizon_bars - 1, median]
        assert f"q50(+{forecast.horizon_bars})={q50_bp:+.1f}bp" in action.reasoning
        assert f"regime {regime.regime_id} risk {regime.risk_scale:.2f}" in action.reasoning


def test_no_feature_vector_of_the_strategists_set_is_a_config_error_with_the_fix(sample_catalog, tmp_path):
    from qa_engine.backtest.runner import run_backtest

    config = backtest_config(sample_catalog, 2, {})
    config = config.model_copy(update={"actors": config.actors[1:]})  # stubs only, no FeatureActor
    with pytest.raises(ConfigError, match=r'no FeatureVector .*add to `actors` \{name = "features"'):
        run_backtest(config, run_dir=tmp_path)


def test_model_disagreement_kill_switch_sees_the_strategists_raw_proposals(sample_catalog, tmp_path):
    """The guard compares each raw Strategist Proposal (published before Trinity's gates) with the
    Oracle's forecast direction of the same bar (stub Oracle: +-30 bp, flipping every 24 bars; the tiny
    Strategist proposes against it), turns conservative (half size) once they disagree on >= 60 % of the
    last 12 and resumes once they agree again; the same run without the guard ends elsewhere.

    The committed (real) models cannot fire it: on January 2025 the real Strategist proposes to keep
    its position on 8,365 of 8,367 bars, and a flat view neither agrees nor disagrees."""
    from qa_engine.backtest.runner import run_backtest

    config = backtest_config(
        sample_catalog, 4, {"confidence_threshold_pct": 0.0, "skip_idle_inference": False}
    )
    rule = {"window": 12, "max_share": 0.6, "cool_down_secs": 0, "size_scale": 0.5}
    guarded = config.model_copy(update={"risk": RiskConfig.model_validate({"model_disagreement": rule})})
    guards = []

    def inspect(engine):
        guards.extend(a for a in engine.trader.actors() if getattr(a, "guard", None) is not None)

    outcome = run_backtest(guarded, run_dir=tmp_path / "guarded", inspect=inspect)
    [guard] = guards
    events = outcome.report.risk_events
    assert events.height >= 2, f"never fired or never resumed: {events}"
    assert set(events["rule"]) == {"model_disagreement"}
    assert events["kind"].to_list()[:2] == ["trigger", "resume"]
    assert (events.filter(pl.col("kind") == "trigger")["value"] >= 0.6).all()
    assert len(guard.guard.rules["model_disagreement"].disagreed) == 12
    unguarded = run_backtest(config, run_dir=tmp_path / "unguarded")
    with_guard, without = outcome.report.metrics.final_equity, unguarded.report.metrics.final_equity
    assert unguarded.report.risk_events.height == 0 and with_guard != without
