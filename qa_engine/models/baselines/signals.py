"""Torch-free pieces of the baselines' evaluation: the naive forecasters and the mapping from classes to
positions (numpy only). The ensemble of class probabilities with its agreement flag, which trading runs
too, is part of the contract: `qa_engine.contract.baseline`.

Class order everywhere: SELL, HOLD, BUY (indices 0, 1, 2; `qa_engine.contract.labels`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from qa_engine.contract.labels import N_CLASSES
from qa_engine.contract.labels import TradeClass
from qa_engine.contract.labels import class_counts
from qa_engine.contract.labels import classes_from_returns
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError

PositionPolicy = Literal["flat_on_hold", "hold_previous"]


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
