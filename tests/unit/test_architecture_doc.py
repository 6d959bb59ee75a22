"""docs/ARCHITECTURE.md stays true: every path its folder tree names exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_folder_and_file_in_the_tree_exists():
    text = (REPO_ROOT / "docs" / "ARCHITECTURE.md").read_text()
    tree = text.split("```", 2)[1]  # the first code block: the folders
    parents: list[tuple[int, str]] = []
    named = []
    for line in tree.splitlines():
        match = re.match(r"^( *)([\w./,\- ]+?/|[\w.]+\.py)(?:\s|$)", line)
        if not match:
            continue
        indent, name = len(match.group(1)), match.group(2).strip()
        parents = [(i, p) for i, p in parents if i < indent]
        for part in (p.strip() for p in name.split(",")):
            path = "".join(p for _, p in parents) + part
            named.append(path)
        if name.endswith("/") and "," not in name:
            parents.append((indent, name))
    assert len(named) > 25, named
    missing = [path for path in named if not (REPO_ROOT / path).exists()]
    assert not missing, f"docs/ARCHITECTURE.md names paths that do not exist: {missing}"
