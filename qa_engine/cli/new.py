"""`qa new strategy NAME`: a plug-in file, a backtest config and a passing test, from templates."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from string import Template
from typing import Annotated

import typer

from qa_engine.cli.console import stdout_console
from qa_engine.errors import ConfigError

TEMPLATES = Path(__file__).parent / "templates"
LINE_LENGTH = 110  # pyproject.toml [tool.ruff]: generated files pass `make lint` as they are

new_app = typer.Typer(help="Scaffold new plug-ins.", no_args_is_help=True)


@new_app.callback()
def new_group() -> None:
    """Scaffold new plug-ins."""


def class_name_of(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def scaffold_strategy(name: str, root: Path, package: str, description: str) -> list[Path]:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"strategy name '{name}' must be snake_case (a-z, 0-9, _), starting with a letter")
    package_dir = root / package.replace(".", "/")
    if not (package_dir / "__init__.py").is_file():
        raise ConfigError(f"'{package}' is not a Python package under {root} (no __init__.py)")
    config_path = Path("configs/backtest") / f"{name}.toml"
    test_path = Path("tests/conformance") / f"test_{name}.py"
    files = {
        package_dir / f"{name}.py": "strategy.py.tmpl",
        root / config_path: "config.toml.tmpl",
        root / test_path: "test.py.tmpl",
    }
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise ConfigError(f"refusing to overwrite {', '.join(existing)}")
    summary = f"{class_name_of(name)}Strategy: {description}"
    values = {
        "name": name,
        "class_name": class_name_of(name),
        # The docstring's first line, wrapped after its opening quotes so that no line is too long.
        "summary": textwrap.fill(summary, width=LINE_LENGTH, initial_indent='"""')[3:],
        "description": description,
        "module": f"{package}.{name}",
        "slug": name.replace("_", "-"),
        "config_path": config_path.as_posix(),
        "config_depth": len(test_path.parts) - 1,
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template((TEMPLATES / template).read_text()).substitute(values))
    return list(files)


@new_app.command("strategy")
def new_strategy(
    name: Annotated[str, typer.Argument(help="snake_case name, e.g. my_breakout")],
    package: Annotated[str, typer.Option(help="package that will hold the plug-in")] = "strategies",
    description: Annotated[str, typer.Option(help="one line for the docstring")] = "a momentum strategy",
    root: Annotated[Path, typer.Option(help="project root")] = Path("."),
) -> None:
    """Create <package>/<name>.py, configs/backtest/<name>.toml and tests/conformance/test_<name>.py."""
    for path in scaffold_strategy(name, root, package, description):
        stdout_console.print(f"created {path}")
    stdout_console.print(
        f"run it: .venv/bin/python run_backtest.py --config configs/backtest/{name}.toml\n"
        f'register a short name (optional): add "{name}": "{package}.{name}:{class_name_of(name)}Strategy" '
        f"to REGISTRY in {package}/__init__.py",
    )
