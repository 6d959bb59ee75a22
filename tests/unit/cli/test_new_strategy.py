import importlib
import shutil
import sys

import pytest

from qa_engine.backtest.runner import run_backtest
from qa_engine.cli.main import main
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig


@pytest.fixture
def project(tmp_path, sample_catalog, monkeypatch):
    """A scratch project: a plug-in package and the sample catalog beside it."""
    (tmp_path / "my_plugins").mkdir()
    (tmp_path / "my_plugins" / "__init__.py").write_text("")
    shutil.copytree(sample_catalog, tmp_path / "catalog")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_plugins.breakout", None)
    sys.modules.pop("my_plugins", None)


def test_new_strategy_creates_a_plugin_config_and_test_that_run(project, tmp_path_factory):
    code = main(["new", "strategy", "breakout", "--package", "my_plugins", "--root", str(project)])
    assert code == 0
    for path in (
        "my_plugins/breakout.py",
        "configs/backtest/breakout.toml",
        "tests/conformance/test_breakout.py",
    ):
        assert (project / path).is_file(), path
    module = importlib.import_module("my_plugins.breakout")
    assert module.BreakoutStrategy.__name__ == "BreakoutStrategy"
    config = load_config(
        BacktestConfig,
        project / "configs/backtest/breakout.toml",
        [f'data.catalog="{project / "catalog"}"', "data.end=2025-01-04T00:00:00Z"],
    )
    outcome = run_backtest(config, run_dir=tmp_path_factory.mktemp("run"))
    assert outcome.bars == 3 * 288
    assert outcome.report.metrics.total_trades > 0  # the template strategy trades on real data
    # The generated test itself passes.
    generated = project / "tests/conformance/test_breakout.py"
    namespace: dict = {"__file__": str(generated)}
    exec(compile(generated.read_text(), str(generated), "exec"), namespace)
    assert namespace["CONFIG"] == project / "configs/backtest/breakout.toml"
    namespace["test_breakout_runs_three_days_of_real_bars"](tmp_path_factory.mktemp("generated"))


def test_new_strategy_refuses_to_overwrite(project, capsys):
    assert main(["new", "strategy", "breakout", "--package", "my_plugins", "--root", str(project)]) == 0
    assert main(["new", "strategy", "breakout", "--package", "my_plugins", "--root", str(project)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_new_strategy_rejects_a_bad_name(project, capsys):
    assert main(["new", "strategy", "Bad-Name", "--package", "my_plugins", "--root", str(project)]) == 2
    assert "snake_case" in capsys.readouterr().err
