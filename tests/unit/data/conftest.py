from __future__ import annotations

import pytest
import structlog


@pytest.fixture(autouse=True)
def _fresh_structlog():
    """A CLI test may have configured structlog onto a captured stderr that pytest has since closed."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
