"""Validation of a kline frame before it goes into the catalog: a report, never a silent fix.

Every check counts its findings and names the first few bar open times. Findings are either errors
(the bars cannot go into a catalog as they are: crossed or non-positive prices, NaN/inf values, negative
volume, conflicting duplicate timestamps, timestamps off the interval grid, values finer than the
instrument's precision) or warnings (gaps, zero-volume bars, exact duplicate rows, which ingest collapses
into one bar and reports). With `strict`, warnings are errors too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import numpy as np
import polars as pl

from qa_engine.data.intervals import KlineInterval
from qa_engine.data.klines import PRICE_COLUMNS

OHLCV_COLUMNS = (*PRICE_COLUMNS, "volume")
EXAMPLES_SHOWN = 3
LARGEST_GAPS_SHOWN = 5


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Check(StrEnum):
    """The checks, in report order."""

    GAPS = "gaps"
    DUPLICATE_TIMESTAMPS = "duplicate timestamps"
    CONFLICTING_DUPLICATES = "conflicting duplicates"
    CROSSED_BARS = "crossed OHLC"
    NON_POSITIVE_PRICES = "non-positive prices"
    NON_FINITE_VALUES = "NaN / inf values"
    NEGATIVE_VOLUME = "negative volume"
    ZERO_VOLUME = "zero-volume bars"
    IRREGULAR_TIMESTAMPS = "irregular timestamps"
    OFF_PRECISION_VALUES = "values finer than instrument precision"


SEVERITY: dict[Check, Severity] = {
    Check.GAPS: Severity.WARNING,
    Check.DUPLICATE_TIMESTAMPS: Severity.WARNING,
    Check.CONFLICTING_DUPLICATES: Severity.ERROR,
    Check.CROSSED_BARS: Severity.ERROR,
    Check.NON_POSITIVE_PRICES: Severity.ERROR,
    Check.NON_FINITE_VALUES: Severity.ERROR,
    Check.NEGATIVE_VOLUME: Severity.ERROR,
    Check.ZERO_VOLUME: Severity.WARNING,
    Check.IRREGULAR_TIMESTAMPS: Severity.ERROR,
    Check.OFF_PRECISION_VALUES: Severity.ERROR,
}


@dataclass(frozen=True)
class Gap:
    """Bars missing between two consecutive open times."""

    last_ts_open_before: datetime
    next_ts_open_after: datetime
    missing_bars: int

    def __str__(self) -> str:
        before, after = _format_time(self.last_ts_open_before), _format_time(self.next_ts_open_after)
        return f"{before} -> {after} ({self.missing_bars})"


@dataclass(frozen=True)
class Finding:
    check: Check
    count: int  # bars (or timestamps, for duplicates) affected
    examples: tuple[datetime, ...]  # first few bar open times

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.check]

    def describe(self) -> str:
        examples = ", ".join(_format_time(time) for time in self.examples)
        more = ", ..." if self.count > len(self.examples) else ""
        return f"{self.check.value}: {self.count} (at {examples}{more})"


@dataclass(frozen=True)
class ValidationReport:
    source: str
    interval: KlineInterval
    bars: int
    first_ts_open: datetime | None
    last_ts_open: datetime | None
    gap_count: int
    missing_bars: int
    largest_gaps: tuple[Gap, ...]
    duplicate_timestamps: int  # timestamps that occur more than once
    conflicting_duplicates: int  # of those, timestamps whose rows differ in OHLCV
    crossed_bars: int
    non_positive_price_bars: int
    non_finite_bars: int
    negative_volume_bars: int
    zero_volume_bars: int
    irregular_timestamps: int
    off_precision_bars: int
    findings: tuple[Finding, ...]

    def blocking_findings(self, strict: bool = False) -> tuple[Finding, ...]:
        """Findings that stop an ingest: errors always, warnings too when `strict`."""
        return tuple(item for item in self.findings if strict or item.severity == Severity.ERROR)

    def passed(self, strict: bool = False) -> bool:
        return not self.blocking_findings(strict)

    def summary(self, strict: bool = False) -> str:
        """One line naming each blocking finding, for an error message."""
        return "; ".join(item.describe() for item in self.blocking_findings(strict))

    def rows(self, strict: bool = False) -> list[tuple[str, str, str]]:
        """(check, result, status) rows for a rich table; status is ok, warning or error."""

        def status(check: Check, count: int) -> str:
            if count == 0:
                return "ok"
            return Severity.ERROR.value if strict else SEVERITY[check].value

        largest = "; ".join(str(gap) for gap in self.largest_gaps)
        counts = {item.check: item for item in self.findings}

        def with_examples(check: Check, count: int) -> str:
            finding = counts.get(check)
            if finding is None or not finding.examples:
                return str(count)
            shown = ", ".join(_format_time(time) for time in finding.examples)
            return f"{count} (first: {shown})"

        return [
            ("source", self.source, ""),
            ("interval", self.interval.value, ""),
            ("bars", f"{self.bars:,}", ""),
            ("first open time", _format_time(self.first_ts_open), ""),
            ("last open time", _format_time(self.last_ts_open), ""),
            (
                Check.GAPS.value,
                f"{self.gap_count} gaps, {self.missing_bars:,} missing bars"
                + (f"; largest: {largest}" if largest else ""),
                status(Check.GAPS, self.gap_count),
            ),
            (
                Check.DUPLICATE_TIMESTAMPS.value,
                with_examples(Check.DUPLICATE_TIMESTAMPS, self.duplicate_timestamps),
                status(Check.DUPLICATE_TIMESTAMPS, self.duplicate_timestamps),
            ),
            *[
                (check.value, with_examples(check, count), status(check, count))
                for check, count in (
                    (Check.CONFLICTING_DUPLICATES, self.conflicting_duplicates),
                    (Check.CROSSED_BARS, self.crossed_bars),
                    (Check.NON_POSITIVE_PRICES, self.non_positive_price_bars),
                    (Check.NON_FINITE_VALUES, self.non_finite_bars),
                    (Check.NEGATIVE_VOLUME, self.negative_volume_bars),
                    (Check.ZERO_VOLUME, self.zero_volume_bars),
                    (Check.IRREGULAR_TIMESTAMPS, self.irregular_timestamps),
                    (Check.OFF_PRECISION_VALUES, self.off_precision_bars),
                )
            ],
        ]


def _format_time(time: datetime | None) -> str:
    if time is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M") + (f":{time.second:02d}" if time.second else "")


def _examples(frame: pl.DataFrame, mask: pl.Expr) -> tuple[int, tuple[datetime, ...]]:
    selected = frame.filter(mask)["ts_open"]
    return selected.len(), tuple(selected.head(EXAMPLES_SHOWN).to_list())


def _off_precision_mask(columns: tuple[str, ...], precision: int) -> pl.Expr:
    """True where a value needs more decimals than `precision` (it would be rounded when made a Price)."""
    scale = 10.0**precision
    masks = []
    for column in columns:
        scaled = pl.col(column) * scale
        tolerance = pl.max_horizontal(pl.lit(1e-6), scaled.abs() * 1e-12)
        masks.append(((scaled - scaled.round(0)).abs() > tolerance) & scaled.is_finite())
    return pl.any_horizontal(masks)


def validate_klines(
    frame: pl.DataFrame,
    interval: KlineInterval,
    source: str = "",
    price_precision: int | None = None,
    size_precision: int | None = None,
) -> ValidationReport:
    """Check a normalised kline frame (see qa_engine.data.klines); pure, the frame is not changed."""
    interval_ns = interval.duration_ns
    ordered = frame.sort("ts_open", maintain_order=True)
    nanos = pl.col("ts_open").dt.epoch("ns")
    prices = [pl.col(column) for column in PRICE_COLUMNS]
    finite = pl.all_horizontal([pl.col(column).is_finite() for column in OHLCV_COLUMNS])

    counts: dict[Check, tuple[int, tuple[datetime, ...]]] = {
        Check.CROSSED_BARS: _examples(
            ordered,
            (pl.col("high") < pl.max_horizontal("open", "close"))
            | (pl.col("low") > pl.min_horizontal("open", "close"))
            | (pl.col("high") < pl.col("low")),
        ),
        Check.NON_POSITIVE_PRICES: _examples(ordered, pl.any_horizontal([price <= 0 for price in prices])),
        Check.NON_FINITE_VALUES: _examples(ordered, ~finite),
        Check.NEGATIVE_VOLUME: _examples(ordered, pl.col("volume") < 0),
        Check.ZERO_VOLUME: _examples(ordered, pl.col("volume") == 0),
        Check.IRREGULAR_TIMESTAMPS: _examples(ordered, nanos % interval_ns != 0),
    }
    off_precision = []
    if price_precision is not None:
        off_precision.append(_off_precision_mask(PRICE_COLUMNS, price_precision))
    if size_precision is not None:
        off_precision.append(_off_precision_mask(("volume",), size_precision))
    counts[Check.OFF_PRECISION_VALUES] = (
        _examples(ordered, pl.any_horizontal(off_precision)) if off_precision else (0, ())
    )

    # Duplicates: timestamps with more than one row; conflicting when the rows differ in OHLCV.
    per_time = ordered.group_by("ts_open", maintain_order=True).agg(
        rows=pl.len(),
        distinct=pl.struct(OHLCV_COLUMNS).n_unique(),
    )
    duplicated = per_time.filter(pl.col("rows") > 1)
    conflicting = duplicated.filter(pl.col("distinct") > 1)
    counts[Check.DUPLICATE_TIMESTAMPS] = (
        duplicated.height,
        tuple(duplicated["ts_open"].head(EXAMPLES_SHOWN)),
    )
    counts[Check.CONFLICTING_DUPLICATES] = (
        conflicting.height,
        tuple(conflicting["ts_open"].head(EXAMPLES_SHOWN)),
    )

    gaps = _gaps(per_time["ts_open"], interval_ns)
    gap_times = tuple(gap.last_ts_open_before for gap in gaps[:EXAMPLES_SHOWN])
    counts[Check.GAPS] = (len(gaps), gap_times)

    findings = tuple(
        Finding(check, count, examples) for check in Check for count, examples in [counts[check]] if count > 0
    )
    return ValidationReport(
        source=source,
        interval=interval,
        bars=frame.height,
        first_ts_open=ordered["ts_open"].min() if frame.height else None,
        last_ts_open=ordered["ts_open"].max() if frame.height else None,
        gap_count=len(gaps),
        missing_bars=sum(gap.missing_bars for gap in gaps),
        largest_gaps=tuple(sorted(gaps, key=lambda gap: -gap.missing_bars)[:LARGEST_GAPS_SHOWN]),
        duplicate_timestamps=duplicated.height,
        conflicting_duplicates=conflicting.height,
        crossed_bars=counts[Check.CROSSED_BARS][0],
        non_positive_price_bars=counts[Check.NON_POSITIVE_PRICES][0],
        non_finite_bars=counts[Check.NON_FINITE_VALUES][0],
        negative_volume_bars=counts[Check.NEGATIVE_VOLUME][0],
        zero_volume_bars=counts[Check.ZERO_VOLUME][0],
        irregular_timestamps=counts[Check.IRREGULAR_TIMESTAMPS][0],
        off_precision_bars=counts[Check.OFF_PRECISION_VALUES][0],
        findings=findings,
    )


def _gaps(unique_times: pl.Series, interval_ns: int) -> list[Gap]:
    """Gaps between consecutive on-grid open times (irregular times are reported separately)."""
    nanos = unique_times.dt.epoch("ns").to_numpy()
    on_grid = nanos[nanos % interval_ns == 0]
    if on_grid.size < 2:
        return []
    steps = np.diff(on_grid)
    positions = np.flatnonzero(steps > interval_ns)
    times = unique_times.filter(unique_times.dt.epoch("ns") % interval_ns == 0)
    return [
        Gap(times[int(index)], times[int(index) + 1], int(steps[index] // interval_ns) - 1)
        for index in positions
    ]
