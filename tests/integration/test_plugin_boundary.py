import pytest

from qa_engine.backtest.runner import run_backtest
from qa_engine.cli.main import main
from qa_engine.config.models import BacktestConfig
from qa_engine.errors import PluginError

INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"


def config(sample_catalog, name: str) -> BacktestConfig:
    return BacktestConfig.model_validate(
        {
            "id": "plugin-boundary",
            "venues": [{"name": "BYBIT"}],
            "data": {
                "catalog": str(sample_catalog),
                "bars": [{"instrument_id": INSTRUMENT_ID, "interval": "5m"}],
                "start": "2025-01-01T00:00:00Z",
                "end": "2025-01-02T00:00:00Z",
            },
            "strategies": [
                {
                    "name": name,
                    "params": {
                        "instrument_id": INSTRUMENT_ID,
                        "bar_type": f"{INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL",
                    },
                },
            ],
        },
    )


def test_error_in_user_code_fails_the_run_naming_the_plugin(sample_catalog, tmp_path):
    with pytest.raises(
        PluginError, match=r"plug-in FaultyStrategy .* raised in decide\(\): ZeroDivisionError"
    ):
        run_backtest(config(sample_catalog, "tests.plugins.faulty:FaultyStrategy"), run_dir=tmp_path)


def test_cli_reports_a_plugin_error_with_exit_code_1_and_no_traceback(sample_catalog, tmp_path, capsys):
    code = main(
        [
            "backtest",
            "run",
            "--out",
            str(tmp_path),
            "--set",
            f'data.catalog="{sample_catalog}"',
            "--set",
            'strategies.0.name="tests.plugins.faulty:FaultyStrategy"',
            "--set",
            # the default config's EMA periods are not FaultyStrategy's parameters (refused since 1.231)
            'strategies.0.params={instrument_id="BTCUSDT-LINEAR.BYBIT", '
            'bar_type="BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL"}',
            "--set",
            "data.end=2025-01-02T00:00:00Z",
        ],
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "FaultyStrategy" in err and "Traceback" not in err


def test_a_parameter_the_plugin_does_not_have_is_refused_before_the_run(sample_catalog, tmp_path, capsys):
    code = main(
        [
            "backtest",
            "run",
            "--out",
            str(tmp_path),
            "--set",
            f'data.catalog="{sample_catalog}"',
            "--set",
            "strategies.0.params.fast_ema_perod=20",
        ],
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown field `fast_ema_perod`; did you mean `fast_ema_period`?" in err and "Traceback" not in err
    assert not (tmp_path / "fills.csv").exists()
