"""Torch-free pieces of the baselines: the ensemble of class probabilities with its agreement flag, the
naive forecasters, and the mapping from classes to positions (numpy only; inference imports this).

Class order everywhere: SELL, HOLD, BUY (indices 0, 1, 2; `qa_engine.models.labels`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.models.labels import N_CLASSES
from qa_engine.models.labels import TradeClass
from qa_engine.models.labels import class_counts
from qa_engine.models.labels import classes_from_returns

DEFAULT_ENSEMBLE_WEIGHTS: dict[str, float] = {"xgboost": 0.6, "lstm": 0.4}
PositionPolicy = Literal["flat_on_hold", "hold_previous"]


# ---- the ensemble -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnsembleOutput:
    """Blended probabilities (B, 3), their argmax (B,), and whether every member's argmax agreed (B,)."""

    probabilities: np.ndarray
    classes: np.ndarray
    agreement: np.ndarray


def _check_probabilities(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != N_CLASSES:
        raise DataError(f"{name}: expected probabilities of shape (batch, {N_CLASSES}), got {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise DataError(f"{name}: probabilities must be finite and >= 0")
    return values


def ensemble_probabilities(
    members: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None
) -> EnsembleOutput:
    """sum_m w_m p_m with weights normalised to 1 (default 0.6 xgboost + 0.4 lstm); `agreement` is True
    where every member's argmax is the same class. Members and weights must name the same models."""
    weights = dict(DEFAULT_ENSEMBLE_WEIGHTS if weights is None else weights)
    if set(weights) != set(members):
        raise ConfigError(f"ensemble weights name {sorted(weights)} but the members are {sorted(members)}")
    if any(not w > 0 for w in weights.values()):
        raise ConfigError(f"ensemble weights must be > 0, got {weights}")
    total = sum(weights.values())
    arrays = {name: _check_probabilities(name, values) for name, values in members.items()}
    shapes = {values.shape for values in arrays.values()}
    if len(shapes) != 1:
        raise DataError(f"ensemble members have different shapes {sorted(shapes)}")
    blended = sum(arrays[name] * (weights[name] / total) for name in sorted(arrays))
    argmaxes = np.stack([np.argmax(arrays[name], axis=1) for name in sorted(arrays)])  # (M, B)
    agreement = np.all(argmaxes == argmaxes[0], axis=0)
    return EnsembleOutput(np.asarray(blended), np.argmax(blended, axis=1).astype(np.int64), agreement)


def agreement_classes(output: EnsembleOutput) -> np.ndarray:
    """The ensemble's class where the members agree, HOLD where they do not (the 'conservative' mode)."""
    return np.where(output.agreement, output.classes, int(TradeClass.HOLD)).astype(np.int64)


# ---- naive forecasters --------------------------------------------------------------------------


def one_hot(classes: np.ndarray) -> np.ndarray:
    classes = np.asarray(classes, dtype=np.int64)
    result = np.zeros((len(classes), N_CLASSES))
    result[np.arange(len(classes)), classes] = 1.0
    return result


def zero_return_forecast(count: int, threshold_bps: float) -> np.ndarray:
    """(count, 3): the forecast 'the price will not move' (r = 0) put through the label rule: HOLD."""
    return one_hot(classes_from_returns(np.zeros(count), threshold_bps))


def class_prior_forecast(train_labels: np.ndarray, count: int) -> np.ndarray:
    """(count, 3): the training class frequencies for every sample. This is also the 'historical
    quantiles' forecaster: the empirical distribution of training forward returns, put through the
    threshold, gives exactly these probabilities. Its argmax is the training majority class."""
    counts = class_counts(train_labels).astype(np.float64)
    if counts.sum() == 0:
        raise DataError("no defined training labels for the class prior")
    return np.broadcast_to(counts / counts.sum(), (count, N_CLASSES)).copy()


def persistence_forecast(past_returns_bps: np.ndarray, threshold_bps: float) -> np.ndarray:
    """(N, 3): the last N-bar return (close[t] / close[t-N] - 1) continues: its class, one-hot.
    Undefined past returns (the first bars of a segment) forecast HOLD."""
    past = np.nan_to_num(np.asarray(past_returns_bps, dtype=np.float64), nan=0.0)
    return one_hot(classes_from_returns(past, threshold_bps))


def stratified_random_forecast(train_labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """(count, 3): one-hot classes drawn at random with the training class frequencies (chance level)."""
    prior = class_prior_forecast(train_labels, 1)[0]
    draws = np.random.default_rng(seed).choice(N_CLASSES, size=count, p=prior)
    return one_hot(draws)


# ---- positions ------------------------------------------------------------------------------------


def positions_from_classes(classes: np.ndarray, policy: PositionPolicy = "flat_on_hold") -> np.ndarray:
    """(N,) target positions in units of equity: BUY +1, SELL -1; on HOLD either flat (0) or the
    previous position ('hold_previous'; flat before the first BUY/SELL)."""
    classes = np.asarray(classes, dtype=np.int64)
    direct = (classes - int(TradeClass.HOLD)).astype(np.float64)  # SELL -1, HOLD 0, BUY +1
    if policy == "flat_on_hold":
        return direct
    if policy != "hold_previous":
        raise ConfigError(f"unknown position policy '{policy}'; valid: flat_on_hold, hold_previous")
    last_signal = np.maximum.accumulate(np.where(direct != 0.0, np.arange(len(direct)), -1))  # (N,)
    return np.where(last_signal >= 0, direct[np.maximum(last_signal, 0)], 0.0)
