"""The dependency direction: the trading side never imports the training side (docs/ARCHITECTURE.md).

Trading (qa_engine.inference, replay, live, backtest, the actors and strategies) and the artifact
contract (qa_engine.contract) must import without `torch` and without `qa_engine.models`: both share
only `qa_engine.contract`. Two checks:

- every trading module is imported in a fresh interpreter where `torch` and `qa_engine.models` (and
  their submodules) are made unimportable before anything else is imported (see PROBE for how); a
  module whose import chain reaches them fails the test, named with the chain of repository modules
  that led there;
- the source of every trading module is read with `ast` for imports anywhere (including lazy imports
  inside functions, which the first check cannot see) of `torch` or `qa_engine.models`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Packages (every module under them) and single modules of the trading side.
TRADING_PACKAGES = (
    "qa_engine.contract",
    "qa_engine.inference",
    "qa_engine.replay",
    "qa_engine.live",
    "qa_engine.backtest",
    "qa_engine.features",
    "qa_engine.risk",
    "actors",
    "strategies",
)
TRADING_MODULES = ("qa_engine.signals",)
FORBIDDEN = ("torch", "qa_engine.models")

# Run in a fresh interpreter: argv[1] is a JSON list of module names; prints a JSON object
# {module: "chain -> of -> modules -> blocked name"} for every module whose import failed.
PROBE = r"""
import importlib
import json
import sys
import traceback

# Unimportable the way an uninstalled package is: `import torch` (or any torch.* / qa_engine.models.*)
# raises ModuleNotFoundError, and `importlib.util.find_spec("torch")` answers None, which is how
# optional-dependency probes (polars checks for torch at import) decide that it is absent. A meta path
# finder raising ImportError would break those probes instead of answering them.
for name in ("torch", "qa_engine.models"):
    sys.modules[name] = None

root = sys.argv[2] + "/"
failures = {}
for module in json.loads(sys.argv[1]):
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, blocked or not
        chain = [module]
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename.startswith(root) and not frame.filename.startswith(root + ".venv"):
                dotted = frame.filename.removeprefix(root).removesuffix(".py").replace("/", ".")
                dotted = dotted.removesuffix(".__init__")
                if dotted != chain[-1]:
                    chain.append(dotted)
        name = exc.name if isinstance(exc, ImportError) and exc.name else ""
        blocked = any(name == root or name.startswith(root + ".") for root in ("torch", "qa_engine.models"))
        reason = f"imports {name}" if blocked else f"{type(exc).__name__}: {exc}"
        failures[module] = " -> ".join(chain) + f" ({reason})"
print(json.dumps(failures))
"""


def trading_modules() -> list[str]:
    names = list(TRADING_MODULES)
    for package in TRADING_PACKAGES:
        folder = REPO_ROOT / package.replace(".", "/")
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imports_of(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` anywhere in the file names (absolute imports)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def forbidden(module: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in FORBIDDEN)


def test_trading_modules_import_without_torch_or_training_code() -> None:
    modules = trading_modules()
    assert "qa_engine.inference.guardian" in modules and "strategies.ml_signal" in modules

    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules), str(REPO_ROOT)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    failures = json.loads(result.stdout.strip().splitlines()[-1])
    assert failures == {}, "trading modules that reach torch or qa_engine.models:\n" + "\n".join(
        failures.values()
    )


def test_trading_sources_never_import_torch_or_training_code_even_lazily() -> None:
    offenders = []
    for module in trading_modules():
        path = REPO_ROOT / module.replace(".", "/")
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        offenders += [f"{module} imports {name}" for name in sorted(imports_of(path)) if forbidden(name)]

    assert offenders == []
