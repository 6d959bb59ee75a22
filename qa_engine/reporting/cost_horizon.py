"""Where can a round trip's cost be cleared? The typical size of a price move per bar interval and horizon,
against the cost of entering and leaving a position.

From 5m klines (ts_open, open, high, low, close, volume), resampled to 5m / 15m / 1h / 4h bars (only
complete buckets: every 5m bar of the bucket present), for one bar and each horizon h of about 30 min, 1 h,
2 h, 4 h, 8 h, 12 h and 24 h that is a whole number of bars of the interval:

- median_abs_move_bp: median over every bar t of |ln(close[t+h] / close[t])|, in basis points, where t+h is
  the bar exactly h intervals later (pairs across a gap in the data are left out);
- share_above_cost: the share of those moves whose size exceeds the round-trip cost;
- move_to_cost: median_abs_move_bp / cost_bps.

The round trip defaults to 2 x the taker fee (5.5 bp) + 2 x 1 bp slippage = 13 bp. Moves overlap (one per
bar), so the counts overstate how many independent moves were seen; medians are unaffected. Torch-free:
polars and numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from qa_engine.data.resample import resample_klines

TAKER_FEE_BPS = 5.5
SLIPPAGE_BPS = 1.0
DEFAULT_COST_BPS = 2 * TAKER_FEE_BPS + 2 * SLIPPAGE_BPS  # 13 bp round trip
BASE_MINUTES = 5
INTERVAL_MINUTES = {"5m": 5, "15m": 15, "1h": 60, "4h": 240}
HORIZON_MINUTES = (30, 60, 120, 240, 480, 720, 1440)  # 30 min .. 24 h
KLINE_COLUMNS = ("ts_open", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class CostHorizonRow:
    interval: str
    horizon_bars: int
    horizon: str  # "30m", "4h", ...
    moves: int
    median_abs_move_bp: float
    share_above_cost: float
    move_to_cost: float


def _duration_text(minutes: int) -> str:
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def horizons_in_bars(interval: str, horizon_minutes: tuple[int, ...] = HORIZON_MINUTES) -> list[int]:
    """One bar, and every horizon of `horizon_minutes` that is a whole number of `interval` bars."""
    step = INTERVAL_MINUTES[interval]
    return sorted(
        {1} | {minutes // step for minutes in horizon_minutes if minutes % step == 0 and minutes >= step}
    )


def _check_klines(klines: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in KLINE_COLUMNS if c not in klines.columns]
    if missing:
        raise ValueError(f"klines lack column(s) {', '.join(missing)}; columns: {', '.join(klines.columns)}")
    frame = klines.select(KLINE_COLUMNS).sort("ts_open")
    if frame.height < 2:
        raise ValueError(f"klines hold {frame.height} row(s); at least two 5m bars are needed")
    spacing = frame.get_column("ts_open").diff().drop_nulls().min()
    if spacing is None or spacing.total_seconds() != BASE_MINUTES * 60:
        raise ValueError(f"klines must be 5m bars; the closest two are {spacing} apart")
    return frame


def resample(klines: pl.DataFrame, interval: str) -> pl.DataFrame:
    """5m klines as `interval` bars (ts_open at the bucket's start, UTC-aligned), complete buckets only
    (qa_engine.data.resample, the same rule as `qa data resample`)."""
    if interval not in INTERVAL_MINUTES:
        raise ValueError(f"interval must be one of {', '.join(INTERVAL_MINUTES)}, got '{interval}'")
    frame = _check_klines(klines)
    if interval == "5m":
        return frame
    return resample_klines(frame, "5m", interval).frame


def abs_moves_bp(bars: pl.DataFrame, interval: str, horizon_bars: int) -> np.ndarray:
    """|ln(close[t+h] / close[t])| in bp for every bar t whose bar exactly h intervals later exists."""
    step = pl.duration(minutes=INTERVAL_MINUTES[interval] * horizon_bars)
    later = bars.select(
        (pl.col("ts_open") - step).cast(bars.schema["ts_open"]).alias("ts_open"),
        pl.col("close").alias("close_later"),
    )
    pairs = bars.select("ts_open", "close").join(later, on="ts_open", how="inner")
    return np.abs(np.log(pairs["close_later"].to_numpy() / pairs["close"].to_numpy())) * 1e4


def cost_horizon_table(
    klines: pl.DataFrame,
    cost_bps: float = DEFAULT_COST_BPS,
    intervals: tuple[str, ...] = tuple(INTERVAL_MINUTES),
    horizon_minutes: tuple[int, ...] = HORIZON_MINUTES,
) -> list[CostHorizonRow]:
    """One row per (interval, horizon): see the module docstring."""
    if not (np.isfinite(cost_bps) and cost_bps > 0):
        raise ValueError(f"cost_bps must be a positive number, got {cost_bps}")
    rows = []
    for interval in intervals:
        bars = resample(klines, interval)
        for horizon in horizons_in_bars(interval, horizon_minutes):
            moves = abs_moves_bp(bars, interval, horizon)
            if moves.size == 0:
                continue
            median = float(np.median(moves))
            rows.append(
                CostHorizonRow(
                    interval=interval,
                    horizon_bars=horizon,
                    horizon=_duration_text(horizon * INTERVAL_MINUTES[interval]),
                    moves=int(moves.size),
                    median_abs_move_bp=median,
                    share_above_cost=float(np.mean(moves > cost_bps)),
                    move_to_cost=median / cost_bps,
                )
            )
    return rows


HEADERS = (
    "interval",
    "horizon (bars)",
    "horizon",
    "moves",
    "median |move| (bp)",
    "share > cost",
    "median / cost",
)


def format_row(row: CostHorizonRow) -> tuple[str, ...]:
    return (
        row.interval,
        str(row.horizon_bars),
        row.horizon,
        f"{row.moves:,}",
        f"{row.median_abs_move_bp:.1f}",
        f"{row.share_above_cost:.1%}",
        f"{row.move_to_cost:.2f}x",
    )


def to_markdown(rows: list[CostHorizonRow], cost_bps: float, source: str, period: str) -> str:
    """The table as Markdown, with its source, period and cost."""
    lines = [
        f"Source: `{source}` ({period}); round-trip cost {cost_bps:g} bp.",
        "",
        "| " + " | ".join(header.replace("|", "\\|") for header in HEADERS) + " |",
        "|" + "|".join("---:" if i > 2 else "---" for i in range(len(HEADERS))) + "|",
    ]
    lines += ["| " + " | ".join(format_row(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def period_text(klines: pl.DataFrame) -> str:
    ts = klines.get_column("ts_open")
    return f"{ts.min():%Y-%m-%d %H:%M} .. {ts.max():%Y-%m-%d %H:%M} UTC, {klines.height:,} 5m bars"
