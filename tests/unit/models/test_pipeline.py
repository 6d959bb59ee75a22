"""`qa train all` end to end on a tiny config: Guardian -> Oracle -> Strategist -> evaluation on two
weeks of real Binance USD-M BTCUSDT 5m bars (data/klines, PROVENANCE.md), 1 epoch, tiny models.
Also the single-stage commands, `--stages evaluation` on an earlier run, and how failures are reported.

One module-scoped run of the whole pipeline (~30 s on the shared 2-core machine) feeds most tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qa_engine.cli.main import app
from qa_engine.cli.main import main
from qa_engine.config.loader import dump_toml
from qa_engine.config.loader import load_config
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.inference.artifact import load_artifact
from tests.unit.models.oracle_data import BTC_5M

pytest.importorskip("torch")

REPO_ROOT = Path(__file__).resolve().parents[3]
SOURCE = f'[{{symbol = "BTCUSDT", klines = "{BTC_5M}"}}]'
FOLD_A = (
    '{name = "a", train_start = 2025-03-01T00:00:00Z, validation_start = 2025-03-08T00:00:00Z, '
    "test_start = 2025-03-10T00:00:00Z, test_end = 2025-03-12T00:00:00Z}"
)
FOLD_B = (
    '{name = "b", train_start = 2025-03-01T00:00:00Z, validation_start = 2025-03-10T00:00:00Z, '
    "test_start = 2025-03-12T00:00:00Z, test_end = 2025-03-14T00:00:00Z}"
)
TINY_TRAINER = [
    "trainer.max_epochs=1",
    "trainer.batch_size=64",
    "trainer.train_windows_per_epoch=256",
    "trainer.validation_windows=256",
    "trainer.warmup_steps=2",
    "trainer.threads=1",
]
TINY = {
    "guardian": [
        f"data.sources={SOURCE}",
        f"data.folds=[{FOLD_A}, {FOLD_B}]",
        "data.history_bars=400",
        "model.window_bars=16",
        "model.latent_dim=4",
        "model.hidden_size=8",
        "model.encoder_layers=2",
        "model.projection_size=8",
        "model.regimes.kmeans_restarts=2",
        *TINY_TRAINER,
    ],
    "oracle": [
        f"data.sources={SOURCE}",
        f"data.folds=[{FOLD_B}]",
        "data.history_bars=700",
        "data.encoder_bars=24",
        "data.horizon_bars=6",
        "model.hidden_size=8",
        "model.attention_heads=2",
        *TINY_TRAINER,
    ],
    "strategist": [
        f"data.sources={SOURCE}",
        f"data.folds=[{FOLD_B}]",
        "fold=b",
        "data.history_bars=700",
        "model.context_length=8",
        "model.n_embd=16",
        "model.n_layer=1",
        "episode_bars=64",
        *TINY_TRAINER,
    ],
    "evaluation": [
        f"source={SOURCE[1:-1]}",
        f'baselines_report="{REPO_ROOT / "artifacts/baselines/report.json"}"',
    ],
}


def write_tiny_configs(folder: Path) -> Path:
    """The committed run configs with the tiny overrides, resolved and written as TOML, plus a trinity
    config naming them; returns the trinity config's path."""
    from qa_engine.models.pipeline import STAGE_CONFIG_TYPES

    folder.mkdir(parents=True, exist_ok=True)
    lines = ['id = "trinity-tiny"']
    for stage, overrides in TINY.items():
        module_name, _, class_name = STAGE_CONFIG_TYPES[stage].partition(":")
        model = getattr(__import__(module_name, fromlist=[class_name]), class_name)
        config = load_config(model, REPO_ROOT / "configs" / "train" / f"{stage}.toml", overrides)
        path = folder / f"{stage}.toml"
        path.write_text(dump_toml(config), encoding="utf-8")
        lines.append(f'{stage} = "{path}"')
    trinity = folder / "trinity.toml"
    trinity.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return trinity


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One `qa train all` over the tiny configs, through typer's CliRunner."""
    folder = tmp_path_factory.mktemp("trinity")
    trinity = write_tiny_configs(folder / "configs")
    result = CliRunner().invoke(app, ["train", "all", "--config", str(trinity), "--out", str(folder / "run")])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return folder / "run", trinity, result.output


def test_train_all_runs_every_stage_in_its_own_folder(pipeline_run) -> None:
    run, _, output = pipeline_run
    for stage in ("guardian", "oracle", "strategist", "evaluation"):
        assert (run / stage / "config.toml").is_file(), stage
    for name in ("artifact/model.onnx", "regimes.json", "regimes.md", "plots/regimes_b_test.png"):
        assert (run / "guardian" / name).is_file(), name
    assert (run / "guardian" / "folds" / "a" / "checkpoints" / "last.pt").is_file()
    for name in ("model.onnx", "manifest.json", "report.md", "report.json"):
        assert (run / "oracle" / name).is_file(), name
    for name in ("artifact/model.onnx", "report.md", "report.json", "out_of_sample.json", "curves.csv"):
        assert (run / "strategist" / name).is_file(), name
    for name in (
        "report.md",
        "report.json",
        "plots/strategist_equity_test.png",
        "plots/guardian_regimes_test.png",
    ):
        assert (run / "evaluation" / name).is_file(), name
    assert output.count(" done ") == 4
    assert "trinity-tiny" in output
    summary = json.loads((run / "summary.json").read_text())  # training time per stage (issue 18)
    assert [entry["stage"] for entry in summary["stages"]] == [
        "guardian",
        "oracle",
        "strategist",
        "evaluation",
    ]
    assert all(entry["status"] == "done" and entry["secs"] > 0 for entry in summary["stages"])
    assert summary["total_secs"] == pytest.approx(sum(entry["secs"] for entry in summary["stages"]))
    assert "| oracle | done |" in (run / "summary.md").read_text()


def test_stage_artifacts_load_through_the_shared_loader(pipeline_run) -> None:
    """load_artifact reads every kind (the manifest registry); the strategist's fitted feature set is
    the Oracle's when both fit the FFD order on the same training range."""
    run, _, _ = pipeline_run
    guardian = load_artifact(run / "guardian" / "artifact", window_bars=16, interval="5m")
    oracle = load_artifact(run / "oracle", window_bars=24, interval="5m")
    strategist = load_artifact(run / "strategist" / "artifact", window_bars=8, interval="5m")

    assert [guardian.manifest.model_kind, oracle.manifest.model_kind, strategist.manifest.model_kind] == [
        "guardian",
        "oracle",
        "strategist",
    ]
    assert [fold.name for fold in guardian.manifest.folds] == ["a", "b"]
    assert guardian.manifest.trained_on_fold == "b"
    assert strategist.manifest.feature_set.hash == oracle.manifest.feature_set.hash


def test_guardian_report_holds_out_of_sample_statistics_and_fold_stability(pipeline_run) -> None:
    run, _, _ = pipeline_run
    report = json.loads((run / "guardian" / "regimes.json").read_text())

    for name, fold in report["folds"].items():
        stats = fold["out_of_sample_test"]
        assert stats["range"][0] >= fold["test"][0], name  # described on its test range only
        assert sum(row["bars"] for row in stats["regimes"]) == stats["bars"] == fold["windows"]["test"]
        assert math.isclose(sum(row["share"] for row in stats["regimes"]), 1.0)
    pair = report["stability"]["pairs"]["a vs b"]
    assert report["stability"]["range"][0] == "2025-03-12T00:00:00Z"
    assert -1.0 <= pair["guardian_reported"]["adjusted_rand_index"] <= 1.0
    assert pair["guardian_reported"]["bars"] == report["folds"]["b"]["out_of_sample_test"]["bars"]
    assert pair["rv_quartiles_baseline"]["bars"] == pair["guardian_reported"]["bars"]
    separation = report["folds"]["b"]["separation"]
    assert set(separation) == {"guardian", "rv_quartiles", "realised_volatility_20_quartiles"}
    skill = report["skill_vs_strongest_baseline"]
    assert skill["separation"]["strongest_baseline"] in separation and "stability" in skill
    assert "Skill against the strongest baseline: " in (run / "guardian" / "regimes.md").read_text()


def test_evaluation_reproduces_the_stage_results_from_the_onnx_artifacts(pipeline_run) -> None:
    """The evaluation reran nothing but the ONNX graphs: its Oracle metrics equal the Oracle stage's own
    test metrics, its regimes the Guardian stage's, its rollouts the Strategist stage's."""
    run, _, _ = pipeline_run
    evaluation = json.loads((run / "evaluation" / "report.json").read_text())
    oracle = json.loads((run / "oracle" / "report.json").read_text())
    guardian = json.loads((run / "guardian" / "regimes.json").read_text())
    strategist = json.loads((run / "strategist" / "out_of_sample.json").read_text())

    assert evaluation["test_range"] == ["2025-03-12T00:00:00Z", "2025-03-14T00:00:00Z"]
    stage = oracle["folds"][0]["metrics"]["tft"]
    recomputed = evaluation["oracle"]["metrics"]["pooled"]["tft"]
    assert recomputed["windows"] == stage["windows"]
    assert math.isclose(recomputed["pinball_mean"], stage["pinball_mean"], rel_tol=1e-5)
    assert math.isclose(recomputed["coverage"], stage["coverage"], rel_tol=1e-9)
    assert evaluation["oracle"]["stage_report"]["windows"] == stage["windows"]
    stage_regimes = guardian["folds"]["b"]["out_of_sample_test"]["regimes"]
    assert [row["bars"] for row in evaluation["guardian"]["statistics"]["regimes"]] == [
        row["bars"] for row in stage_regimes
    ]
    assert evaluation["guardian"]["stability"] == guardian["stability"]
    for name, values in strategist["policies"].items():
        np.testing.assert_allclose(
            evaluation["strategist"]["policies"][name]["log_return"], values["log_return"], atol=1e-9
        )
    assert evaluation["strategist"]["policies"]["flat"]["log_return"] == 0.0
    assert len(evaluation["by_regime"]) == 4
    assert evaluation["baselines"]["position_policy"] == "flat_on_hold"
    markdown = (run / "evaluation" / "report.md").read_text()
    for heading in ("## Oracle", "## Guardian", "## Strategist", "## Baselines", "buy-and-hold"):
        assert heading in markdown


@pytest.mark.slow
def test_stages_evaluation_reevaluates_an_earlier_run_without_training(pipeline_run) -> None:
    run, trinity, _ = pipeline_run
    before = {
        stage: (run / stage / "checkpoints" / "last.pt").stat().st_mtime_ns for stage in ("strategist",)
    }
    (run / "evaluation" / "report.json").unlink()
    argv = ["train", "all", "--config", str(trinity), "--out", str(run), "--stages", "evaluation"]

    assert main(argv) == 2  # report.md is still there: replacing a finished report needs --overwrite
    code = main([*argv, "--overwrite"])

    assert code == 0
    assert (run / "evaluation" / "report.json").is_file()
    assert (run / "strategist" / "checkpoints" / "last.pt").stat().st_mtime_ns == before["strategist"]


def test_evaluation_refuses_a_range_the_models_trained_on(pipeline_run, tmp_path: Path) -> None:
    run, trinity, _ = pipeline_run
    config = trinity.parent / "evaluation.toml"

    code = main(
        [
            "train",
            "evaluation",
            "--config",
            str(config),
            "--out",
            str(tmp_path / "e"),
            "--set",
            f'oracle="{run / "oracle"}"',
            "--set",
            f'guardian="{run / "guardian"}"',
            "--set",
            'strategist=""',
            "--set",
            "test_start=2025-03-11T00:00:00Z",
        ]
    )

    assert code == 2
    assert not (tmp_path / "e" / "report.json").exists()


def test_a_failing_stage_names_itself_and_stops_the_pipeline(tmp_path: Path, capsys) -> None:
    """A strategist config whose fold lies in the data's 7-month hole: DataError -> exit 2, one message
    naming the stage, the summary table says which stages ran."""
    configs = tmp_path / "configs"
    write_tiny_configs(configs)
    hole = (
        '[{name = "h", train_start = 2024-06-01T00:00:00Z, validation_start = 2024-06-08T00:00:00Z, '
        "test_start = 2024-06-10T00:00:00Z, test_end = 2024-06-12T00:00:00Z}]"
    )
    from qa_engine.models.strategist.train import StrategistTrainConfig

    broken = load_config(StrategistTrainConfig, configs / "strategist.toml", [f"data.folds={hole}", "fold=h"])
    (configs / "strategist.toml").write_text(dump_toml(broken))
    trinity = tmp_path / "trinity.toml"
    trinity.write_text(f'id = "broken"\nstrategist = "{configs / "strategist.toml"}"\n')

    code = main(["train", "all", "--config", str(trinity), "--out", str(tmp_path / "run")])

    captured = capsys.readouterr()
    assert code == 2
    assert "stage 'strategist' failed" in captured.err and "Traceback" not in captured.err
    assert "FAILED" in captured.out and "not run" in captured.out  # the evaluation did not run
    result = CliRunner().invoke(
        app, ["train", "all", "--config", str(trinity), "--out", str(tmp_path / "again")]
    )
    assert result.exit_code != 0 and isinstance(result.exception.cause, DataError)


def test_a_bad_stage_config_fails_before_anything_trains(tmp_path: Path, capsys) -> None:
    configs = tmp_path / "configs"
    write_tiny_configs(configs)
    (configs / "oracle.toml").write_text((configs / "oracle.toml").read_text() + "\nwidth = 3\n")
    trinity = tmp_path / "trinity.toml"
    trinity.write_text(f'guardian = "{configs / "guardian.toml"}"\noracle = "{configs / "oracle.toml"}"\n')

    code = main(["train", "all", "--config", str(trinity), "--out", str(tmp_path / "run")])

    assert code == 2
    assert "stage 'oracle'" in capsys.readouterr().err
    assert not (tmp_path / "run" / "guardian").exists()  # nothing trained


def test_unknown_stage_and_stages_without_out_are_config_errors(tmp_path: Path) -> None:
    trinity = tmp_path / "trinity.toml"
    trinity.write_text('id = "t"\n')
    runner = CliRunner()

    unknown = runner.invoke(
        app, ["train", "all", "--config", str(trinity), "--out", str(tmp_path), "--stages", "x"]
    )
    no_out = runner.invoke(app, ["train", "all", "--config", str(trinity), "--stages", "evaluation"])

    assert isinstance(unknown.exception, ConfigError) and "guardian, oracle, strategist, evaluation" in str(
        unknown.exception
    )
    assert isinstance(no_out.exception, ConfigError) and "--stages needs --out" in str(no_out.exception)


def test_single_stage_commands_dry_run_with_overrides() -> None:
    runner = CliRunner()
    for stage, key in (("guardian", "window_bars = 16"), ("strategist", "context_length = 8")):
        result = runner.invoke(
            app,
            [
                "train",
                stage,
                "--config",
                str(REPO_ROOT / "configs" / "train" / f"{stage}.toml"),
                "--dry-run",
                "--set",
                "model.window_bars=16" if stage == "guardian" else "model.context_length=8",
                "--device",
                "cpu",
            ],
        )
        assert result.exit_code == 0, result.output
        assert key in result.output
    bad = runner.invoke(app, ["train", "guardian", "--dry-run", "--set", "model.n_features=20"])
    assert isinstance(bad.exception, ConfigError) and "n_features" in str(bad.exception)
    assert main(["train", "guardian", "--dry-run", "--device", "tpu"]) == 2


def test_the_evaluation_and_the_pipeline_modules_never_import_torch() -> None:
    """The evaluation runs the artifacts with onnxruntime only (like trading does)."""
    import subprocess
    import sys

    code = (
        "import sys, qa_engine.models.trinity_evaluation, qa_engine.models.pipeline; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert result.stdout.strip() == "False"
