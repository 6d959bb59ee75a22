"""BUY / HOLD / SELL labels from the forward return over N bars, and class weights (numpy only).

The label of bar t compares the simple return from bar t's close to bar t+N's close with a threshold:

    r[t] = (close[t+N] / close[t] - 1) * 1e4              (basis points)
    BUY  if r[t] >  threshold_bps
    SELL if r[t] < -threshold_bps
    HOLD otherwise

It reads close[t] and close[t+N] and nothing else: no bar before t, and of the bars after t only the
N-th. The last N bars of a series (and, given timestamps, every bar whose N-th successor is not exactly
N intervals later because of a gap) have no label: they get `NO_LABEL`, never a filled-in class.

Class indices are ordered by direction so that `position = class - 1` (SELL -1, HOLD 0, BUY +1).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from qa_engine.errors import DataError

NO_LABEL = -1
CLASS_NAMES: tuple[str, ...] = ("SELL", "HOLD", "BUY")
N_CLASSES = len(CLASS_NAMES)


class TradeClass(IntEnum):
    SELL = 0
    HOLD = 1
    BUY = 2


def forward_return_bps(
    close: np.ndarray,
    horizon_bars: int,
    ts: np.ndarray | None = None,
    step_ns: int | None = None,
) -> np.ndarray:
    """(N,) (close[t+H] / close[t] - 1) * 1e4; NaN for the last H bars and where bar t+H is not exactly
    H steps after bar t (a gap), when `ts` (bar close times, ns) and `step_ns` are given."""
    close = np.asarray(close, dtype=np.float64)
    if close.ndim != 1:
        raise DataError(f"close must be one-dimensional, got shape {close.shape}")
    if horizon_bars < 1:
        raise DataError(f"horizon_bars must be >= 1, got {horizon_bars}")
    if np.any(~np.isfinite(close)) or np.any(close <= 0):
        raise DataError("close prices must be finite and > 0")
    if (ts is None) != (step_ns is None):
        raise DataError("give both ts and step_ns, or neither")
    count = len(close)
    result = np.full(count, np.nan)
    if count <= horizon_bars:
        return result
    result[:-horizon_bars] = (close[horizon_bars:] / close[:-horizon_bars] - 1.0) * 1e4
    if ts is not None:
        ts = np.asarray(ts, dtype=np.int64)
        if ts.shape != close.shape:
            raise DataError(f"ts has shape {ts.shape}, close {close.shape}")
        contiguous = (ts[horizon_bars:] - ts[:-horizon_bars]) == horizon_bars * int(step_ns)  # type: ignore[arg-type]
        result[:-horizon_bars][~contiguous] = np.nan
    return result


def classes_from_returns(returns_bps: np.ndarray, threshold_bps: float) -> np.ndarray:
    """(N,) int8 classes from forward returns in bps; NaN -> NO_LABEL."""
    if not threshold_bps >= 0:
        raise DataError(f"threshold_bps must be >= 0, got {threshold_bps}")
    returns_bps = np.asarray(returns_bps, dtype=np.float64)
    labels = np.full(returns_bps.shape, NO_LABEL, dtype=np.int8)
    defined = np.isfinite(returns_bps)
    labels[defined] = TradeClass.HOLD
    labels[defined & (returns_bps > threshold_bps)] = TradeClass.BUY
    labels[defined & (returns_bps < -threshold_bps)] = TradeClass.SELL
    return labels


def triple_class_labels(
    close: np.ndarray,
    horizon_bars: int,
    threshold_bps: float,
    ts: np.ndarray | None = None,
    step_ns: int | None = None,
) -> np.ndarray:
    """(N,) int8 SELL/HOLD/BUY (0/1/2) labels from the N-bar forward return; NO_LABEL (-1) where there
    is no bar t+N (the end of the data, or a gap when `ts` and `step_ns` are given)."""
    return classes_from_returns(forward_return_bps(close, horizon_bars, ts, step_ns), threshold_bps)


def class_counts(labels: np.ndarray) -> np.ndarray:
    """(3,) counts of SELL, HOLD, BUY among the defined labels."""
    labels = np.asarray(labels)
    return np.bincount(labels[labels != NO_LABEL].astype(np.int64), minlength=N_CLASSES)[:N_CLASSES]


def class_balance(labels: np.ndarray) -> dict[str, float]:
    """Share of each class among the defined labels."""
    counts = class_counts(labels)
    total = max(int(counts.sum()), 1)
    return {name: float(count) / total for name, count in zip(CLASS_NAMES, counts, strict=True)}


def class_weights(train_labels: np.ndarray) -> np.ndarray:
    """(3,) float64 'balanced' weights from the TRAINING labels only: n / (K * count_k), mean over the
    training samples = 1. A class absent from training is an error (the threshold is degenerate)."""
    counts = class_counts(train_labels)
    if np.any(counts == 0):
        raise DataError(
            f"a class is absent from the training labels (SELL/HOLD/BUY counts {counts.tolist()}); "
            "choose another threshold_bps or horizon_bars"
        )
    return counts.sum() / (N_CLASSES * counts.astype(np.float64))


def threshold_for_hold_share(train_returns_bps: np.ndarray, hold_share: float) -> float:
    """The threshold (bps) that puts `hold_share` of the TRAINING forward returns in HOLD: the
    hold_share-quantile of |r|. A helper to choose and document a threshold, never fitted on test data."""
    if not 0.0 < hold_share < 1.0:
        raise DataError(f"hold_share must lie in (0, 1), got {hold_share}")
    values = np.asarray(train_returns_bps, dtype=np.float64)
    values = np.abs(values[np.isfinite(values)])
    if values.size == 0:
        raise DataError("no defined training returns to choose a threshold from")
    return float(np.quantile(values, hold_share))
