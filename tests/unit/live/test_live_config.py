"""Live run configs: the same strategy objects as backtests, keys from the environment only, mainnet
only with --yes, bad input exits 2 naming the culprit; and the journal comparison parity relies on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qa_engine.cli.main import main
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.config.models import LiveConfig
from qa_engine.config.models import LiveSettings
from qa_engine.errors import ConfigError
from qa_engine.live.clients import Credentials
from qa_engine.live.clients import credentials_from_environment
from qa_engine.live.parity_compare import compare_journals

REPO = Path(__file__).resolve().parents[3]
LIVE_CONFIG = REPO / "configs" / "live" / "ema_cross_testnet.toml"
KEYS = ("BYBIT_TESTNET_API_KEY", "BYBIT_TESTNET_API_SECRET", "BYBIT_API_KEY", "BYBIT_API_SECRET")


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch):
    for name in (*KEYS, "BYBIT_DEMO_API_KEY", "BYBIT_DEMO_API_SECRET"):
        monkeypatch.delenv(name, raising=False)


def test_the_live_config_holds_the_default_backtests_strategy_object() -> None:
    live = load_config(LiveConfig, LIVE_CONFIG)
    backtest = load_config(BacktestConfig, REPO / "configs" / "backtest" / "default.toml")
    assert live.strategies == backtest.strategies
    derived = LiveConfig.from_backtest(backtest, LiveSettings())
    # the same model class and the same values: pydantic copies the lists, not the objects' meaning
    assert derived.strategies == backtest.strategies and derived.actors == backtest.actors
    assert all(type(a) is type(b) for a, b in zip(derived.strategies, backtest.strategies, strict=True))
    assert derived.live.environment == "testnet"


@pytest.mark.parametrize(
    ("override", "culprit"),
    [
        ("live.environment=prod", "live.environment"),
        ("live.data_source=kraken", "live.data_source"),
        ("live.bybit.http=ftp://x", "live.bybit.http"),
        ("live.bybit.ws_public=http://127.0.0.1:1", "live.bybit.ws_public"),
        ("venues.0.name=BINANCE", "BYBIT"),
        ("venues.0.leverage=50", "leverage"),
    ],
)
def test_bad_live_configs_name_the_culprit(override: str, culprit: str) -> None:
    with pytest.raises(ConfigError, match=culprit.replace(".", r"\.")):
        load_config(LiveConfig, LIVE_CONFIG, [override])


def test_paper_needs_bybit_data_and_binance_data_needs_binance_bars() -> None:
    with pytest.raises(ConfigError, match="BINANCE instruments"):
        load_config(LiveConfig, LIVE_CONFIG, ["live.data_source=binance"])
    with pytest.raises(ConfigError, match="paper"):
        load_config(
            LiveConfig,
            LIVE_CONFIG,
            [
                "live.data_source=binance",
                "live.execution=paper",
                "bars.0.instrument_id=BTCUSDT-PERP.BINANCE",
            ],
        )


def test_keys_come_from_the_environment_and_never_print(monkeypatch) -> None:
    assert credentials_from_environment("testnet", required=False) is None
    with pytest.raises(ConfigError, match="BYBIT_TESTNET_API_KEY and BYBIT_TESTNET_API_SECRET"):
        credentials_from_environment("testnet", required=True)
    monkeypatch.setenv("BYBIT_TESTNET_API_KEY", "key-123")
    monkeypatch.setenv("BYBIT_TESTNET_API_SECRET", "s3cret-value")
    credentials = credentials_from_environment("testnet", required=True)
    assert isinstance(credentials, Credentials)
    assert "s3cret-value" not in repr(credentials) and "s3cret-value" not in str(credentials)
    assert credentials.api_secret.get_secret_value() == "s3cret-value"


def _run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_execution_without_keys_exits_2_naming_the_variables(capsys, tmp_path) -> None:
    code, text = _run(["live", "run", "--config", str(LIVE_CONFIG), "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "BYBIT_TESTNET_API_KEY" in text and "Traceback" not in text
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_mainnet_prints_what_it_would_trade_and_refuses_without_yes(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BYBIT_API_KEY", "mainnet-key")
    monkeypatch.setenv("BYBIT_API_SECRET", "mainnet-secret-value")
    out = tmp_path / "run"
    code, text = _run(
        ["live", "run", "--config", str(LIVE_CONFIG), "--environment", "mainnet", "--out", str(out)], capsys
    )
    assert code == 2
    assert "--yes" in text and "BTCUSDT-LINEAR.BYBIT" in text and "Bybit mainnet" in text
    assert "mainnet-secret-value" not in text and "mainnet-key" not in text
    assert not out.exists()


def test_bad_environment_flag_exits_2(capsys) -> None:
    code, text = _run(["live", "run", "--config", str(LIVE_CONFIG), "--environment", "prod"], capsys)
    assert code == 2 and "--environment prod" in text


def test_parity_refuses_configs_it_cannot_replay(capsys, tmp_path) -> None:
    config = tmp_path / "latency.toml"
    shutil.copy(REPO / "configs" / "backtest" / "default.toml", config)
    code, text = _run(["parity", "--config", str(config), "--set", "venues.0.latency_ms=5"], capsys)
    assert code == 2 and "latency_ms" in text


def _order(index: int, **changes) -> dict:
    record = {
        "event": "order",
        "client_order_id": f"O-{index}",
        "instrument_id": "BTCUSDT-LINEAR.BYBIT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "0.100",
        "price": None,
        "trigger_price": None,
        "bar_ts": 1_000 + index,
    }
    return record | changes


def test_journals_compare_on_decisions_and_name_the_first_difference() -> None:
    backtest = [_order(0), _order(1, side="SELL"), _order(2)]
    assert compare_journals(backtest, list(backtest)).identical
    # client order ids differ between runs; reconciliation orders are not decisions
    live = [
        _order(0, client_order_id="X"),
        _order(9, reconciliation=True, bar_ts=0),
        _order(1, side="SELL"),
        _order(2),
    ]
    assert compare_journals(backtest, live).identical
    changed = compare_journals(backtest, [_order(0), _order(1, side="SELL", quantity="0.099"), _order(2)])
    assert changed.first_difference == 1 and changed.differing_fields == ["quantity"]
    shorter = compare_journals(backtest, backtest[:2])
    assert shorter.first_difference == 2 and shorter.live_order is None
    denied = compare_journals(
        backtest,
        [*backtest[:2], _order(2), {"event": "denied", "client_order_id": "O-2", "reason": "110007"}],
    )
    assert denied.differing_fields == ["denied"]


def test_live_resume_writes_a_request_only_for_a_fired_rule(capsys, tmp_path) -> None:
    from decimal import Decimal

    from qa_engine.risk.kill_switches import guard_from_rules

    out = f'output.directory="{tmp_path}"'
    code, text = _run(["live", "resume", "--config", str(LIVE_CONFIG), "--set", out], capsys)
    assert code == 2 and "no kill-switch state" in text

    guard = guard_from_rules(
        {"daily_loss": {"limit_pct": 1, "confirm_evaluations": 1}, "drawdown": {"limit_pct": 50}}
    )
    live = load_config(LiveConfig, LIVE_CONFIG, [out])
    state = tmp_path / f"{live.id}.risk_guard.json"
    state.write_text(json.dumps(guard.to_dict()))
    code, text = _run(["live", "resume", "--config", str(LIVE_CONFIG), "--set", out], capsys)
    assert code == 2 and "is fired" in text

    guard.on_bar(1_735_689_600_000_000_000, Decimal(10_000), 1.0)
    guard.on_bar(1_735_689_900_000_000_000, Decimal(9_800), 1.0)
    assert guard.fired_rules == ["daily_loss"]
    state.write_text(json.dumps(guard.to_dict()))
    code, text = _run(
        ["live", "resume", "--config", str(LIVE_CONFIG), "--set", out, "--rule", "drawdown"], capsys
    )
    assert code == 2 and "--rule drawdown: not fired; fired: daily_loss" in text
    code, text = _run(["live", "resume", "--config", str(LIVE_CONFIG), "--set", out], capsys)
    assert code == 0 and "resume requested for daily_loss" in text
    assert json.loads((tmp_path / f"{live.id}.risk_guard.json.resume").read_text()) == {"rules": None}
