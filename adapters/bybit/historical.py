"""Bybit v5 historical data through pybit: linear klines, funding history, instruments-info.

The venue side of qa_engine.data.download (`HistoricalVenue`) for Bybit linear (USDT) perpetuals. The
library does pagination, retries, checkpoints and catalog writes; this file asks pybit for one page and
translates what comes back.

- Endpoints: GET /v5/market/kline (category=linear, at most 1000 per request, newest first),
  /v5/market/funding/history (at most 200, newest first), /v5/market/instruments-info (cursor pages).
- `base_url` replaces the host: pybit's HTTP session builds every URL from its `endpoint` attribute
  (`https://api.bybit.com` by default), which we set per session.
- pybit's own retries are switched off (`max_retries=1`, `retry_codes` naming no real code, no
  `force_retry`), so back-off is ours and testable: it would otherwise sleep on retCode 10006 itself.
- Errors: pybit raises `FailedRequestError` for a non-200 HTTP status (and, with status 409, for a body that
  is not JSON: truncated), `InvalidRequestError` for a non-zero retCode; requests raises its own for timeouts
  and broken connections. Rate limits: retCode 10006 / 10018 and HTTP 429 / 403 (Bybit answers 403 when an
  IP breaks its limit); the wait comes from `Retry-After` or `X-Bapi-Limit-Reset-Timestamp`. Server errors
  (5xx, retCode 10000 / 10016), timeouts, broken and truncated bodies are transient; anything else (e.g.
  retCode 10001 "params error" for a bad symbol or interval) is a rejection. A host name that does not
  resolve and a refused connection are `VenueUnreachableError` (not retried before the venue answered once).
- Rate-limit headers: when `X-Bapi-Limit-Status` (requests left in the window) reaches 0, we ask for a
  pause until `X-Bapi-Limit-Reset-Timestamp`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import polars as pl
import requests
from pybit.exceptions import FailedRequestError
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP

from adapters.bybit.providers import linear_instruments_from_payload
from qa_engine.data.download import FundingPage
from qa_engine.data.download import InstrumentListing
from qa_engine.data.download import KlinePage
from qa_engine.data.download import VenueRateLimitedError
from qa_engine.data.download import VenueRejectedError
from qa_engine.data.download import VenueTransientError
from qa_engine.data.download import kline_rows_frame
from qa_engine.data.download import unreachable_error
from qa_engine.data.intervals import KlineInterval
from qa_engine.data.markets import Market

CATEGORY = "linear"
KLINE_PAGE_LIMIT = 1000
FUNDING_PAGE_LIMIT = 200
INSTRUMENTS_PAGE_LIMIT = 1000
BYBIT_INTERVALS = {
    KlineInterval.MINUTE_1: "1",
    KlineInterval.MINUTE_5: "5",
    KlineInterval.MINUTE_15: "15",
    KlineInterval.HOUR_1: "60",
    KlineInterval.HOUR_4: "240",
    KlineInterval.DAY_1: "D",
}
RATE_LIMIT_CODES = {10006, 10018}  # too many visits; IP rate limit
TRANSIENT_CODES = {10000, 10016}  # server timeout; server error
RATE_LIMIT_STATUSES = {429, 403}
NOT_JSON_STATUS = 409  # pybit's FailedRequestError status for a body it could not decode
RESET_HEADER = "X-Bapi-Limit-Reset-Timestamp"
REMAINING_HEADER = "X-Bapi-Limit-Status"
NO_RETRY_CODES = {-1}  # pybit's retry list must not be empty (it would fall back to its defaults)
DEFAULT_TIMEOUT_SECS = 10.0


class BybitHistoricalVenue:
    """Bybit linear perpetual history over pybit (implements HistoricalVenue)."""

    market = Market.BYBIT_LINEAR
    kline_page_limit = KLINE_PAGE_LIMIT
    funding_page_limit = FUNDING_PAGE_LIMIT

    def __init__(
        self,
        base_url: str | None = None,
        timeout_secs: float = DEFAULT_TIMEOUT_SECS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._session = HTTP(
            testnet=False,
            timeout=timeout_secs,
            max_retries=1,
            retry_codes=NO_RETRY_CODES,
            force_retry=False,
            return_response_headers=True,
        )
        if base_url:
            self._session.endpoint = base_url.rstrip("/")

    def _request(self, call: Callable[[], Any]) -> tuple[dict[str, Any], float]:
        """Run one pybit call; returns (result object, pause_secs) or raises a venue error."""
        try:
            payload, _, headers = call()
        except InvalidRequestError as exc:
            raise self._translate_code(exc) from exc
        except FailedRequestError as exc:
            raise self._translate_status(exc) from exc
        except requests.exceptions.RequestException as exc:
            raise self._network_error(exc) from exc
        result = payload.get("result") if isinstance(payload, dict) else None
        if not isinstance(result, dict):
            raise VenueTransientError(f"answer without a result object: {str(payload)[:200]}")
        return result, self._pause_secs(headers)

    def _network_error(self, exc: requests.exceptions.RequestException) -> Exception:
        unreachable = unreachable_error(exc, self._session.endpoint)
        return unreachable or VenueTransientError(f"{type(exc).__name__}: {exc}")

    def _wait_secs(self, headers: Mapping[str, str] | None) -> float | None:
        if not headers:
            return None
        retry_after = headers.get("Retry-After")
        if retry_after and retry_after.strip().isdigit():
            return float(retry_after)
        reset = headers.get(RESET_HEADER)
        if reset and reset.strip().isdigit():
            return max(0.0, int(reset) / 1000 - self._clock())
        return None

    def _pause_secs(self, headers: Mapping[str, str]) -> float:
        remaining = headers.get(REMAINING_HEADER)
        if remaining is None or not remaining.strip().isdigit() or int(remaining) > 0:
            return 0.0
        return self._wait_secs({RESET_HEADER: headers.get(RESET_HEADER, "")}) or 0.0

    def _translate_code(self, exc: InvalidRequestError) -> Exception:
        text = f"retCode {exc.status_code}: {exc.message}"
        if exc.status_code in RATE_LIMIT_CODES:
            return VenueRateLimitedError(text, self._wait_secs(exc.resp_headers))
        if exc.status_code in TRANSIENT_CODES:
            return VenueTransientError(text)
        return VenueRejectedError(text)

    def _translate_status(self, exc: FailedRequestError) -> Exception:
        status = exc.status_code
        text = f"HTTP {status}: {exc.message}"
        if status == NOT_JSON_STATUS and exc.resp_headers is None:
            return VenueTransientError(f"malformed or truncated response ({exc.message})")
        if status in RATE_LIMIT_STATUSES:
            hint = (
                " (Bybit answers 403 to an IP over its limit, or from a blocked region)"
                if status == 403
                else ""
            )
            return VenueRateLimitedError(text + hint, self._wait_secs(exc.resp_headers))
        if status >= 500:
            return VenueTransientError(text)
        return VenueRejectedError(text)

    def fetch_klines(
        self, symbol: str, interval: KlineInterval, start_ms: int, end_ms: int, limit: int
    ) -> KlinePage:
        result, pause = self._request(
            lambda: self._session.get_kline(
                category=CATEGORY,
                symbol=symbol,
                interval=BYBIT_INTERVALS[interval],
                start=start_ms,
                end=end_ms,
                limit=limit,
            )
        )
        return KlinePage(kline_frame(result.get("list")), pause)

    def fetch_funding_rates(self, symbol: str, start_ms: int, end_ms: int, limit: int) -> FundingPage:
        result, pause = self._request(
            lambda: self._session.get_funding_rate_history(
                category=CATEGORY, symbol=symbol, startTime=start_ms, endTime=end_ms, limit=limit
            )
        )
        return FundingPage(funding_frame(result.get("list")), pause)

    def fetch_instruments(self, symbols: Sequence[str] | None = None) -> InstrumentListing:
        if symbols is not None and len(symbols) <= 20:  # one small request per symbol
            entries, server_time_ms = [], 0
            for symbol in symbols:
                page, page_time, _ = self._instruments_page(symbol=symbol)
                entries.extend(page)
                server_time_ms = max(server_time_ms, page_time)
            listing = linear_instruments_from_payload(entries, server_time_ms, symbols)
            if len(listing.instruments) + len(listing.skipped) == len(symbols):
                return listing
        entries, server_time_ms, cursor = [], 0, None
        while True:  # the whole listing, page by page (also gives suggestions for unknown symbols)
            page, page_time, cursor = self._instruments_page(cursor=cursor)
            entries.extend(page)
            server_time_ms = max(server_time_ms, page_time)
            if not cursor:
                break
        return linear_instruments_from_payload(entries, server_time_ms, symbols)

    def _instruments_page(
        self, symbol: str | None = None, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], int, str | None]:
        """(entries, server time ms, next cursor) of one instruments-info page."""
        query: dict[str, Any] = {"category": CATEGORY, "limit": INSTRUMENTS_PAGE_LIMIT}
        if symbol:
            query["symbol"] = symbol
        if cursor:
            query["cursor"] = cursor
        try:
            payload, _, _ = self._session.get_instruments_info(**query)
        except InvalidRequestError as exc:
            if symbol and exc.status_code not in RATE_LIMIT_CODES | TRANSIENT_CODES:
                return [], 0, None  # an unknown symbol: rejected by the venue
            raise self._translate_code(exc) from exc
        except FailedRequestError as exc:
            raise self._translate_status(exc) from exc
        except requests.exceptions.RequestException as exc:
            raise self._network_error(exc) from exc
        result = payload.get("result") or {}
        entries = result.get("list") or []
        server_time = int(payload.get("time") or self._clock() * 1000)
        return entries, server_time, result.get("nextPageCursor") or None


def kline_frame(rows: Any) -> pl.DataFrame:
    """Bybit kline rows ["startTime ms", "open", "high", "low", "close", "volume", "turnover"] (strings,
    newest first) -> KLINE_SCHEMA frame."""
    if not isinstance(rows, list):
        raise VenueTransientError(f"kline list is not a list: {str(rows)[:200]}")
    return kline_rows_frame(rows, "Bybit")


def funding_frame(rows: Any) -> pl.DataFrame:
    """Bybit funding history {fundingRate "0.0001", fundingRateTimestamp "ms"} -> ts_event (ns), rate."""
    if not isinstance(rows, list):
        raise VenueTransientError(f"funding list is not a list: {str(rows)[:200]}")
    try:
        return pl.DataFrame(
            {
                "ts_event": [int(row["fundingRateTimestamp"]) * 1_000_000 for row in rows],
                "rate": [str(row["fundingRate"]) for row in rows],
            },
            schema={"ts_event": pl.Int64, "rate": pl.String},
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise VenueTransientError(f"malformed funding rows ({exc})") from exc


def bybit_linear_venue(
    base_url: str | None = None, timeout_secs: float = DEFAULT_TIMEOUT_SECS
) -> BybitHistoricalVenue:
    return BybitHistoricalVenue(base_url, timeout_secs)
