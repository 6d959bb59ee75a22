"""qa_engine.replay: the actors' window rules as array functions, the catalog store of signal records,
`qa signals build` (idempotence, warm-up history) and `[[data.signals]]` in run configs.

Market data: the committed sample catalog (real Bybit BTCUSDT 5m bars of January 2025), copied to
tmp_path before anything is written. Random numbers appear only in the property test of the window
rule, which compares the array function with the actors' own FeatureWindow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.serialization.arrow.serializer import ArrowSerializer

from actors.model_actor import FeatureWindow
from qa_engine.cli.main import main
from qa_engine.config.build import signal_data_configs
from qa_engine.config.models import BacktestConfig
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.features.io import parse_time
from qa_engine.inference.artifact import load_artifact
from qa_engine.replay import store
from qa_engine.replay.build import segment_positions
from qa_engine.replay.build import window_runs
from qa_engine.signals import FeatureVector
from qa_engine.signals import Forecast
from qa_engine.signals import Regime
from qa_engine.signals import pack
from tests.pristine import pristine_catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
ORACLE = REPO_ROOT / "artifacts" / "oracle"
INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"
BTC = InstrumentId.from_str(INSTRUMENT_ID)
STEP_NS = 300_000_000_000


@pytest.fixture
def catalog(tmp_path) -> Path:
    root = tmp_path / "catalog"
    shutil.copytree(pristine_catalog() / "data", root / "data")
    return root


# ---- the window rules --------------------------------------------------------------------------


def test_segment_positions_restart_after_every_gap() -> None:
    ts = np.array([1, 2, 3, 5, 6, 9, 10, 11]) * STEP_NS
    assert segment_positions(ts, STEP_NS).tolist() == [0, 1, 2, 0, 1, 0, 1, 2]


@pytest.mark.parametrize("seed", range(5))
def test_window_runs_match_the_actors_feature_window(seed: int) -> None:
    """Random gaps, cold and NaN vectors: a window is full (and first after a break) at exactly the bars
    where actors/model_actor.py's FeatureWindow returns one (with windows_in_segment == 1)."""
    rng = np.random.default_rng(seed)
    count, window_bars = 600, 7
    ts = np.cumsum(np.where(rng.random(count) < 0.03, rng.integers(2, 5, count), 1)) * STEP_NS
    warm = rng.random(count) > 0.05
    finite = rng.random(count) > 0.03
    window = FeatureWindow(window_bars, 2, STEP_NS)
    full, first = [], []
    for t, is_warm, is_finite in zip(ts, warm, finite, strict=True):
        values = np.array([1.0, 2.0 if is_finite else np.nan])
        full.append(window.push(int(t), values, bool(is_warm)) is not None)
        first.append(full[-1] and window.windows_in_segment == 1)
    runs = window_runs(ts, STEP_NS, warm & finite)
    assert sum(full) > 50 and sum(first) > 3
    assert (runs >= window_bars).tolist() == full
    assert (runs == window_bars).tolist() == first


# ---- the catalog store -------------------------------------------------------------------------


def records(model_id: str, first_ts: int, count: int) -> list[Forecast]:
    return [
        Forecast(ts, ts, BTC, model_id, 2, pack([0.1, 0.5, 0.9]), pack(np.arange(6.0) * (ts // STEP_NS)))
        for ts in range(first_ts, first_ts + count * STEP_NS, STEP_NS)
    ]


def table_of(items: list[Forecast]):
    ts = np.array([item.ts_event for item in items])
    columns = {
        "instrument_id": INSTRUMENT_ID,
        "model_id": items[0].model_id,
        "horizon_bars": 2,
        "quantiles_f8": np.array([0.1, 0.5, 0.9]),
        "values_f8": np.stack([item.values for item in items]),
    }
    return store.records_table("Forecast", columns, ts, ts)


def test_records_table_is_what_nautilus_serialises() -> None:
    items = records("m1", 10 * STEP_NS, 4)
    expected = ArrowSerializer.serialize_batch(items, data_cls=Forecast)  # what write_data would write
    assert table_of(items).equals(expected)
    vectors = [
        FeatureVector(5, 6, BTC, "h", pack([1.0, np.nan]), False),
        FeatureVector(7, 8, BTC, "h", pack([3.0, 4.0]), True),
    ]
    columns = {
        "instrument_id": INSTRUMENT_ID,
        "feature_set_hash": "h",
        "values_f8": np.array([[1.0, np.nan], [3.0, 4.0]]),
        "warm": np.array([False, True]),
    }
    built = store.records_table("FeatureVector", columns, np.array([5, 7]), np.array([6, 8]))
    assert built.equals(ArrowSerializer.serialize_batch(vectors, data_cls=FeatureVector))
    regimes = [Regime(9, 9, BTC, "g", 2, pack([0.1, 0.2, 0.7]), 0.5)]
    columns = {
        "instrument_id": INSTRUMENT_ID,
        "model_id": "g",
        "regime_id": np.array([2]),
        "probabilities_f8": np.array([[0.1, 0.2, 0.7]]),
        "risk_scale": np.array([0.5]),
    }
    built = store.records_table("Regime", columns, np.array([9]), np.array([9]))
    assert built.equals(ArrowSerializer.serialize_batch(regimes, data_cls=Regime))


def test_written_records_read_back_through_the_catalog_and_refuse_a_second_write(tmp_path) -> None:
    first = records("m1", 100 * STEP_NS, 5)
    other = records("m2", 102 * STEP_NS, 5)  # overlapping times, another model
    store.write_records(tmp_path, "Forecast", INSTRUMENT_ID, "m1", table_of(first), 0, 10**20, False)
    store.write_records(tmp_path, "Forecast", INSTRUMENT_ID, "m2", table_of(other), 0, 10**20, False)
    back = [
        item.data for item in ParquetDataCatalog(str(tmp_path)).query(Forecast, identifiers=[INSTRUMENT_ID])
    ]
    assert [(f.model_id, f.ts_event) for f in back] == sorted(
        [(f.model_id, f.ts_event) for f in first + other], key=lambda item: item[1]
    )  # one file, sorted by time; at equal times the older records first
    assert all(
        b.to_dict() == o.to_dict()
        for b, o in zip([b for b in back if b.model_id == "m1"], first, strict=True)
    )
    assert len(list(store.signal_directory(tmp_path, "Forecast", INSTRUMENT_ID).glob("*.parquet"))) == 1

    with pytest.raises(DataError, match="5 Forecast records of model_id 'm1'.*--replace"):
        store.write_records(tmp_path, "Forecast", INSTRUMENT_ID, "m1", table_of(first), 0, 10**20, False)
    changed = records("m1", 103 * STEP_NS, 2)  # a rebuild of the last two bars only
    start, end = 103 * STEP_NS, 104 * STEP_NS
    replaced = store.write_records(
        tmp_path, "Forecast", INSTRUMENT_ID, "m1", table_of(changed), start, end, True
    )
    assert replaced == 2
    summary = {item.key: item.records for item in store.summarise_keys(tmp_path, "Forecast", INSTRUMENT_ID)}
    assert summary == {"m1": 5, "m2": 5}  # m2 untouched, m1's first three kept
    assert store.count_records(tmp_path, "Forecast", INSTRUMENT_ID, "m1", start, end) == 2


# ---- qa signals build ----------------------------------------------------------------------------


def test_signals_build_writes_records_from_start_with_history_and_is_idempotent(catalog, capsys) -> None:
    arguments = [
        "signals", "build", "--catalog", str(catalog), "--instrument-id", INSTRUMENT_ID,
        "--oracle", str(ORACLE), "--start", "2025-01-10T00:00", "--end", "2025-01-11T00:00",
    ]  # fmt: skip
    assert main(arguments) == 0
    directory = store.signal_directory(catalog, "Forecast", INSTRUMENT_ID)
    table = store.read_directory(directory, "Forecast")
    start, end = parse_time("2025-01-10T00:00", "s"), parse_time("2025-01-11T00:00", "e")
    # the default history covers warm-up + window: a Forecast at every bar close in [start, end]
    assert table.column("ts_event").to_pylist() == list(range(start, end + 1, STEP_NS))
    assert table.column("ts_init").to_pylist() == table.column("ts_event").to_pylist()
    manifest = load_artifact(ORACLE).manifest
    assert set(table.column("model_id").to_pylist()) == {
        f"{manifest.model_name}-{manifest.model_sha256[:12]}"
    }
    assert not store.read_directory(
        store.signal_directory(catalog, "FeatureVector", INSTRUMENT_ID), "FeatureVector"
    )

    capsys.readouterr()
    assert main(arguments) == 2  # refused: nothing computed or written
    assert "already holds 289 Forecast records" in capsys.readouterr().err
    assert main([*arguments, "--replace"]) == 0
    assert store.read_directory(directory, "Forecast").equals(table)  # deterministic rebuild


def test_signals_build_without_history_starts_forecasts_after_warm_up_and_window(catalog) -> None:
    arguments = [
        "signals", "build", "--catalog", str(catalog), "--instrument-id", INSTRUMENT_ID,
        "--oracle", str(ORACLE), "--start", "2025-01-10T00:00", "--end", "2025-01-12T00:00",
        "--history-bars", "0",
    ]  # fmt: skip
    assert main(arguments) == 0
    table = store.read_directory(store.signal_directory(catalog, "Forecast", INSTRUMENT_ID), "Forecast")
    manifest = load_artifact(ORACLE).manifest
    bars_before_first = manifest.feature_set.warmup_bars - 1 + manifest.window.encoder_bars - 1
    assert (
        pc.min(table.column("ts_event")).as_py()
        == parse_time("2025-01-10T00:00", "s") + bars_before_first * STEP_NS
    )


def test_signals_build_over_too_few_bars_writes_no_forecast(catalog, capsys) -> None:
    arguments = [
        "signals", "build", "--catalog", str(catalog), "--instrument-id", INSTRUMENT_ID,
        "--oracle", str(ORACLE), "--strategist", str(ORACLE), "--end", "2025-01-01T06:00",
    ]  # fmt: skip
    assert main(arguments) == 2  # an Oracle given as the Strategist
    assert "not a strategist" in capsys.readouterr().err
    assert main(arguments[:-4] + arguments[-2:]) == 0  # 72 bars: the window never fills
    assert "Forecast temporal_fusion_transformer" in capsys.readouterr().out
    assert (
        store.read_directory(store.signal_directory(catalog, "Forecast", INSTRUMENT_ID), "Forecast") is None
    )


def test_signals_build_refuses_bad_input_with_exit_code_2(catalog, tmp_path, capsys) -> None:
    base = ["signals", "build", "--catalog", str(catalog), "--instrument-id", INSTRUMENT_ID]
    assert main(base) == 2
    assert "give at least one artifact" in capsys.readouterr().err
    assert main([*base, "--oracle", str(tmp_path / "none")]) == 2
    assert "no such artifact folder" in capsys.readouterr().err
    assert main([*base, "--oracle", str(ORACLE), "--interval", "1h"]) == 2
    assert "5m bars" in capsys.readouterr().err
    assert main([*base, "--guardian", str(ORACLE)]) == 2  # an Oracle given as the Guardian
    assert "not a Guardian" in capsys.readouterr().err


# ---- [[data.signals]] in run configs ------------------------------------------------------------


def run_config(catalog: Path, signals: list[dict]) -> BacktestConfig:
    return BacktestConfig.model_validate(
        {
            "id": "replay",
            "venues": [{"name": "BYBIT"}],
            "data": {
                "catalog": str(catalog),
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "5m"}],
                "start": "2025-01-01T00:00:00Z",
                "end": "2025-01-04T00:00:00Z",
                "signals": signals,
            },
            "strategies": [
                {"name": "ema_cross", "params": {"instrument_id": INSTRUMENT_ID, "bar_type": "x"}}
            ],
        }
    )


def test_signals_config_refuses_mismatched_keys_unknown_instruments_and_duplicates(catalog) -> None:
    with pytest.raises(ValueError, match="chosen by feature_set_hash"):
        run_config(catalog, [{"type": "FeatureVector", "instrument_id": INSTRUMENT_ID, "model_id": "x"}])
    with pytest.raises(ValueError, match="ETHUSDT-LINEAR.BYBIT has no bars"):
        run_config(catalog, [{"type": "Forecast", "instrument_id": "ETHUSDT-LINEAR.BYBIT"}])
    with pytest.raises(ValueError, match="listed twice"):
        run_config(catalog, [{"type": "Regime", "instrument_id": INSTRUMENT_ID}] * 2)
    with pytest.raises(ValueError, match="model_id"):
        run_config(catalog, [{"type": "Regime", "instrument_id": INSTRUMENT_ID, "model_id": 'a") | ("b'}])


def test_signal_data_configs_deliver_on_the_actors_data_type(catalog) -> None:
    forecast = {"type": "Forecast", "instrument_id": INSTRUMENT_ID}
    with pytest.raises(ConfigError, match="holds none; build them with `qa signals build`"):
        signal_data_configs(run_config(catalog, [forecast]))
    items = records("m1", parse_time("2025-01-02T00:00", "t"), 3) + records(
        "m2", parse_time("2025-01-02T00:00", "t"), 3
    )
    for model_id in ("m1", "m2"):
        subset = [item for item in items if item.model_id == model_id]
        store.write_records(catalog, "Forecast", INSTRUMENT_ID, model_id, table_of(subset), 0, 10**20, False)
    with pytest.raises(ConfigError, match=r"several, choose one with model_id: \['m1', 'm2'\]"):
        signal_data_configs(run_config(catalog, [forecast]))
    with pytest.raises(ConfigError, match="no records of model_id 'm3'"):
        signal_data_configs(run_config(catalog, [{**forecast, "model_id": "m3"}]))

    (data,) = signal_data_configs(run_config(catalog, [{**forecast, "model_id": "m2"}]))
    from nautilus_trader.backtest.node import BacktestNode
    from nautilus_trader.model.data import DataType

    loaded = BacktestNode.load_data_config(data)
    assert [item.data.model_id for item in loaded.data] == ["m2"] * 3
    expected_type = DataType(
        Forecast, metadata={"instrument_id": INSTRUMENT_ID}
    )  # what the actors publish on
    assert {item.data_type for item in loaded.data} == {expected_type}
    assert {item.data_type.topic for item in loaded.data} == {expected_type.topic}
    assert str(loaded.client_id) == "SIGNALS"
