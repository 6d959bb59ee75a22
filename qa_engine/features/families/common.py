"""What every family module shares: the kind record, spec construction, warm-up arithmetic."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from qa_engine.errors import ConfigError
from qa_engine.features.contexts import CLOSE
from qa_engine.features.contexts import HIGH
from qa_engine.features.contexts import LOW
from qa_engine.features.contexts import OPEN
from qa_engine.features.contexts import VOLUME
from qa_engine.features.contexts import BatchContext
from qa_engine.features.contexts import StreamContext
from qa_engine.features.spec import Fallback
from qa_engine.features.spec import FeatureSpec
from qa_engine.features.spec import Input
from qa_engine.features.spec import ParamValue
from qa_engine.features.spec import params

BatchFunction = Callable[[BatchContext, FeatureSpec], "pl.Expr | np.ndarray"]
StreamFunction = Callable[[StreamContext, FeatureSpec], str]

# Relative size below which an EMA's dependence on its starting value counts as gone: the warm-up
# of a recursive feature is the number of bars for (1 - alpha)^k to fall under it.
SETTLE_TOLERANCE = 1e-9

SOURCE_VARIABLES = {"open": OPEN, "high": HIGH, "low": LOW, "close": CLOSE, "volume": VOLUME}


@dataclass(frozen=True)
class FeatureKind:
    """A registered computation: its batch twin and its streaming twin."""

    name: str
    batch: BatchFunction
    stream: StreamFunction
    description: str
    engine: Literal["polars", "numpy"] = "polars"  # what its batch twin returns: an expression or an array


def settle_bars(alpha: float) -> int:
    """Bars until an EMA with smoothing `alpha` forgets its seed: (1 - alpha)^k < SETTLE_TOLERANCE.

    TA-Lib calls this the "unstable period" but leaves it to the caller; here it is the warm-up.
    """
    if not 0.0 < alpha <= 1.0:
        raise ConfigError(f"EMA smoothing must be in (0, 1], got {alpha}")
    if alpha == 1.0:
        return 1
    return math.ceil(math.log(SETTLE_TOLERANCE) / math.log(1.0 - alpha)) + 1


def ema_alpha(period_bars: int) -> float:
    """The usual EMA smoothing 2 / (n + 1)."""
    return 2.0 / (period_bars + 1.0)


def wilder_alpha(period_bars: int) -> float:
    """Wilder's smoothing 1 / n (RSI, ATR)."""
    return 1.0 / period_bars


def make_spec(
    name: str,
    kind: str,
    warmup_bars: int,
    description: str,
    inputs: tuple[Input, ...] = ("ohlcv",),
    fallback: Fallback | None = None,
    version: int = 1,
    **values: ParamValue,
) -> FeatureSpec:
    return FeatureSpec(
        name=name,
        kind=kind,
        params=params(**values),
        inputs=inputs,
        warmup_bars=warmup_bars,
        version=version,
        fallback=fallback,
        description=description,
    )


def positive_int(spec_name: str, key: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"feature '{spec_name}': {key} must be a positive integer, got {value!r}")
    return value


def choice(spec_name: str, key: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"feature '{spec_name}': {key} must be one of {allowed}, got {value!r}")
    return str(value)
