"""Download klines and funding rates from a venue into the catalog: resumable, rate-limit aware, verified.

Venue-neutral: the venue is any object with the `HistoricalVenue` methods (adapters/binance and adapters/bybit
implement them with python-binance and pybit, found through qa_engine.plugins); this module never imports
adapters.

Klines
- The range is [start, end) of bar OPEN times, cut to closed bars: a bar is fetched only once it has closed
  (open + interval <= now), so the still-forming last kline never reaches the catalog.
- What is fetched = the range minus the bars the catalog holds minus the spans the venue already answered
  with no bars (recorded in the checkpoint). The catalog itself is the record of what is stored, so a crash
  at any moment (kill -9 included) costs at most the pages not yet committed: a stored bar is never fetched
  again, never stored twice, and nothing is skipped.
- Pages are fixed windows of `limit` bar slots, [w, w + limit * interval), whatever order the venue sorts
  rows in (Binance oldest first, Bybit newest first). Rows outside the window (a venue repeating bars) are
  counted and ignored; exact duplicate rows are collapsed and counted; conflicting ones are a DataError.
- Every `commit_every_pages` pages the bars are validated (qa_engine.data.validation: errors stop the
  download, nothing of the chunk is written) and added to the catalog as one new Parquet file, atomically
  (written in `.staging/`, renamed in), and only then does the checkpoint advance. At the end the bar type's
  files are compacted into one, atomically.
- A span the venue has no bars for (an exchange outage, before a listing) is reported as a gap and never
  filled. Empty answers within an hour of now are not recorded (a venue may publish late).

Funding rates: fixed windows that hold at most `limit` records (funding is at most hourly on both venues),
merged into the catalog as FundingRateUpdate (qa_engine.data.funding) every few pages; the checkpoint records
the fetched spans. A re-fetched window merges idempotently.

Checkpoints: `<catalog>/.downloads/<market>/<symbol>-<interval>.json` and `...-funding.json`, written to a
temporary file and moved in with os.replace. They can be deleted at any time: downloads then only ask the
venue again for spans it had no bars for.

Venue behaviour (`VenueCaller`, on tenacity): rate limits (HTTP 429/418, Bybit retCode 10006, adapters raise
`VenueRateLimitedError`) wait what the venue asks (Retry-After, reset timestamp); server errors, timeouts,
broken and truncated bodies (`VenueTransientError`) are retried with jittered exponential back-off, each
wait capped, attempts capped and total waiting capped; running out is a VenueError (exit 1, "run again").
A venue that cannot be reached at all (`VenueUnreachableError`: its host name does not resolve, or it refuses
the connection) before any of its answers came is not retried: retrying cannot help without a network or with
a wrong --base-url, so it is a VenueError at once (exit 1) naming the host. Once the venue has answered, the
same failure is a passing network blip and is retried like any transient error.
Any other rejection (`VenueRejectedError`: bad symbol, bad interval) is a DataError naming symbol and range.
Rate-limit headers (Binance used weight, Bybit remaining requests) come back as a pause before the next call.
"""

from __future__ import annotations

import difflib
import json
import os
import random
import socket
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Protocol
from typing import TypeVar
from urllib.parse import urlsplit

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import structlog
import tenacity
from nautilus_trader.model.instruments import Instrument

from qa_engine.data.catalog import bar_directory_of
from qa_engine.data.catalog import nanos_to_datetime
from qa_engine.data.funding import FUNDING_FRAME_SCHEMA
from qa_engine.data.funding import merge_funding_rates
from qa_engine.data.funding import read_funding_table
from qa_engine.data.ingest import add_bar_file
from qa_engine.data.ingest import catalog_writer
from qa_engine.data.ingest import encode_bars
from qa_engine.data.ingest import merge_bars_into_catalog
from qa_engine.data.ingest import replace_bar_directory
from qa_engine.data.ingest import write_instrument
from qa_engine.data.intervals import KlineInterval
from qa_engine.data.intervals import bar_type_string
from qa_engine.data.intervals import parse_interval
from qa_engine.data.klines import KLINE_SCHEMA
from qa_engine.data.markets import Market
from qa_engine.data.validation import OHLCV_COLUMNS
from qa_engine.data.validation import validate_klines
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.errors import VenueError

log = structlog.get_logger(__name__)

T = TypeVar("T")
Span = tuple[int, int]  # [start_ms, end_ms) of bar open times (klines) or funding times
NANOS_PER_MS = 1_000_000
MS_PER_HOUR = 3_600_000
DOWNLOADS_DIRNAME = ".downloads"
CHECKPOINT_VERSION = 1
DEFAULT_COMMIT_EVERY_PAGES = 20
UNSETTLED_MS = MS_PER_HOUR  # empty answers this close to now are not recorded as venue gaps
RATE_LIMIT_MIN_WAIT_SECS = 1.0  # a rate limit without Retry-After waits at least this long
GAPS_SHOWN = 20
MAX_FOLLOW_UPS = 8  # requests for holes left by a full page, per window

# -- what a venue adapter provides -------------------------------------------------------------------


class VenueRateLimitedError(Exception):
    """The venue asked us to slow down (HTTP 429/418, Bybit retCode 10006): wait, then retry."""

    def __init__(self, message: str, retry_after_secs: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_secs = retry_after_secs


class VenueTransientError(Exception):
    """A failure that may pass: 5xx, timeout, broken connection, truncated or malformed body."""


class VenueUnreachableError(VenueTransientError):
    """No connection to the venue's host at all: its name does not resolve, or it refuses the connection."""

    def __init__(self, message: str, host: str) -> None:
        super().__init__(message)
        self.host = host


def unreachable_error(exc: BaseException, url: str | None = None) -> VenueUnreachableError | None:
    """A VenueUnreachableError when `exc` (a requests/urllib3 connection error, looked at down its chain of
    causes) comes from a failed name resolution or a refused connection; else None. `url` names the host when
    the exception does not carry its request."""
    request = getattr(exc, "request", None)
    target = urlsplit(getattr(request, "url", None) or url or "")
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, socket.gaierror):
            host = target.hostname or "the venue's host"
            return VenueUnreachableError(
                f"cannot resolve the host name {host} ({error.strerror or error})", host
            )
        if isinstance(error, ConnectionRefusedError):
            host = target.netloc or "the venue's host"
            return VenueUnreachableError(f"{host} refused the connection", host)
        error = error.__cause__ or error.__context__
    return None


class VenueRejectedError(Exception):
    """The venue refused the request for a reason retrying cannot fix (bad symbol, bad interval)."""


@dataclass(frozen=True)
class KlinePage:
    """One kline response: `frame` has KLINE_SCHEMA columns (ts_open, OHLCV), rows in any order."""

    frame: pl.DataFrame
    pause_secs: float = 0.0  # rate-limit headers ask for this pause before the next request


@dataclass(frozen=True)
class FundingPage:
    """One funding-rate response: `frame` has ts_event (Int64 ns) and rate (String) columns."""

    frame: pl.DataFrame
    pause_secs: float = 0.0


@dataclass(frozen=True)
class InstrumentListing:
    instruments: dict[str, Instrument]  # venue symbol -> Nautilus instrument
    skipped: dict[str, str]  # venue symbol -> why it could not be parsed
    listed: tuple[str, ...] = ()  # every symbol of the market the venue listed (for suggestions)


class HistoricalVenue(Protocol):
    """The venue side of a download (adapters/<venue>/historical.py)."""

    market: Market
    kline_page_limit: int  # most klines one request returns
    funding_page_limit: int  # most funding records one request returns; 0: the market has no funding

    def fetch_klines(
        self, symbol: str, interval: KlineInterval, start_ms: int, end_ms: int, limit: int
    ) -> KlinePage:
        """Klines opening in [start_ms, end_ms] (both inclusive), at most `limit`."""
        ...

    def fetch_funding_rates(self, symbol: str, start_ms: int, end_ms: int, limit: int) -> FundingPage:
        """Funding records with funding time in [start_ms, end_ms] (both inclusive), at most `limit`."""
        ...

    def fetch_instruments(self, symbols: Sequence[str] | None = None) -> InstrumentListing:
        """Definitions of `symbols` (all of the market's if None) from the venue's listing."""
        ...


# -- retry policy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off for one request: jittered exponential waits, each capped; attempts and total wait capped."""

    max_attempts: int = 8
    initial_wait_secs: float = 0.5
    max_wait_secs: float = 60.0
    max_total_wait_secs: float = 900.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.initial_wait_secs < 0 or self.max_wait_secs < self.initial_wait_secs:
            raise ConfigError(
                f"invalid retry policy {self}: need max_attempts >= 1 and 0 <= initial <= max wait"
            )


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_secs: float = 0.0  # back-off and rate-limit pauses


class VenueCaller:
    """Runs venue requests under a RetryPolicy (tenacity); counts requests, retries and waiting.

    `sleep` is injectable so tests never wait for real.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.stats = RequestStats()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._venue_answered = False  # set once a request got through to the venue's host

    def _retryable(self, error: BaseException) -> bool:
        if isinstance(error, VenueUnreachableError) and not self._venue_answered:
            return False  # never reached: no network, or a wrong host; waiting will not change that
        return isinstance(error, (VenueRateLimitedError, VenueTransientError))

    def _backoff_secs(self, attempt: int) -> float:
        exponential = self.policy.initial_wait_secs * 2 ** (attempt - 1)
        jitter = self._rng.uniform(0, self.policy.initial_wait_secs)
        return min(self.policy.max_wait_secs, exponential + jitter)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, VenueRateLimitedError):
            if error.retry_after_secs is not None:
                return max(0.0, error.retry_after_secs)  # what the venue asked, no less
            return max(RATE_LIMIT_MIN_WAIT_SECS, self._backoff_secs(state.attempt_number))
        return self._backoff_secs(state.attempt_number)

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        over_budget = state.idle_for + state.upcoming_sleep > self.policy.max_total_wait_secs
        return state.attempt_number >= self.policy.max_attempts or over_budget

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.stats.retries += 1
        self.stats.rate_limited += isinstance(error, VenueRateLimitedError)
        log.warning(
            "venue_retry",
            attempt=state.attempt_number,
            wait_secs=round(state.upcoming_sleep, 2),
            error=str(error)[:300],
        )

    def _sleep_counted(self, secs: float) -> None:
        self.stats.waited_secs += secs
        self._sleep(secs)

    def pause(self, secs: float) -> None:
        """Sleep before the next request because the venue's rate-limit headers asked for it."""
        if secs > 0:
            log.info("rate_limit_pause", secs=round(secs, 2))
            self._sleep_counted(secs)

    def call(self, request: Callable[[], T], what: str) -> T:
        """Run `request` with retries; a final failure is a VenueError, a rejection a DataError."""

        def counted() -> T:
            self.stats.requests += 1
            try:
                answer = request()
            except (VenueRateLimitedError, VenueTransientError, VenueRejectedError) as exc:
                if not isinstance(exc, VenueUnreachableError):
                    self._venue_answered = True  # any failure but an unreachable host counts as reached
                raise
            self._venue_answered = True
            return answer

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(self._retryable),
            wait=self._wait,
            stop=self._stop,
            sleep=self._sleep_counted,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        attempts_before = self.stats.requests
        try:
            return retrying(counted)
        except VenueRejectedError as exc:
            raise DataError(
                f"{what}: the venue rejected the request: {exc}; check the symbol and interval "
                f"(`qa data download-instruments --venue ...` lists the venue's symbols)",
            ) from None
        except VenueRateLimitedError as exc:
            attempts = self.stats.requests - attempts_before
            asked = f"; it asks to wait {exc.retry_after_secs:.0f} s" if exc.retry_after_secs else ""
            raise VenueError(
                f"{what}: still rate limited after {attempts} attempt(s) ({exc}){asked}, more than the "
                f"retry budget ({self.policy.max_attempts} attempts, "
                f"{self.policy.max_total_wait_secs:.0f} s of waiting); run the same command again later: "
                f"the download resumes where it stopped",
            ) from exc
        except VenueTransientError as exc:
            if isinstance(exc, VenueUnreachableError) and not self._venue_answered:  # not retried
                raise VenueError(
                    f"{what}: the venue is unreachable: {exc}; not retried: check the network connection "
                    f"(DNS, proxy, firewall) and --base-url if given, then run the same command again",
                ) from exc
            attempts = self.stats.requests - attempts_before
            raise VenueError(
                f"{what}: failed {attempts} time(s), last: {exc}; run the same command again later: "
                f"the download resumes where it stopped",
            ) from exc


# -- spans -------------------------------------------------------------------------------------------


def merge_spans(spans: Sequence[Span]) -> list[Span]:
    """Sorted union of half-open spans; touching spans join."""
    merged: list[Span] = []
    for start, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def subtract_spans(base: Sequence[Span], remove: Sequence[Span]) -> list[Span]:
    """Parts of `base` not covered by `remove` (half-open spans), sorted."""
    result: list[Span] = []
    removals = merge_spans(remove)
    for start, end in merge_spans(base):
        cursor = start
        for remove_start, remove_end in removals:
            if remove_end <= cursor or remove_start >= end:
                continue
            if remove_start > cursor:
                result.append((cursor, remove_start))
            cursor = max(cursor, remove_end)
            if cursor >= end:
                break
        if cursor < end:
            result.append((cursor, end))
    return result


def runs_of(open_ms: np.ndarray, step_ms: int) -> list[Span]:
    """Contiguous runs of sorted, unique grid times as spans [first, last + step)."""
    if open_ms.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(open_ms) != step_ms)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [open_ms.size - 1]])
    return [(int(open_ms[s]), int(open_ms[e]) + step_ms) for s, e in zip(starts, ends, strict=True)]


def plan_windows(spans: Sequence[Span], step_ms: int, slots: int) -> list[Span]:
    """Cut spans into request windows of at most `slots` grid steps each."""
    windows = []
    for start, end in merge_spans(spans):
        cursor = start
        while cursor < end:
            windows.append((cursor, min(end, cursor + slots * step_ms)))
            cursor = windows[-1][1]
    return windows


def _meta_text(meta: dict[bytes, bytes | None]) -> str:
    return ", ".join(f"{key.decode()}={(value or b'?').decode()}" for key, value in meta.items())


def _span_text(span: Span) -> str:
    def stamp(ms: int) -> str:
        return f"{nanos_to_datetime(ms * NANOS_PER_MS):%Y-%m-%d %H:%M}"

    return f"{stamp(span[0])} -> {stamp(span[1])}"


# -- checkpoints -------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """Download progress the catalog cannot tell by itself, kept beside it and replaced atomically."""

    path: Path
    key: dict[str, str]
    empty_spans: list[Span] = field(default_factory=list)  # klines: spans the venue had no bars for
    fetched_spans: list[Span] = field(default_factory=list)  # funding: spans fetched and stored
    records: int = 0  # funding: rows the catalog held for the instrument at the last save

    @classmethod
    def load(cls, path: Path, key: dict[str, str]) -> Checkpoint:
        """The checkpoint at `path`, or a fresh one if there is none, or it is unreadable or for another
        download (the catalog stays the record of stored bars, so starting fresh is always safe)."""
        fresh = cls(path, key)
        if not path.is_file():
            return fresh
        try:
            content = json.loads(path.read_text())
            if content.get("version") != CHECKPOINT_VERSION or content.get("key") != key:
                raise ValueError(f"written for {content.get('key')}, version {content.get('version')}")
            return cls(
                path,
                key,
                empty_spans=[(int(a), int(b)) for a, b in content.get("empty_spans_ms", [])],
                fetched_spans=[(int(a), int(b)) for a, b in content.get("fetched_spans_ms", [])],
                records=int(content.get("records", 0)),
            )
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("checkpoint_ignored", path=str(path), reason=str(exc)[:200])
            return fresh

    def save(self) -> None:
        """Write to a temporary file beside the checkpoint, fsync, then os.replace (atomic)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        content = {
            "version": CHECKPOINT_VERSION,
            "key": self.key,
            "empty_spans_ms": [list(span) for span in merge_spans(self.empty_spans)],
            "fetched_spans_ms": [list(span) for span in merge_spans(self.fetched_spans)],
            "records": self.records,
            "updated_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with temporary.open("w") as handle:
            json.dump(content, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


def checkpoint_path(catalog_root: str | Path, market: Market | str, symbol: str, series: str) -> Path:
    """`<catalog>/.downloads/<market>/<symbol>-<series>.json` (series: an interval, or 'funding')."""
    return Path(catalog_root) / DOWNLOADS_DIRNAME / str(Market(market).value) / f"{symbol}-{series}.json"


# -- the bars of one bar type in the catalog ---------------------------------------------------------


class CatalogBarStore:
    """The bars of one bar type in the catalog: stored open times, adding files, compaction (use inside
    `ingest.catalog_writer`)."""

    def __init__(self, catalog_root: Path, instrument: Instrument, interval: KlineInterval) -> None:
        self.root = catalog_root
        self.bar_type = bar_type_string(instrument.id.value, interval)
        self.directory = bar_directory_of(catalog_root, self.bar_type)
        self.step_ms = interval.duration_ns // NANOS_PER_MS
        self._ranges: list[tuple[int, int, dict[bytes, bytes]]] | None = None

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("*.parquet")) if self.directory.is_dir() else []

    def stored_open_ms(self) -> np.ndarray:
        """Open times (ms, sorted) of every stored bar; duplicates are a DataError."""
        parts = [
            pq.read_table(file, columns=["ts_event"]).column("ts_event").to_numpy() for file in self.files()
        ]
        if not parts:
            return np.empty(0, dtype=np.int64)
        ts_event = np.sort(np.concatenate(parts).astype(np.int64))
        if ts_event.size > 1 and np.any(np.diff(ts_event) == 0):
            raise DataError(
                f"{self.directory}: the catalog holds duplicate bars; run `qa catalog validate --catalog "
                f"{self.root}` and delete that directory to download it again",
            )
        return ts_event // NANOS_PER_MS - self.step_ms

    def _file_ranges(self) -> list[tuple[int, int, dict[bytes, bytes]]]:
        """(first ts_init, last ts_init, schema metadata) per file; read once, then kept up to date by
        `add` (the writer lock makes this process the only writer)."""
        if self._ranges is None:
            self._ranges = []
            for file in self.files():
                values = pq.read_table(file, columns=["ts_init"]).column("ts_init").to_numpy()
                if values.size:
                    metadata = pq.read_schema(file).metadata or {}
                    self._ranges.append((int(values.min()), int(values.max()), metadata))
        return self._ranges

    def add(self, table: pa.Table) -> None:
        """Add encoded bars: a new file if its time range is disjoint from every stored file, else a merge."""
        ts_init = table.column("ts_init").to_numpy()
        first, last = int(ts_init.min()), int(ts_init.max())
        ranges = self._file_ranges()
        keys = (b"bar_type", b"price_precision", b"size_precision")
        new_meta = {key: (table.schema.metadata or {}).get(key) for key in keys}
        for _, _, meta in ranges[:1]:
            old_meta = {key: meta.get(key) for key in keys}
            if old_meta != new_meta:
                raise DataError(
                    f"{self.directory}: the catalog holds these bars with {_meta_text(old_meta)}, the "
                    f"venue's instrument definition gives {_meta_text(new_meta)}; delete that directory to "
                    f"download it again with the new definition",
                )
        if any(first <= high and low <= last for low, high, _ in ranges):
            merge_bars_into_catalog(self.root, table)
            self._ranges = None  # the directory was rewritten
        else:
            add_bar_file(self.root, self.directory, table)
            ranges.append((first, last, dict(table.schema.metadata or {})))

    def compact(self) -> None:
        """Rewrite several files as one, atomically (fewer files read faster)."""
        files = self.files()
        if len(files) < 2:
            return
        tables = [pq.read_table(file) for file in files]
        merged = tables[0].schema.metadata
        table = pa.concat_tables([item.cast(tables[0].schema) for item in tables]).sort_by("ts_init")
        replace_bar_directory(self.root, self.directory, table.replace_schema_metadata(merged))
        self._ranges = None


# -- klines ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VenueGap:
    """Bars the venue does not have inside the requested range: reported, never filled."""

    first_missing_open: datetime
    last_missing_open: datetime
    missing_bars: int

    def __str__(self) -> str:
        return (
            f"{self.first_missing_open:%Y-%m-%d %H:%M} .. {self.last_missing_open:%Y-%m-%d %H:%M} "
            f"({self.missing_bars:,} bars)"
        )


@dataclass(frozen=True)
class KlineDownloadResult:
    market: str
    symbol: str
    instrument_id: str
    bar_type: str
    catalog_path: Path
    range_start: datetime  # first bar open time asked for
    range_end: datetime  # exclusive end of open times, cut to closed bars
    bars_already_stored: int  # in range before this run
    bars_written: int
    bars_in_range: int  # after this run
    requests: int
    pages: int
    retries: int
    rate_limited: int
    waited_secs: float
    rows_outside_window: int  # rows a venue sent outside the window asked for (repeats): ignored
    duplicate_rows_collapsed: int  # exact duplicate rows in a response: stored once
    zero_volume_bars: int
    gaps: tuple[VenueGap, ...]  # bars the venue has not got: reported, not filled
    missing_bars: int
    fetch_secs: float
    write_secs: float
    secs: float

    @property
    def bars_per_sec(self) -> float:
        return self.bars_written / self.secs if self.secs > 0 else 0.0


def _to_ms(value: date | datetime, end: bool) -> int:
    """A date is a whole UTC day (`end` inclusive -> the next midnight); a datetime is taken as is."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC) + timedelta(days=1 if end else 0)
    return int(moment.timestamp() * 1000)


def _now_ms() -> int:
    return time.time_ns() // NANOS_PER_MS


def _ms_to_datetime(ms: int) -> datetime:
    return nanos_to_datetime(ms * NANOS_PER_MS)


def _normalise_page(frame: pl.DataFrame) -> pl.DataFrame:
    missing = [name for name in KLINE_SCHEMA if name not in frame.columns]
    if missing:
        raise TypeError(f"adapter returned a kline frame without {missing}")
    return frame.select([pl.col(name).cast(dtype) for name, dtype in KLINE_SCHEMA.items()])


def download_klines(
    venue: HistoricalVenue,
    instrument: Instrument,
    symbol: str,
    interval: KlineInterval | str,
    start: date | datetime,
    end: date | datetime,
    catalog_path: str | Path,
    *,
    caller: VenueCaller | None = None,
    commit_every_pages: int = DEFAULT_COMMIT_EVERY_PAGES,
    recheck_gaps: bool = False,
    now_ms: Callable[[], int] = _now_ms,
    progress: Callable[[int, int], None] | None = None,
) -> KlineDownloadResult:
    """Download the closed klines of `symbol` opening in [start, end) into the catalog (a date `end` is
    inclusive), skipping what the catalog already holds. `progress(done_slots, total_slots)` follows pages."""
    started = time.perf_counter()
    kline_interval = parse_interval(interval)
    caller = caller or VenueCaller()
    if commit_every_pages < 1:
        raise ConfigError(f"commit_every_pages must be >= 1, got {commit_every_pages}")
    step_ms = kline_interval.duration_ns // NANOS_PER_MS
    range_start = -(-_to_ms(start, end=False) // step_ms) * step_ms  # first grid time at or after start
    requested_end = _to_ms(end, end=True) // step_ms * step_ms
    now = now_ms()
    range_end = min(requested_end, now // step_ms * step_ms)  # open times of closed bars only
    what = f"{venue.market.value} {symbol} {kline_interval.value}"
    stats_before = RequestStats(**vars(caller.stats))
    counters = {"pages": 0, "outside": 0, "collapsed": 0, "zero_volume": 0, "written": 0}
    fetch_secs = write_secs = 0.0

    with catalog_writer(catalog_path) as root:
        write_instrument(root, instrument)
        bars = CatalogBarStore(root, instrument, kline_interval)
        stored = bars.stored_open_ms()
        in_range = (stored >= range_start) & (stored < range_end)
        already = int(in_range.sum())
        checkpoint = Checkpoint.load(
            checkpoint_path(root, venue.market, symbol, kline_interval.value),
            {
                "market": venue.market.value,
                "symbol": symbol,
                "interval": kline_interval.value,
                "bar_type": bars.bar_type,
            },
        )
        if recheck_gaps:
            checkpoint.empty_spans = subtract_spans(checkpoint.empty_spans, [(range_start, range_end)])
        known = merge_spans([*runs_of(stored, step_ms), *checkpoint.empty_spans])
        missing = subtract_spans([(range_start, range_end)], known) if range_end > range_start else []
        windows = plan_windows(missing, step_ms, venue.kline_page_limit)
        total_slots = sum((window_end - window_start) // step_ms for window_start, window_end in windows)
        log.info(
            "download_planned",
            what=what,
            bars_stored=already,
            bars_to_fetch=total_slots,
            pages=len(windows),
            range=_span_text((range_start, range_end)) if range_end > range_start else "nothing closed yet",
        )
        done_slots = 0
        pending_frames: list[pl.DataFrame] = []
        pending_windows: list[Span] = []

        def commit() -> None:
            nonlocal write_secs
            write_started = time.perf_counter()
            frame = pl.concat(pending_frames) if pending_frames else pl.DataFrame(schema=KLINE_SCHEMA)
            unique = frame.unique(subset=["ts_open", *OHLCV_COLUMNS], keep="first").sort("ts_open")
            counters["collapsed"] += frame.height - unique.height
            chunk_span = (pending_windows[0][0], pending_windows[-1][1])
            if unique.height:
                report = validate_klines(
                    unique,
                    kline_interval,
                    source=f"{what} {_span_text(chunk_span)}",
                    price_precision=instrument.price_precision,
                    size_precision=instrument.size_precision,
                )
                if not report.passed():
                    raise DataError(
                        f"{what}: the venue's bars for {_span_text(chunk_span)} fail validation: "
                        f"{report.summary()}; nothing of that range was written (bars before it are stored); "
                        f"check the instrument definition, or leave the range out with --start/--end",
                    )
                counters["zero_volume"] += report.zero_volume_bars
                bars.add(encode_bars(unique, instrument, kline_interval))
                counters["written"] += unique.height
            received = runs_of(unique["ts_open"].dt.epoch("ms").to_numpy(), step_ms)
            empty = subtract_spans(pending_windows, received)
            settled = subtract_spans(empty, [(now - UNSETTLED_MS, 2**62)])
            checkpoint.empty_spans = merge_spans([*checkpoint.empty_spans, *settled])
            checkpoint.save()  # after the catalog write: a crash in between leaves the catalog ahead
            pending_frames.clear()
            pending_windows.clear()
            write_secs += time.perf_counter() - write_started

        def fetch_window(window_start: int, window_end: int) -> None:
            """One window; a FULL page that leaves holes in it (the venue repeated bars, or cut the page
            shorter than we expect) is followed by requests for the holes, up to MAX_FOLLOW_UPS."""
            to_fetch, follow_ups = [(window_start, window_end)], 0
            while to_fetch:
                start_ms, end_ms = to_fetch.pop(0)
                page = caller.call(
                    lambda a=start_ms, b=end_ms: venue.fetch_klines(
                        symbol, kline_interval, a, b - step_ms, venue.kline_page_limit
                    ),
                    f"{what} {_span_text((start_ms, end_ms))}",
                )
                frame = _normalise_page(page.frame)
                open_ms = frame["ts_open"].dt.epoch("ms")
                inside = (open_ms >= start_ms) & (open_ms < end_ms)
                counters["outside"] += frame.height - int(inside.sum())
                counters["pages"] += 1
                pending_frames.append(frame.filter(inside))
                caller.pause(page.pause_secs)
                if frame.height >= venue.kline_page_limit and follow_ups < MAX_FOLLOW_UPS:
                    received = np.unique(open_ms.filter(inside).to_numpy())
                    holes = subtract_spans([(start_ms, end_ms)], runs_of(received, step_ms))
                    follow_ups += len(holes)
                    to_fetch.extend(holes)
            pending_windows.append((window_start, window_end))

        for window_start, window_end in windows:
            fetch_started = time.perf_counter()
            fetch_window(window_start, window_end)
            fetch_secs += time.perf_counter() - fetch_started
            done_slots += (window_end - window_start) // step_ms
            if len(pending_windows) >= commit_every_pages:
                commit()
            if progress:
                progress(done_slots, total_slots)
        if pending_windows:
            commit()
        bars.compact()
        stored_after = bars.stored_open_ms()

    in_range_after = stored_after[(stored_after >= range_start) & (stored_after < range_end)]
    gap_spans = subtract_spans([(range_start, range_end)], runs_of(in_range_after, step_ms))
    gaps = tuple(
        VenueGap(_ms_to_datetime(a), _ms_to_datetime(b - step_ms), (b - a) // step_ms) for a, b in gap_spans
    )
    stats = caller.stats
    result = KlineDownloadResult(
        market=venue.market.value,
        symbol=symbol,
        instrument_id=instrument.id.value,
        bar_type=bars.bar_type,
        catalog_path=Path(catalog_path),
        range_start=_ms_to_datetime(range_start),
        range_end=_ms_to_datetime(max(range_start, range_end)),
        bars_already_stored=already,
        bars_written=counters["written"],
        bars_in_range=int(in_range_after.size),
        requests=stats.requests - stats_before.requests,
        pages=counters["pages"],
        retries=stats.retries - stats_before.retries,
        rate_limited=stats.rate_limited - stats_before.rate_limited,
        waited_secs=stats.waited_secs - stats_before.waited_secs,
        rows_outside_window=counters["outside"],
        duplicate_rows_collapsed=counters["collapsed"],
        zero_volume_bars=counters["zero_volume"],
        gaps=gaps,
        missing_bars=sum(gap.missing_bars for gap in gaps),
        fetch_secs=fetch_secs,
        write_secs=write_secs,
        secs=time.perf_counter() - started,
    )
    log.info(
        "download_finished",
        what=what,
        bars_written=result.bars_written,
        bars_in_range=result.bars_in_range,
        requests=result.requests,
        retries=result.retries,
        gaps=len(gaps),
        missing_bars=result.missing_bars,
        secs=round(result.secs, 2),
    )
    for gap in gaps[:GAPS_SHOWN]:
        log.warning("venue_gap_not_filled", what=what, gap=str(gap))
    return result


# -- funding rates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FundingDownloadResult:
    market: str
    symbol: str
    instrument_id: str
    catalog_path: Path
    range_start: datetime
    range_end: datetime
    records_written: int
    records_in_range: int
    first_funding: datetime | None
    last_funding: datetime | None
    requests: int
    retries: int
    waited_secs: float
    rows_outside_window: int
    largest_spacing_hours: float  # longest time between two records in range (a venue gap shows here)
    secs: float


def download_funding_rates(
    venue: HistoricalVenue,
    instrument: Instrument,
    symbol: str,
    start: date | datetime,
    end: date | datetime,
    catalog_path: str | Path,
    *,
    caller: VenueCaller | None = None,
    commit_every_pages: int = DEFAULT_COMMIT_EVERY_PAGES,
    now_ms: Callable[[], int] = _now_ms,
    progress: Callable[[int, int], None] | None = None,
) -> FundingDownloadResult:
    """Download the funding rates of `symbol` in [start, end) (a date `end` is inclusive) into the catalog
    as FundingRateUpdate, skipping spans an earlier run fetched."""
    started = time.perf_counter()
    caller = caller or VenueCaller()
    if venue.funding_page_limit <= 0:
        raise ConfigError(f"{venue.market.value} has no funding rates; use a perpetual market")
    now = now_ms()
    range_start, range_end = _to_ms(start, end=False), min(_to_ms(end, end=True), now)
    what = f"{venue.market.value} {symbol} funding"
    instrument_id = instrument.id.value
    stats_before = RequestStats(**vars(caller.stats))
    counters = {"written": 0, "outside": 0}

    with catalog_writer(catalog_path) as root:
        write_instrument(root, instrument)
        stored = read_funding_table(root, instrument_id)
        checkpoint = Checkpoint.load(
            checkpoint_path(root, venue.market, symbol, "funding"),
            {
                "market": venue.market.value,
                "symbol": symbol,
                "series": "funding",
                "instrument_id": instrument_id,
            },
        )
        stored_rows = 0 if stored is None else stored.num_rows
        if checkpoint.records > stored_rows:  # the catalog lost rows since: trust only the catalog
            log.warning("checkpoint_ignored", path=str(checkpoint.path), reason="catalog holds fewer rows")
            checkpoint = Checkpoint(checkpoint.path, checkpoint.key)
        missing = subtract_spans([(range_start, range_end)], checkpoint.fetched_spans)
        # Funding is at most hourly on both venues: (limit - 1) hours hold at most `limit` records.
        windows = plan_windows(missing, MS_PER_HOUR, max(1, venue.funding_page_limit - 1))
        pending_frames: list[pl.DataFrame] = []
        pending_windows: list[Span] = []

        def commit() -> None:
            frame = pl.concat(pending_frames) if pending_frames else pl.DataFrame(schema=FUNDING_FRAME_SCHEMA)
            unique = frame.unique(keep="first")
            if unique["ts_event"].n_unique() != unique.height:
                raise DataError(
                    f"{what}: the venue sent two different rates for one funding time in "
                    f"{_span_text((pending_windows[0][0], pending_windows[-1][1]))}; nothing of it was "
                    f"written",
                )
            if unique.height:
                merge = merge_funding_rates(root, instrument_id, unique)
                counters["written"] += merge.added
                checkpoint.records = merge.total
            settled = subtract_spans(pending_windows, [(now - UNSETTLED_MS, 2**62)])
            checkpoint.fetched_spans = merge_spans([*checkpoint.fetched_spans, *settled])
            checkpoint.save()
            pending_frames.clear()
            pending_windows.clear()

        for index, (window_start, window_end) in enumerate(windows):
            page = caller.call(
                lambda ws=window_start, we=window_end: venue.fetch_funding_rates(
                    symbol, ws, we - 1, venue.funding_page_limit
                ),
                f"{what} {_span_text((window_start, window_end))}",
            )
            frame = page.frame.select(
                [pl.col(name).cast(dtype) for name, dtype in FUNDING_FRAME_SCHEMA.items()]
            )
            ts_ms = frame["ts_event"] // NANOS_PER_MS
            inside = (ts_ms >= window_start) & (ts_ms < window_end)
            counters["outside"] += frame.height - int(inside.sum())
            pending_frames.append(frame.filter(inside))
            pending_windows.append((window_start, window_end))
            if len(pending_windows) >= commit_every_pages:
                commit()
            if progress:
                progress(index + 1, len(windows))
            caller.pause(page.pause_secs)
        if pending_windows:
            commit()
        final = read_funding_table(root, instrument_id)

    times = (
        np.empty(0, dtype=np.int64) if final is None else final.column("ts_event").to_numpy().astype(np.int64)
    )
    times = times[(times >= range_start * NANOS_PER_MS) & (times < range_end * NANOS_PER_MS)]
    spacing_hours = float(np.diff(times).max() / (MS_PER_HOUR * NANOS_PER_MS)) if times.size > 1 else 0.0
    stats = caller.stats
    result = FundingDownloadResult(
        market=venue.market.value,
        symbol=symbol,
        instrument_id=instrument_id,
        catalog_path=Path(catalog_path),
        range_start=_ms_to_datetime(range_start),
        range_end=_ms_to_datetime(max(range_start, range_end)),
        records_written=counters["written"],
        records_in_range=int(times.size),
        first_funding=nanos_to_datetime(int(times[0])) if times.size else None,
        last_funding=nanos_to_datetime(int(times[-1])) if times.size else None,
        requests=stats.requests - stats_before.requests,
        retries=stats.retries - stats_before.retries,
        waited_secs=stats.waited_secs - stats_before.waited_secs,
        rows_outside_window=counters["outside"],
        largest_spacing_hours=spacing_hours,
        secs=time.perf_counter() - started,
    )
    log.info(
        "funding_download_finished",
        what=what,
        records_written=result.records_written,
        records_in_range=result.records_in_range,
        requests=result.requests,
        secs=round(result.secs, 2),
    )
    return result


# -- instruments -------------------------------------------------------------------------------------


def resolve_instruments(
    venue: HistoricalVenue, symbols: Sequence[str], caller: VenueCaller | None = None
) -> dict[str, Instrument]:
    """The venue's definitions of `symbols`; a symbol the venue does not list is a ConfigError with
    suggestions, one it lists but we cannot parse is a DataError saying why."""
    caller = caller or VenueCaller()
    listing = caller.call(lambda: venue.fetch_instruments(list(symbols)), f"{venue.market.value} instruments")
    found: dict[str, Instrument] = {}
    for symbol in symbols:
        if symbol in listing.instruments:
            found[symbol] = listing.instruments[symbol]
        elif symbol in listing.skipped:
            raise DataError(
                f"{venue.market.value} lists {symbol} but its definition cannot be used: "
                f"{listing.skipped[symbol]}"
            )
        else:
            close = difflib.get_close_matches(symbol, listing.listed or list(listing.instruments), n=5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{venue.market.value} does not list the symbol '{symbol}'{hint}")
    return found


def store_instruments(catalog_path: str | Path, instruments: Sequence[Instrument]) -> int:
    """Write instrument definitions into the catalog (unchanged ones are left alone); returns how many
    changed."""
    with catalog_writer(catalog_path) as root:
        return sum(write_instrument(root, instrument) for instrument in instruments)


def kline_rows_frame(rows: list, venue: str) -> pl.DataFrame:
    """Kline rows [open time ms, open, high, low, close, volume, ...] (numbers or strings, in any
    order) -> a (ts_open, open, high, low, close, volume) frame; malformed rows are transient errors."""
    try:
        columns = list(zip(*rows, strict=True)) if rows else [[]] * 6
        frame = pl.DataFrame(
            {
                "ts_open": pl.Series(columns[0]).cast(pl.Int64) * 1_000_000,
                **{
                    name: pl.Series(columns[index], dtype=pl.String).cast(pl.Float64)
                    for index, name in enumerate(("open", "high", "low", "close", "volume"), start=1)
                },
            }
        )
    except (TypeError, ValueError, IndexError, pl.exceptions.PolarsError) as exc:
        raise VenueTransientError(f"malformed {venue} kline rows ({exc})") from exc
    return frame.with_columns(pl.col("ts_open").cast(pl.Datetime("ns", "UTC")))
