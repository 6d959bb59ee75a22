"""structlog set-up, configured once by the CLI: console on a TTY, JSON with --json-logs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

import structlog


def configure_logging(json_logs: bool = False, level: str = "INFO", redact: Iterable[str] = ()) -> None:
    """`redact`: secret values replaced by *** in every line (qa_engine.ops.logs.redactor)."""
    from qa_engine.ops.logs import redactor

    processors: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json_logs:
        processors += [
            structlog.processors.dict_tracebacks,
            redactor(redact),
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors += [redactor(redact), structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # Look sys.stderr up per logger, not once: test runners and daemons swap the stream.
        logger_factory=lambda *args: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
