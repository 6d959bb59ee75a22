"""Load a run config from TOML, apply `--set a.b=value` overrides, validate once.

Every failure becomes a ConfigError with one readable message naming the file and the field.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel
from pydantic import ValidationError

from qa_engine.errors import ConfigError


def read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def parse_override_value(text: str) -> Any:
    """`--set` values are TOML literals (5, 0.5, true, "x", [1, 2]); anything else is a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply `a.b.0.c=value` to the raw (unvalidated) config; list items are addressed by index."""
    key_path, sep, value_text = assignment.partition("=")
    if not sep or not key_path.strip():
        raise ConfigError(f"--set expects key=value, got '{assignment}'")
    keys = key_path.strip().split(".")
    node: Any = raw
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[: depth + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"--set {key_path}: '{where}' is not an index of a list of {len(node)}")
            if last:
                node[int(key)] = parse_override_value(value_text)
            else:
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = parse_override_value(value_text)
            else:
                node = node.setdefault(key, {})
        else:
            raise ConfigError(f"--set {key_path}: '{where}' is inside a value, not a table")


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [
        f"{source}: invalid config ({error.error_count()} problem{'s' if error.error_count() > 1 else ''})"
    ]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (not a field of this section)"
        lines.append(f"  - {location}: {message}")
    return "\n".join(lines)


def load_config[ModelT: BaseModel](
    model: type[ModelT], path: Path, overrides: list[str] | None = None
) -> ModelT:
    raw = read_toml(path)
    for assignment in overrides or []:
        apply_override(raw, assignment)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None


def dump_toml(config: BaseModel) -> str:
    return tomli_w.dumps(config.model_dump(mode="json", exclude_none=True))
