"""Out-of-sample evaluation of SELL/HOLD/BUY classifiers: classification metrics and an after-fee
vectorised backtest of the signal (numpy; matplotlib for the plot). Torch-free.

The vectorised backtest is a research tool. The reference for any trading claim is the NautilusTrader
backtest (`qa backtest`), which models orders, fills, funding and liquidation; this one does not.

Backtest convention: the position decided at bar t's close (from features of bars <= t) is held from t
to t+1 and earns r[t+1] = close[t+1] / close[t] - 1; a change of position costs `fee_rate` per unit of
turnover |pos[t] - pos[t-1]| (a flip from +1 to -1 is 2 units). Positions are in units of equity
(1x, no leverage); equity compounds bar by bar; the position starts flat and is closed (with its fee)
after the last bar of every test range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from qa_engine.contract.labels import CLASS_NAMES
from qa_engine.contract.labels import N_CLASSES
from qa_engine.contract.labels import TradeClass

LEAKAGE_SUSPICION_ACCURACY = 0.60  # 5m direction above this out of sample: hunt for leakage first
BARS_PER_YEAR_5M = 365 * 288
PROBABILITY_FLOOR = 1e-7


# ---- classification ---------------------------------------------------------------------------


def confusion_matrix(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(3, 3) counts: rows = true class, columns = predicted class (SELL, HOLD, BUY)."""
    matrix = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def _binomial_ci95(hits: int, count: int) -> list[float]:
    if count == 0:
        return [float("nan"), float("nan")]
    share = hits / count
    half = 1.96 * math.sqrt(share * (1.0 - share) / count)
    return [share - half, share + half]


def directional_accuracy(predicted: np.ndarray, forward_bps: np.ndarray, stride: int = 1) -> dict[str, Any]:
    """Among BUY/SELL predictions, the share whose realised N-bar return has the predicted sign.
    Zero realised returns count as misses. stride > 1 keeps every stride-th sample (non-overlapping)."""
    predicted = np.asarray(predicted)[::stride]
    forward = np.asarray(forward_bps)[::stride]
    acted = predicted != int(TradeClass.HOLD)
    direction = np.where(predicted == int(TradeClass.BUY), 1.0, -1.0)
    hits = int(np.sum(acted & (np.sign(forward) == direction)))
    count = int(acted.sum())
    return {
        "stride": stride,
        "count": count,
        "hits": hits,
        "accuracy": hits / count if count else float("nan"),
        "ci95": _binomial_ci95(hits, count),
    }


def classification_metrics(
    probabilities: np.ndarray, true: np.ndarray, forward_bps: np.ndarray, horizon_bars: int
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, log loss, confusion matrix, per-class precision/recall,
    predicted class shares and directional accuracy on BUY/SELL predictions (all samples, and
    non-overlapping: every horizon_bars-th sample)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    true = np.asarray(true, dtype=np.int64)
    predicted = np.argmax(probabilities, axis=1)
    matrix = confusion_matrix(true, predicted)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    diagonal = np.diag(matrix).astype(np.float64)
    recall = np.divide(diagonal, support, out=np.full(N_CLASSES, np.nan), where=support > 0)
    precision = np.divide(diagonal, predicted_count, out=np.zeros(N_CLASSES), where=predicted_count > 0)
    recall_or_zero = np.nan_to_num(recall)
    f1 = np.divide(
        2 * precision * recall_or_zero,
        precision + recall_or_zero,
        out=np.zeros(N_CLASSES),
        where=(precision + recall_or_zero) > 0,
    )
    present = support > 0
    chosen = np.clip(probabilities[np.arange(len(true)), true], PROBABILITY_FLOOR, 1.0)
    count = len(true)
    return {
        "samples": int(count),
        "accuracy": float(diagonal.sum() / count) if count else float("nan"),
        "balanced_accuracy": float(np.mean(recall[present])) if present.any() else float("nan"),
        "macro_f1": float(np.mean(f1[present])) if present.any() else float("nan"),
        "log_loss": float(-np.mean(np.log(chosen))) if count else float("nan"),
        "confusion": matrix.tolist(),
        "precision": dict(zip(CLASS_NAMES, precision.tolist(), strict=True)),
        "recall": dict(zip(CLASS_NAMES, np.nan_to_num(recall, nan=float("nan")).tolist(), strict=True)),
        "predicted_share": dict(zip(CLASS_NAMES, (predicted_count / max(count, 1)).tolist(), strict=True)),
        "true_share": dict(zip(CLASS_NAMES, (support / max(count, 1)).tolist(), strict=True)),
        "directional": directional_accuracy(predicted, forward_bps),
        "directional_non_overlapping": directional_accuracy(predicted, forward_bps, stride=horizon_bars),
    }


# ---- the vectorised backtest --------------------------------------------------------------------


@dataclass(frozen=True)
class BacktestCurve:
    """Per bar of one test range: when the return was realised, the position held, net and gross returns."""

    ts: np.ndarray  # (N,) int64 ns, close time of bar t+1 (the return's end)
    positions: np.ndarray  # (N,) position held from t to t+1
    net_returns: np.ndarray  # (N,) after fees, the last bar includes closing the position
    gross_returns: np.ndarray  # (N,) before fees
    fees: np.ndarray  # (N,) fee cost as a fraction of equity


def vectorised_backtest(
    positions: np.ndarray, bar_returns: np.ndarray, ts_next: np.ndarray, fee_rate: float
) -> BacktestCurve:
    """Net returns of `positions` (decided at each bar's close) over the next bar's simple return
    `bar_returns`, with `fee_rate` per unit of turnover; flat before the first bar, closed after the last."""
    positions = np.asarray(positions, dtype=np.float64)
    bar_returns = np.asarray(bar_returns, dtype=np.float64)
    if positions.shape != bar_returns.shape:
        raise ValueError(f"positions {positions.shape} and bar_returns {bar_returns.shape} differ")
    previous = np.concatenate([[0.0], positions[:-1]])
    turnover = np.abs(positions - previous)
    if len(positions):
        turnover[-1] += abs(positions[-1])  # close the position after the last bar
    fees = fee_rate * turnover
    gross = positions * bar_returns
    return BacktestCurve(np.asarray(ts_next, dtype=np.int64), positions, gross - fees, gross, fees)


def concatenate_curves(curves: list[BacktestCurve]) -> BacktestCurve:
    return BacktestCurve(
        np.concatenate([c.ts for c in curves]),
        np.concatenate([c.positions for c in curves]),
        np.concatenate([c.net_returns for c in curves]),
        np.concatenate([c.gross_returns for c in curves]),
        np.concatenate([c.fees for c in curves]),
    )


def backtest_metrics(curve: BacktestCurve, bars_per_year: int = BARS_PER_YEAR_5M) -> dict[str, Any]:
    """Total (net and gross) return, fees, max drawdown, annualised Sharpe (bar returns, 365-day year),
    position changes, turnover, exposure."""
    net = curve.net_returns
    equity = np.cumprod(1.0 + net)
    gross_equity = np.cumprod(1.0 + curve.gross_returns)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    drawdown = equity / peak - 1.0
    changes = np.abs(np.diff(np.concatenate([[0.0], curve.positions])))
    std = float(np.std(net))
    gross_std = float(np.std(curve.gross_returns))
    return {
        "bars": len(net),
        "total_return_pct": float((equity[-1] - 1.0) * 100) if len(net) else 0.0,
        "gross_return_pct": float((gross_equity[-1] - 1.0) * 100) if len(net) else 0.0,
        "fees_pct_of_equity": float(np.sum(curve.fees) * 100),
        "max_drawdown_pct": float(drawdown.min() * 100) if len(net) else 0.0,
        "sharpe": float(np.mean(net) / std * math.sqrt(bars_per_year)) if std > 0 else 0.0,
        "gross_sharpe": (
            float(np.mean(curve.gross_returns) / gross_std * math.sqrt(bars_per_year))
            if gross_std > 0
            else 0.0
        ),
        "years": len(net) / bars_per_year,
        "position_changes": int(np.count_nonzero(changes)),
        "turnover": float(changes.sum() + (abs(curve.positions[-1]) if len(net) else 0.0)),
        "exposure": float(np.mean(curve.positions != 0)) if len(net) else 0.0,
        "long_share": float(np.mean(curve.positions > 0)) if len(net) else 0.0,
        "short_share": float(np.mean(curve.positions < 0)) if len(net) else 0.0,
    }


def equity_frame(curve: BacktestCurve, start_ts_ns: int):
    """polars frame (ts Datetime[ns, UTC], equity, position_notional >= 0) for the reporting plots: a first
    row (start_ts_ns: the first decision bar's close, equity 1.0, flat), then one row per realised bar."""
    import polars as pl

    equity = np.cumprod(1.0 + curve.net_returns)
    before = np.concatenate([[1.0], equity[:-1]])  # equity when each position was taken
    return pl.DataFrame(
        {
            "ts": np.concatenate([[start_ts_ns], curve.ts]).astype(np.int64),
            "equity": np.concatenate([[1.0], equity]),
            "position_notional": np.concatenate([[0.0], np.abs(curve.positions) * before]),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
