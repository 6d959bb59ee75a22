"""Structured JSON event logs of a live run (structlog), with secrets redacted.

`event_logger(path, secrets, run_id=...)` returns a structlog logger that appends one JSON object per line
to `path` (flushed per line, so a crash loses nothing written), with the bound context (run id, strategy,
instrument...) and every occurrence of a secret value replaced by "***", wherever it appears: in the event,
a value, a nested dict or list, an exception text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog
import structlog.tracebacks

MIN_SECRET_CHARS = 6  # shorter values (a chat id "42", a flag) would redact ordinary numbers and words


def secret_values(variables: Iterable[str]) -> tuple[str, ...]:
    """The values of these environment variables worth redacting (set and at least MIN_SECRET_CHARS)."""
    values = (os.environ.get(name, "") for name in variables)
    return tuple(sorted({v for v in values if len(v) >= MIN_SECRET_CHARS}, key=len, reverse=True))


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, secrets) for v in value)
    return value


def redactor(secrets: Iterable[str]):
    """A structlog processor replacing every secret value by *** (after exceptions are rendered)."""
    ordered = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def redact(logger, method_name, event_dict):
        return _scrub(event_dict, ordered) if ordered else event_dict

    return redact


def _leading_keys(logger, method_name, event_dict):
    """timestamp, level and event first: a line reads left to right."""
    head = {key: event_dict.pop(key) for key in ("timestamp", "level", "event") if key in event_dict}
    return {**head, **event_dict}


def event_logger(path: Path, secrets: Iterable[str] = (), **context: Any):
    """JSON lines appended to `path`; `context` (e.g. run_id) bound to every line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = path.open("a", encoding="utf-8", buffering=1)  # line-buffered: one write per event
    logger = structlog.wrap_logger(
        structlog.WriteLogger(stream),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # tracebacks as dicts, without frame locals (a local can hold anything, a key included)
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            redactor(secrets),
            _leading_keys,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
    )
    return logger.bind(**context), stream
