"""Position sizing: pure functions, no Nautilus objects."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_DOWN
from decimal import Decimal
from statistics import NormalDist

import numpy as np


def quantity_for_notional(
    equity: Decimal,
    price: Decimal,
    notional_pct_of_equity: Decimal,
    size_increment: Decimal,
    min_quantity: Decimal = Decimal(0),
    max_quantity: Decimal | None = None,
) -> Decimal:
    """Quantity whose notional is `notional_pct_of_equity`% of equity, rounded DOWN to the lot step.

    Returns 0 when equity is not positive or the rounded size is under the venue's minimum: never
    rounds up into more risk than asked for.
    """
    if equity <= 0 or price <= 0 or notional_pct_of_equity <= 0:
        return Decimal(0)
    raw_quantity = equity * notional_pct_of_equity / Decimal(100) / price
    quantity = (raw_quantity / size_increment).to_integral_value(rounding=ROUND_DOWN) * size_increment
    if max_quantity is not None:
        quantity = min(quantity, max_quantity)
    return quantity if quantity >= min_quantity and quantity > 0 else Decimal(0)


# --- volatility targeting ---------------------------------------------------------------------------------
#
# A position sized for a target volatility: leverage = sigma_target_per_bar / sigma_bar, capped at
# `max_leverage`. sigma_bar is the standard deviation of one-bar log returns, either realized (the last bars)
# or implied by a quantile forecast; the annual target is scaled to one bar by sqrt(bars per year).

SECONDS_PER_YEAR = 365 * 86_400  # crypto trades 24/7, every day of the year


def bars_per_year(bar_seconds: float) -> float:
    """How many bars of `bar_seconds` one year of round-the-clock trading holds."""
    if not (bar_seconds > 0 and math.isfinite(bar_seconds)):
        raise ValueError(f"bar_seconds must be positive, got {bar_seconds}")
    return SECONDS_PER_YEAR / bar_seconds


def vol_target_leverage(
    sigma_bar: float, target_annual: float, bars_per_year: float, max_leverage: float
) -> float:
    """Multiple of the unlevered position that runs at `target_annual` volatility (a fraction: 0.20 for
    20 %/yr) when one-bar log returns have standard deviation `sigma_bar`: min(max_leverage,
    target_annual / sqrt(bars_per_year) / sigma_bar). A sigma of 0 (flat prices) gives `max_leverage`."""
    if not (target_annual > 0 and bars_per_year > 0 and max_leverage > 0):
        raise ValueError(
            f"target_annual, bars_per_year and max_leverage must be positive, got "
            f"{target_annual}, {bars_per_year}, {max_leverage}"
        )
    if not (sigma_bar >= 0 and math.isfinite(sigma_bar)):
        raise ValueError(f"sigma_bar must be a finite number >= 0, got {sigma_bar}")
    target_per_bar = target_annual / math.sqrt(bars_per_year)
    if sigma_bar == 0:
        return max_leverage
    return min(max_leverage, target_per_bar / sigma_bar)


def realized_sigma(closes: Sequence[float]) -> float | None:
    """Sample standard deviation (ddof 1) of the one-bar log returns of `closes` (oldest first); None
    when fewer than two returns are given or a close is not positive."""
    prices = np.asarray(closes, dtype=np.float64)
    if prices.size < 3 or not np.all(prices > 0) or not np.all(np.isfinite(prices)):
        return None
    return float(np.std(np.diff(np.log(prices)), ddof=1))


def sigma_from_quantiles(
    quantiles: Sequence[float], values: Sequence[float], horizon_bars: int
) -> float | None:
    """Per-bar sigma implied by a quantile forecast of the cumulative log return `horizon_bars` ahead:
    sigma_h = (q_hi - q_lo) / (z_hi - z_lo) from the outermost quantile levels (z: the standard normal's
    quantiles of those levels), per bar sigma_h / sqrt(horizon_bars). None when the band is not usable
    (fewer than two levels, a level outside (0, 1), a non-finite value, or a band of width <= 0)."""
    levels = np.asarray(quantiles, dtype=np.float64)
    forecast = np.asarray(values, dtype=np.float64)
    if levels.size < 2 or levels.size != forecast.size or horizon_bars < 1:
        return None
    if not (np.all(np.isfinite(levels)) and np.all(np.isfinite(forecast))):
        return None
    lo, hi = int(np.argmin(levels)), int(np.argmax(levels))
    if not (0 < levels[lo] < levels[hi] < 1):
        return None
    width = float(forecast[hi] - forecast[lo])
    if width <= 0:
        return None
    normal = NormalDist()
    sigma_h = width / (normal.inv_cdf(float(levels[hi])) - normal.inv_cdf(float(levels[lo])))
    return sigma_h / math.sqrt(horizon_bars)


def outside_band(wanted: Decimal, held: Decimal, band_pct: float) -> bool:
    """True when `wanted` differs from `held` by more than `band_pct` % of |held| (always when nothing is
    held, or the side changes): the re-size rule of vol targeting."""
    if wanted == held:
        return False
    if held == 0 or (wanted > 0) != (held > 0) or wanted == 0:
        return True
    return abs(wanted - held) > abs(held) * Decimal(str(band_pct)) / Decimal(100)
