"""Performance statistics of one backtest: pure functions over the tables in ``schema``.

Conventions (crypto trades 24/7, so a year is 365 days, not 252 sessions):

- Returns are simple returns of account equity; the risk-free rate is 0.
- The starting balance is the equity at the run's start, ``start_ts`` (default: the first row's
  ``ts``, i.e. the runner emitted a start row or the first bar's move is folded into the first day).
  The duration is ``start_ts`` to the last ``ts``.
- Daily series ("last value per UTC day"): the starting balance, then the equity at each UTC midnight
  after the start (the last mark at or before 00:00, so a bar closing at exactly 00:00 closes the
  previous day, and a day without marks carries the previous one forward: equity does not move
  without a mark), then the final mark if it is not itself at midnight. A run from D 00:00 to
  D+3 00:00 thus yields 3 daily returns; partial first/last days give (shorter) returns of their own.
- Sharpe = mean(r) / std(r, ddof=1) * sqrt(periods_per_year) over the daily returns r.
  Sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(periods_per_year) (downside deviation, target 0).
  Both are None with fewer than 2 daily returns, or when the denominator is 0 (a flat curve for
  Sharpe; no down day for Sortino), never NaN or infinite.
- If equity reaches <= 0 (ruin), the daily return series stops at the first such day: later returns
  are undefined. If the final equity is <= 0, ``annualised_return_pct`` is -100.
- Drawdown is measured on the bar-level curve against the running peak, which starts at the
  starting balance: drawdown_pct = (peak - equity) / peak * 100. ``max_drawdown`` and
  ``max_drawdown_pct`` are each the maximum over bars (they can come from different troughs).
  ``max_drawdown_pct`` exceeds 100 only if equity goes negative.
  The drawdown duration is the longest time from a peak's bar (``start_ts`` if the peak is the
  starting balance) to the first bar back at or above it, or to the last bar if never recovered.
- ``annualised_return_pct`` is the CAGR over the run's duration (``start_ts`` to the last ``ts``):
  ((final / start) ** (periods_per_year / duration_days) - 1) * 100. It is None for runs shorter than
  ``MIN_ANNUALISATION_DAYS`` (1 day), where the extrapolation is meaningless, and when it would
  overflow a float. Below ~90 days it is still a loud extrapolation: read it with care.
- Calmar = annualised_return_pct / max_drawdown_pct over the whole run (not a trailing 36 months);
  None when either is missing or the max drawdown is 0.
- Round trips: a win has net_pnl > 0, a loss net_pnl < 0, a breakeven net_pnl == 0 (counted apart,
  but in the win-rate denominator). ``profit_factor`` = sum of wins / |sum of losses| on net pnl;
  None when there is no losing round trip (it would be infinite, or 0/0): JSON has no infinity, and
  ``losses == 0`` in the same report says why. Averages, extremes and expectancy are None when
  their set is empty.
- ``rating`` (``PerformanceRating``), first rule that matches:
  total return < 0 -> LOSING; Sharpe None -> UNRATED;
  Sharpe >= 2.0 and max drawdown <= 10 % -> EXCELLENT; Sharpe >= 1.0 and max drawdown <= 20 % -> GOOD;
  Sharpe >= 0.5 and max drawdown <= 30 % -> FAIR; otherwise POOR.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from enum import StrEnum
from typing import Any
from typing import Final

import numpy as np
import polars as pl

from qa_engine.errors import DataError
from qa_engine.reporting.schema import validate_equity_curve
from qa_engine.reporting.schema import validate_round_trips

NS_PER_DAY: Final = 86_400 * 1_000_000_000
DAYS_PER_YEAR: Final = 365  # crypto trades every day: the annualisation of every ratio here
MIN_ANNUALISATION_DAYS: Final = 1.0
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Daily-return standard (or downside) deviations below this are treated as zero: a ratio over them
# would be float noise, not a signal.
MIN_DEVIATION: Final = 1e-12


class PerformanceRating(StrEnum):
    """Coarse verdict from total return, Sharpe and max drawdown (rule in the module docstring)."""

    EXCELLENT = "excellent"
    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"
    LOSING = "losing"
    UNRATED = "unrated"


# (min Sharpe, max drawdown pct) bands, best first.
RATING_BANDS: Final[tuple[tuple[PerformanceRating, float, float], ...]] = (
    (PerformanceRating.EXCELLENT, 2.0, 10.0),
    (PerformanceRating.GOOD, 1.0, 20.0),
    (PerformanceRating.FAIR, 0.5, 30.0),
)


@dataclass(frozen=True, slots=True)
class PerformanceMetrics:
    """Summary of one backtest. Money in quote currency, ``_pct`` in percent (50.0 = half).

    Every float is finite; an undefined figure is None (``__post_init__`` enforces it), so
    ``to_dict()`` is always valid JSON.
    """

    start_ts: datetime
    end_ts: datetime
    duration_days: float
    starting_balance: float
    final_equity: float
    total_return: float
    total_return_pct: float
    annualised_return_pct: float | None
    annualised_volatility_pct: float | None
    max_drawdown: float
    max_drawdown_pct: float
    max_drawdown_duration_days: float
    sharpe_ratio: float | None
    sortino_ratio: float | None
    calmar_ratio: float | None
    daily_return_count: int
    total_trades: int
    wins: int
    losses: int
    breakevens: int
    win_rate_pct: float | None
    profit_factor: float | None
    sum_of_wins: float
    sum_of_losses: float
    trades_net_pnl: float
    average_win: float | None
    average_loss: float | None
    largest_win: float | None
    largest_loss: float | None
    expectancy: float | None
    exposure_pct: float
    fees_paid: float
    rating: PerformanceRating

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"PerformanceMetrics.{field.name} is {value}: an undefined figure is None")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: datetimes as ISO 8601 UTC strings, the rating as its string value."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, PerformanceRating):
                value = value.value
            out[field.name] = value
        return out


def compute_performance(
    equity: pl.DataFrame,
    trades: pl.DataFrame,
    starting_balance: float,
    fees_paid: float,
    periods_per_year: int = DAYS_PER_YEAR,
    *,
    start_ts: datetime | None = None,
) -> PerformanceMetrics:
    """Compute ``PerformanceMetrics`` from an equity curve and its round trips.

    ``equity`` follows ``schema.EQUITY_CURVE_SCHEMA`` and ``trades`` ``schema.ROUND_TRIP_SCHEMA``
    (``schema.empty_round_trips()`` for none). ``fees_paid`` is all fees of the run, including those
    of a position still open at the end, so it can exceed the sum of ``trades['fees']``.
    ``periods_per_year`` is days per year (returns are daily): 365 for crypto.
    ``start_ts`` (tz-aware, at or before the first ``ts``) is when the starting balance applies;
    pass the backtest's start when the curve holds bar closes only, so that the duration and the
    first day are exact. Default: the first ``ts``.
    Raises ``DataError`` on malformed input.
    """
    equity = validate_equity_curve(equity)
    trades = validate_round_trips(trades)
    if not (math.isfinite(starting_balance) and starting_balance > 0):
        raise DataError(f"starting_balance must be a positive finite number, got {starting_balance}")
    if not math.isfinite(fees_paid):
        raise DataError(f"fees_paid must be finite, got {fees_paid}")
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")

    ts_ns = equity["ts"].cast(pl.Int64).to_numpy()  # ns since the UTC epoch
    start_ns = int(ts_ns[0]) if start_ts is None else _start_ns(start_ts, int(ts_ns[0]))
    values = equity["equity"].to_numpy()
    final_equity = float(values[-1])
    duration_days = float(ts_ns[-1] - start_ns) / NS_PER_DAY
    total_return = final_equity - starting_balance
    total_return_pct = total_return / starting_balance * 100.0

    max_drawdown, max_drawdown_pct, max_drawdown_duration_days = _drawdown_summary(
        ts_ns, values, starting_balance, start_ns
    )
    daily_returns = daily_returns_from_curve(ts_ns, values, starting_balance, start_ns)
    sharpe, sortino, volatility_pct = _risk_ratios(daily_returns, periods_per_year)
    annualised_pct = _annualised_return_pct(starting_balance, final_equity, duration_days, periods_per_year)
    calmar = None
    if annualised_pct is not None and max_drawdown_pct > 0:
        calmar = annualised_pct / max_drawdown_pct
    exposure_pct = float(np.mean(equity["position_notional"].to_numpy() > 0)) * 100.0
    trade_stats = _round_trip_summary(trades["net_pnl"].to_numpy())

    return PerformanceMetrics(
        start_ts=start_ts.astimezone(UTC) if start_ts is not None else equity["ts"][0],
        end_ts=equity["ts"][-1],
        duration_days=duration_days,
        starting_balance=float(starting_balance),
        final_equity=final_equity,
        total_return=total_return,
        total_return_pct=total_return_pct,
        annualised_return_pct=annualised_pct,
        annualised_volatility_pct=volatility_pct,
        max_drawdown=max_drawdown,
        max_drawdown_pct=max_drawdown_pct,
        max_drawdown_duration_days=max_drawdown_duration_days,
        sharpe_ratio=sharpe,
        sortino_ratio=sortino,
        calmar_ratio=calmar,
        daily_return_count=len(daily_returns),
        exposure_pct=exposure_pct,
        fees_paid=float(fees_paid),
        rating=rate_performance(total_return, sharpe, max_drawdown_pct),
        **trade_stats,
    )


def drawdown_pct_series(values: np.ndarray, starting_balance: float) -> np.ndarray:
    """Drawdown in percent of the running peak (which starts at ``starting_balance``), per bar, >= 0."""
    peak = np.maximum.accumulate(np.maximum(values, starting_balance))
    return (peak - values) / peak * 100.0


def daily_returns_from_curve(
    ts_ns: np.ndarray, values: np.ndarray, starting_balance: float, start_ns: int | None = None
) -> np.ndarray:
    """Daily simple returns (module docstring): start, equity at each UTC midnight, final mark.

    ``ts_ns`` are the marks' times in ns since the UTC epoch; ``start_ns`` (default ``ts_ns[0]``)
    is when ``starting_balance`` applies. The series stops at the first point <= 0 (ruin):
    returns after it are undefined.
    """
    start_ns = int(ts_ns[0]) if start_ns is None else start_ns
    end_ns = int(ts_ns[-1])
    first_midnight = (start_ns // NS_PER_DAY + 1) * NS_PER_DAY  # first 00:00 UTC strictly after the start
    midnights = np.arange(first_midnight, end_ns, NS_PER_DAY, dtype=np.int64)  # strictly before the end
    last_mark = np.searchsorted(ts_ns, midnights, side="right") - 1  # -1: before the first mark
    at_midnight = np.where(last_mark >= 0, values[np.maximum(last_mark, 0)], starting_balance)
    final = values[-1:] if end_ns > start_ns else values[:0]
    points = np.concatenate(([starting_balance], at_midnight, final))
    ruined = np.flatnonzero(points[1:] <= 0)
    if ruined.size:
        points = points[: ruined[0] + 2]
    return points[1:] / points[:-1] - 1.0


def sharpe_ratio(returns: np.ndarray, periods_per_year: float) -> float | None:
    """mean(r) / std(r, ddof=1) * sqrt(periods_per_year), risk-free rate 0; None with fewer than 2
    returns or a standard deviation below ``MIN_DEVIATION``. ``periods_per_year`` is
    ``DAYS_PER_YEAR`` for daily returns, ``DAYS_PER_YEAR * bars per day`` for bar returns."""
    if len(returns) < 2:
        return None
    std = float(np.std(returns, ddof=1))
    return float(np.mean(returns)) / std * math.sqrt(periods_per_year) if std > MIN_DEVIATION else None


def rate_performance(
    total_return: float, sharpe_ratio: float | None, max_drawdown_pct: float
) -> PerformanceRating:
    """The documented rating rule (module docstring); pure so that it can be tested on its own."""
    if total_return < 0:
        return PerformanceRating.LOSING
    if sharpe_ratio is None:
        return PerformanceRating.UNRATED
    for rating, min_sharpe, max_drawdown_pct_allowed in RATING_BANDS:
        if sharpe_ratio >= min_sharpe and max_drawdown_pct <= max_drawdown_pct_allowed:
            return rating
    return PerformanceRating.POOR


def _drawdown_summary(
    ts_ns: np.ndarray, values: np.ndarray, starting_balance: float, start_ns: int
) -> tuple[float, float, float]:
    """(max drawdown abs, max drawdown pct, longest underwater spell in days)."""
    peak = np.maximum.accumulate(np.maximum(values, starting_balance))
    drawdown = peak - values
    drawdown_pct = drawdown / peak * 100.0
    underwater = np.concatenate(([0], (values < peak).astype(np.int8), [0]))
    edges = np.diff(underwater)
    spell_starts = np.flatnonzero(edges == 1)  # first underwater bar of each spell
    spell_ends = np.flatnonzero(edges == -1)  # first bar back at the peak (== len when never recovered)
    longest_ns = 0
    last = len(values) - 1
    for start, end in zip(spell_starts, spell_ends, strict=True):
        peak_ts = ts_ns[start - 1] if start > 0 else start_ns  # underwater from the first bar: since start
        recovery_ts = ts_ns[end] if end <= last else ts_ns[last]
        longest_ns = max(longest_ns, int(recovery_ts - peak_ts))
    return float(drawdown.max()), float(drawdown_pct.max()), longest_ns / NS_PER_DAY


def _risk_ratios(
    daily_returns: np.ndarray, periods_per_year: int
) -> tuple[float | None, float | None, float | None]:
    """(Sharpe, Sortino, annualised volatility pct) of daily returns; None where undefined."""
    if len(daily_returns) < 2:
        return None, None, None
    scale = math.sqrt(periods_per_year)
    mean = float(np.mean(daily_returns))
    std = float(np.std(daily_returns, ddof=1))
    downside = math.sqrt(float(np.mean(np.minimum(daily_returns, 0.0) ** 2)))
    sharpe = sharpe_ratio(daily_returns, periods_per_year)
    sortino = mean / downside * scale if downside > MIN_DEVIATION else None
    return sharpe, sortino, std * scale * 100.0


def _start_ns(start_ts: datetime, first_ns: int) -> int:
    if start_ts.tzinfo is None or start_ts.utcoffset() is None:
        raise DataError(f"start_ts must be timezone-aware (UTC), got naive {start_ts}")
    start_ns = (start_ts - _EPOCH) // timedelta(microseconds=1) * 1_000
    if start_ns > first_ns:
        raise DataError(f"start_ts {start_ts.isoformat()} is after the equity curve's first ts")
    return start_ns


def _annualised_return_pct(
    starting_balance: float, final_equity: float, duration_days: float, periods_per_year: int
) -> float | None:
    if duration_days < MIN_ANNUALISATION_DAYS:
        return None
    if final_equity <= 0:
        return -100.0
    try:
        growth = math.exp(math.log(final_equity / starting_balance) * periods_per_year / duration_days)
    except OverflowError:
        return None
    return (growth - 1.0) * 100.0


# A round trip whose net pnl is smaller than any settlement currency's unit (USDT: 1e-8) is breakeven.
BREAKEVEN_TOLERANCE = 1e-9


def _round_trip_summary(net_pnl: np.ndarray) -> dict[str, Any]:
    wins = net_pnl[net_pnl > BREAKEVEN_TOLERANCE]
    losses = net_pnl[net_pnl < -BREAKEVEN_TOLERANCE]
    sum_of_wins = math.fsum(wins)
    sum_of_losses = math.fsum(losses)
    total = len(net_pnl)
    profit_factor = sum_of_wins / -sum_of_losses if len(losses) else None
    if profit_factor is not None and not math.isfinite(profit_factor):  # losses of ~1e-313 overflow
        profit_factor = None
    return {
        "total_trades": total,
        "wins": len(wins),
        "losses": len(losses),
        "breakevens": total - len(wins) - len(losses),
        "win_rate_pct": len(wins) / total * 100.0 if total else None,
        "profit_factor": profit_factor,
        "sum_of_wins": sum_of_wins,
        "sum_of_losses": sum_of_losses,
        "trades_net_pnl": math.fsum(net_pnl),
        "average_win": sum_of_wins / len(wins) if len(wins) else None,
        "average_loss": sum_of_losses / len(losses) if len(losses) else None,
        "largest_win": float(wins.max()) if len(wins) else None,
        "largest_loss": float(losses.min()) if len(losses) else None,
        "expectancy": math.fsum(net_pnl) / total if total else None,
    }
