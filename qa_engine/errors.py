"""Exceptions grouped by what the operator must do next.

- ConfigError / DataError: bad input; fix it (CLI exit code 2, one readable message, no traceback).
- PluginError: user plug-in code failed; the message names the plug-in.
- VenueError: a venue kept failing (rate limits, outages) past the retry budget; retry later.
Anything else is a bug or runtime failure (exit code 1).
"""

from __future__ import annotations


class QAError(Exception):
    """Base of the errors the CLI turns into one readable message."""

    exit_code: int = 1


class ConfigError(QAError):
    """The run config or a command-line option is invalid: fix the config."""

    exit_code = 2


class DataError(QAError):
    """Input data is missing or malformed: the message names the file, row or time range."""

    exit_code = 2


class PluginError(QAError):
    """A strategy or actor plug-in failed to load or raised inside a callback."""

    exit_code = 1


class VenueError(QAError):
    """A venue kept failing (rate limits, server errors, timeouts) past the retry budget: run again later;
    downloads resume where they stopped."""

    exit_code = 1
