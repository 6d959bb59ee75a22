"""`qa train`: config handling and the stage list (training itself is covered in tests/unit/models)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from qa_engine.cli.main import main


def test_dry_run_prints_the_resolved_oracle_config_with_overrides(capsys, repo_root: Path) -> None:
    code = main(
        [
            "train",
            "oracle",
            "--config",
            str(repo_root / "configs/train/oracle.toml"),
            "--dry-run",
            "--set",
            "trainer.max_epochs=3",
            "--device",
            "cpu",
        ]
    )

    resolved = tomllib.loads(capsys.readouterr().out)
    assert code == 0
    assert resolved["trainer"]["max_epochs"] == 3
    assert resolved["data"]["encoder_bars"] == 60 and resolved["data"]["horizon_bars"] == 12
    assert [fold["name"] for fold in resolved["data"]["folds"]] == ["2025-q4", "2026"]
    assert resolved["model"]["quantiles"] == [0.1, 0.5, 0.9]


def test_an_unknown_model_key_exits_2_with_one_readable_message(capsys, repo_root: Path) -> None:
    code = main(
        [
            "train",
            "oracle",
            "--config",
            str(repo_root / "configs/train/oracle.toml"),
            "--dry-run",
            "--set",
            "model.width=3",
        ]
    )

    err = capsys.readouterr().err
    assert code == 2
    assert "model.width" in err
    assert "Traceback" not in err


def test_resume_needs_the_run_folder(capsys, repo_root: Path) -> None:
    code = main(["train", "oracle", "--config", str(repo_root / "configs/train/oracle.toml"), "--resume"])

    assert code == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_train_all_skips_stages_without_a_config(capsys, tmp_path: Path) -> None:
    from qa_engine.models.pipeline import STAGE_ORDER
    from qa_engine.models.pipeline import STAGES

    config = tmp_path / "trinity.toml"
    config.write_text('id = "trinity-test"\n')  # no stage configs: nothing is trained

    code = main(["train", "all", "--config", str(config), "--out", str(tmp_path / "run")])

    out = capsys.readouterr().out
    assert code == 0
    assert all(STAGES[stage] is not None for stage in STAGE_ORDER)  # every stage is implemented
    assert out.count("skipped") == len(STAGE_ORDER)
    assert "NOT AVAILABLE YET" not in out
