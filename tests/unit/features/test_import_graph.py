"""qa_engine.features has no import circle.

The graph is built with `ast` from every module of the package, counting ALL imports: top-level ones
and those inside functions (lazy imports), because a lazy import is still a dependency (the old
circle batch -> registry -> families -> batch ran entirely through lazy imports). An edge goes from a
module to each module of the package it names (`from qa_engine.features.families import technical`
names the submodule `families.technical`; `from qa_engine.features.batch import X` names `batch`);
imports from outside the package are ignored. The intended shape: families import `contexts`
(never the twins), the registry imports the families, the twins import the registry and `contexts`.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

PACKAGE = "qa_engine.features"
ROOT = Path(__file__).resolve().parents[3]
FOLDER = ROOT / PACKAGE.replace(".", "/")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of the package it imports anywhere in its source."""
    modules = {module_name(path): path for path in sorted(FOLDER.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in modules else base)
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def test_features_package_import_graph_is_acyclic() -> None:
    graph = import_graph()
    # The graph is the real one (the test is not vacuous): these edges exist.
    assert "qa_engine.features.families.technical" in graph["qa_engine.features.registry"]
    assert "qa_engine.features.contexts" in graph["qa_engine.features.families.technical"]
    assert "qa_engine.features.registry" in graph["qa_engine.features.batch"]
    assert "qa_engine.features.registry" in graph["qa_engine.features.streaming"]

    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        cycle = list(reversed(error.args[1]))  # graphlib lists each importer after what it imports
        raise AssertionError(f"import circle in {PACKAGE}: {' -> '.join(cycle)}") from None

    assert set(order) == set(graph)


def test_families_import_only_contexts_of_the_twins() -> None:
    graph = import_graph()
    twins = {"qa_engine.features.batch", "qa_engine.features.streaming", "qa_engine.features.registry"}
    offenders = {
        module: sorted(targets & twins)
        for module, targets in graph.items()
        if module.startswith("qa_engine.features.families") and targets & twins
    }

    assert offenders == {}


def test_importing_the_feature_library_does_not_import_numba() -> None:
    """numba (~0.2 s to import) loads when a compiled routine is first needed (a streaming engine, the
    batch volume profile), not for every CLI command or config check that touches the registry."""
    code = "import sys, qa_engine.features.sets, qa_engine.features.batch; print('numba' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True, timeout=120
    )
    assert result.stdout.strip() == "False", result.stdout + result.stderr
