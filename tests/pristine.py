"""The committed sample catalog as committed, whatever a user's work has added to `catalog/`.

Tests never read `catalog/` in place: a user who follows the README may write into it (`qa signals
build` adds replay records, an ingest or download may add bars). `pristine_catalog()` copies exactly the
files `catalog/MANIFEST.sha256` lists (written by catalog/build_sample.sh) into a temporary folder once
per test session, checking every byte; a committed file that was changed or deleted fails the tests with
the command that restores it, extra files are left out."""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CATALOG = REPO_ROOT / "catalog"
MANIFEST = CATALOG / "MANIFEST.sha256"


def manifest_entries(manifest: Path = MANIFEST) -> list[tuple[str, str]]:
    """(sha256, path relative to catalog/) for every committed catalog file."""
    entries = []
    for line in manifest.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            entries.append((digest, name.removeprefix("./")))
    return entries


def check_and_copy(source: Path, target: Path, manifest: Path) -> list[str]:
    """Copy the manifest's files from `source` to `target`; return the ones missing or changed."""
    problems = []
    for digest, name in manifest_entries(manifest):
        path = source / name
        if not path.is_file():
            problems.append(f"{name} (missing)")
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            problems.append(f"{name} (changed)")
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)
    return problems


@cache
def pristine_catalog() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="qa-pristine-catalog-")) / "catalog"
    atexit.register(shutil.rmtree, folder.parent, True)
    problems = check_and_copy(CATALOG, folder, MANIFEST)
    if problems:
        pytest.fail(
            "the committed sample catalog was modified: "
            + ", ".join(problems[:3])
            + (f" and {len(problems) - 3} more" if len(problems) > 3 else "")
            + "; restore it with `git checkout -- catalog/` (or rebuild it: catalog/build_sample.sh)",
            pytrace=False,
        )
    return folder
