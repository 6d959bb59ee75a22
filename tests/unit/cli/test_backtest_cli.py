import subprocess
import sys
import tomllib

from qa_engine.cli.main import main


def test_dry_run_prints_the_resolved_config_with_overrides(capsys, sample_catalog):
    code = main(
        [
            "backtest",
            "run",
            "--dry-run",
            "--set",
            f'data.catalog="{sample_catalog}"',
            "--set",
            "strategies.0.params.slow_ema_period=40",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    resolved = tomllib.loads(out)
    assert resolved["strategies"][0]["params"]["slow_ema_period"] == 40
    assert resolved["venues"][0]["latency_ms"] == 0.0


def test_bad_config_exits_2_with_one_readable_message_and_no_traceback(capsys):
    code = main(["backtest", "run", "--dry-run", "--set", "venues.0.leverage=-1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "venues.0.leverage" in err
    assert "Traceback" not in err


def test_unknown_option_is_a_usage_error_with_exit_2(capsys):
    assert main(["backtest", "run", "--no-such-option"]) == 2


def test_run_backtest_shim_forwards_options(repo_root):
    result = subprocess.run(
        [sys.executable, "run_backtest.py", "--dry-run", "--set", "strategies.0.name=nope"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "unknown strategy 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_live_without_a_config_names_the_missing_option(repo_root):
    result = subprocess.run(
        [sys.executable, "run_live.py"], cwd=repo_root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "--config" in result.stderr
    assert "Traceback" not in result.stderr
