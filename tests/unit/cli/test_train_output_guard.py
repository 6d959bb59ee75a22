"""`qa train *` never overwrites committed or finished results by accident (issue 12).

- A folder under `artifacts/` (committed), or one that already holds a finished artifact/report, needs
  `--overwrite` (also as a `--publish` folder); without it: exit 2, one line naming the folder and the flag.
- `--resume` without a checkpoint in `--out`: exit 2 naming the folder and the file it looked for.
- `qa train evaluation` writes to a fresh `runs/<utc>_<id>/` folder by default.

Every refusal happens before anything is loaded or trained: the training functions are replaced by a
stub that fails the test if it is reached, so a regression can never write into `artifacts/`; the
committed folders are hashed before and after.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from qa_engine.cli.main import main
from qa_engine.models import pipeline

REPO_ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO_ROOT / "artifacts"
CONFIGS = REPO_ROOT / "configs" / "train"
COMMANDS = ("oracle", "guardian", "strategist", "evaluation", "baselines", "all")


class Reached(Exception):
    """Raised by the stubs: the command got past its guard to the training function."""


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every training entry point the train commands call, replaced by a recording stub that raises."""
    from qa_engine.models.baselines import train as baseline_training

    seen: list[tuple[str, dict[str, Any]]] = []

    def stub(name: str):
        def run(*args: Any, **kwargs: Any) -> None:
            seen.append((name, {"args": args, **kwargs}))
            raise Reached(name)

        return run

    for stage in pipeline.STAGE_ORDER:
        monkeypatch.setitem(pipeline.STAGES, stage, stub(stage))
    monkeypatch.setattr(pipeline, "run_oracle_stage", stub("oracle"))
    monkeypatch.setattr(pipeline, "run_pipeline", stub("all"))
    monkeypatch.setattr(baseline_training, "train_baselines", stub("baselines"))
    return seen


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _argv(command: str, *args: str) -> list[str]:
    config = CONFIGS / ("trinity.toml" if command == "all" else f"{command}.toml")
    return ["train", command, "--config", str(config), *args]


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], folder: Path, *words: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert str(folder) in err, err
    for word in words:
        assert word in err, err
    return err


# ---- 1. committed folders (under artifacts/) need --overwrite ----------------------------------------

COMMITTED_OUT = {
    "oracle": "oracle",
    "guardian": "guardian",
    "strategist": "strategist",
    "evaluation": "trinity",
    "baselines": "baselines",
    "all": "trinity",
}


@pytest.mark.parametrize("command", COMMANDS)
def test_out_under_artifacts_needs_force(command: str, calls, capsys) -> None:
    folder = ARTIFACTS / COMMITTED_OUT[command]
    before = _hashes(ARTIFACTS)

    _refused(capsys, _argv(command, "--out", str(folder)), folder, "--overwrite", "committed")

    assert calls == []
    assert _hashes(ARTIFACTS) == before


def test_the_issue_command_resume_into_committed_oracle_is_refused(calls, capsys) -> None:
    """`qa train oracle --out artifacts/oracle --resume`: refused (no checkpoint there either way)."""
    folder = ARTIFACTS / "oracle"
    before = _hashes(ARTIFACTS)

    _refused(capsys, _argv("oracle", "--out", str(folder), "--resume"), folder, "--overwrite")
    _refused(
        capsys,
        _argv("oracle", "--out", str(folder), "--resume", "--overwrite"),
        folder,
        "checkpoints/last.pt",
    )

    assert calls == []
    assert _hashes(ARTIFACTS) == before


@pytest.mark.parametrize("command", ["oracle", "guardian", "strategist", "baselines"])
def test_publish_into_artifacts_needs_force(command: str, calls, capsys, tmp_path: Path) -> None:
    folder = ARTIFACTS / COMMITTED_OUT[command]
    before = _hashes(ARTIFACTS)

    argv = _argv(command, "--out", str(tmp_path / "run"), "--publish", str(folder))
    _refused(capsys, argv, folder, "--overwrite", "--publish")

    assert calls == []
    assert not (tmp_path / "run").exists()
    assert _hashes(ARTIFACTS) == before


def test_a_relative_artifacts_folder_of_the_working_directory_is_committed_too(
    calls, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "artifacts" / "mine").mkdir(parents=True)

    _refused(capsys, _argv("oracle", "--out", "artifacts/mine"), Path("artifacts/mine"), "--overwrite")

    assert calls == []
    assert list((tmp_path / "artifacts" / "mine").iterdir()) == []


def test_dry_run_into_artifacts_writes_nothing_and_is_allowed(calls, capsys) -> None:
    before = _hashes(ARTIFACTS)

    assert main(_argv("oracle", "--out", str(ARTIFACTS / "oracle"), "--dry-run")) == 0

    assert calls == []
    assert _hashes(ARTIFACTS) == before


# ---- 1b. a folder that already holds a finished artifact / report needs --overwrite -------------------


def _finished_copy(tmp_path: Path, source: str, names: tuple[str, ...]) -> Path:
    """A tmp folder holding copies of some committed files (never the committed folder itself)."""
    folder = tmp_path / "finished"
    folder.mkdir()
    for name in names:
        shutil.copy2(ARTIFACTS / source / name, folder / name)
    return folder


@pytest.mark.parametrize("command", ["oracle", "guardian", "strategist", "evaluation", "baselines"])
def test_out_holding_a_finished_artifact_needs_force(command: str, calls, capsys, tmp_path: Path) -> None:
    folder = _finished_copy(tmp_path, "oracle", ("manifest.json", "report.md"))
    before = _hashes(folder)

    _refused(capsys, _argv(command, "--out", str(folder)), folder, "--overwrite", "manifest.json")

    assert calls == []
    assert _hashes(folder) == before


def test_publish_into_a_folder_holding_an_artifact_needs_force(calls, capsys, tmp_path: Path) -> None:
    folder = _finished_copy(tmp_path, "guardian", ("manifest.json", "model.onnx"))
    before = _hashes(folder)

    argv = _argv("guardian", "--out", str(tmp_path / "run"), "--publish", str(folder))
    _refused(capsys, argv, folder, "--overwrite", "--publish")

    assert calls == []
    assert _hashes(folder) == before


def _trinity(tmp_path: Path, *stages: str) -> Path:
    config = tmp_path / "trinity.toml"
    lines = ['id = "guard-test"'] + [f'{stage} = "{CONFIGS / f"{stage}.toml"}"' for stage in stages]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def test_train_all_refuses_a_finished_stage_folder(calls, capsys, tmp_path: Path) -> None:
    """Re-evaluating a run replaces its finished evaluation report: --overwrite."""
    run = tmp_path / "run"
    (run / "evaluation").mkdir(parents=True)
    shutil.copy2(ARTIFACTS / "trinity" / "report.md", run / "evaluation" / "report.md")
    before = _hashes(run)
    config = _trinity(tmp_path, "evaluation")

    argv = ["train", "all", "--config", str(config), "--out", str(run), "--stages", "evaluation"]
    _refused(capsys, argv, run / "evaluation", "--overwrite", "report.md")

    assert calls == []
    assert _hashes(run) == before
    with pytest.raises(Reached):
        main([*argv, "--overwrite"])
    assert [name for name, _ in calls] == ["all"]


# ---- 2. --resume needs a checkpoint in --out ---------------------------------------------------

RESUME_LOOKS_FOR = {
    "oracle": "folds/*/checkpoints/last.pt",
    "guardian": "folds/*/checkpoints/last.pt",
    "strategist": "checkpoints/last.pt",
    "baselines": "folds/*/*/checkpoints/last.pt",
    "all": "oracle/folds/*/checkpoints/last.pt",
}


@pytest.mark.parametrize("command", sorted(RESUME_LOOKS_FOR))
@pytest.mark.parametrize("holds_a_report", [False, True])
def test_resume_without_a_checkpoint_is_an_error(
    command: str, holds_a_report: bool, calls, capsys, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    if holds_a_report:
        shutil.copy2(ARTIFACTS / "oracle" / "report.md", folder / "report.md")
    before = _hashes(folder)

    argv = _argv(command, "--out", str(folder), "--resume", "--overwrite")
    _refused(capsys, argv, folder, "--resume", "no checkpoint", RESUME_LOOKS_FOR[command])

    assert calls == []
    assert _hashes(folder) == before


def test_resume_of_a_missing_folder_creates_nothing(calls, capsys, tmp_path: Path) -> None:
    folder = tmp_path / "never"

    _refused(capsys, _argv("oracle", "--out", str(folder), "--resume"), folder, "no checkpoint")

    assert calls == [] and not folder.exists()


@pytest.mark.parametrize(
    ("command", "checkpoint"),
    [
        ("oracle", "folds/2026/checkpoints/last.pt"),
        ("guardian", "folds/2026/checkpoints/last.pt"),
        ("strategist", "checkpoints/last.pt"),
        ("baselines", "folds/2026/xgboost/booster.json"),
        ("all", "guardian/folds/2026/checkpoints/last.pt"),
    ],
)
def test_resume_with_a_checkpoint_continues_its_own_finished_run(
    command: str, checkpoint: str, calls, tmp_path: Path
) -> None:
    """A run folder of one's own with a checkpoint: --resume continues it (finished files may be
    rewritten by the run they belong to), no --overwrite needed."""
    folder = tmp_path / "run"
    (folder / checkpoint).parent.mkdir(parents=True)
    (folder / checkpoint).write_bytes(b"stub")
    shutil.copy2(ARTIFACTS / "oracle" / "report.md", folder / "report.md")

    with pytest.raises(Reached):
        main(_argv(command, "--out", str(folder), "--resume"))

    assert [name for name, _ in calls] == [command]


# ---- --overwrite lets every command past the guard ---------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_force_lets_the_command_proceed(command: str, calls, tmp_path: Path) -> None:
    """The stub stands in for the training: it is reached with the committed folder as the run folder
    (and writes nothing)."""
    folder = ARTIFACTS / COMMITTED_OUT[command]
    before = _hashes(ARTIFACTS)

    with pytest.raises(Reached):
        main(_argv(command, "--out", str(folder), "--overwrite"))

    assert [name for name, _ in calls] == [command]
    args = calls[0][1]["args"]
    assert folder in args
    assert _hashes(ARTIFACTS) == before


@pytest.mark.parametrize("command", ["oracle", "guardian", "strategist", "baselines"])
def test_force_lets_publish_into_artifacts_proceed(command: str, calls, tmp_path: Path) -> None:
    with pytest.raises(Reached):
        main(
            _argv(
                command, "--out", str(tmp_path / "run"), "--publish", str(ARTIFACTS / command), "--overwrite"
            )
        )

    assert [name for name, _ in calls] == [command]


def test_a_fresh_out_folder_needs_no_force(calls, tmp_path: Path) -> None:
    with pytest.raises(Reached):
        main(_argv("oracle", "--out", str(tmp_path / "fresh")))

    assert [name for name, _ in calls] == ["oracle"]


# ---- 3. qa train evaluation writes a fresh run folder by default ---------------------------------


def test_evaluation_defaults_to_a_fresh_run_folder(
    calls, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(Reached):
        main(_argv("evaluation"))

    ((name, call),) = calls
    run_dir = call["args"][2]
    assert name == "evaluation"
    assert run_dir.parent == Path("runs") and run_dir.name.endswith("_trinity-evaluation")
    assert not run_dir.exists()  # nothing was there before: a fresh folder, never artifacts/trinity
