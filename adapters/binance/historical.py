"""Binance historical data through python-binance: klines, funding rates, exchangeInfo instruments.

The venue side of qa_engine.data.download (`HistoricalVenue`). The library does pagination, retries,
checkpoints and catalog writes; this file only asks python-binance for one page and translates what comes
back (rows, errors, rate-limit headers).

- Endpoints: spot GET /api/v3/klines (at most 1000 per request), /api/v3/exchangeInfo; USD-M futures
  GET /fapi/v1/klines (at most 1500), /fapi/v1/fundingRate (at most 1000), /fapi/v1/exchangeInfo.
- `base_url` replaces the host: python-binance builds URLs from the client's `API_URL` (`<host>/api`) and
  `FUTURES_URL` (`<host>/fapi`) attributes, which we set per client. No ping at construction.
- Errors: python-binance raises `BinanceAPIException` (with `status_code` and the response) for any non-2xx
  answer and `BinanceRequestException` for a 2xx body that is not JSON (truncated); requests raises its own
  exceptions for timeouts and broken connections. HTTP 429 and 418 are rate limits (`Retry-After` honoured);
  5xx, timeouts, broken and truncated bodies are transient; any other 4xx (e.g. -1121 invalid symbol,
  -1120 invalid interval) is a rejection. A host name that does not resolve and a refused connection are
  `VenueUnreachableError` (the caller does not retry them before the venue has answered once).
  python-binance does not retry by itself.
- Rate-limit headers: `X-MBX-USED-WEIGHT-1M` against the venue's request-weight limit per minute (futures
  2400, spot 6000): above 90 % we ask for a pause until the next minute starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import polars as pl
import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException
from binance.exceptions import BinanceRequestException

from adapters.binance.providers import futures_instruments_from_exchange_info
from adapters.binance.providers import spot_instruments_from_exchange_info
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

RATE_LIMIT_STATUSES = (429, 418)  # 418: IP banned after ignoring 429s
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
WEIGHT_LIMIT_PER_MINUTE = {Market.BINANCE_FUTURES: 2400, Market.BINANCE_SPOT: 6000}
PAUSE_AT_WEIGHT_FRACTION = 0.9
KLINE_PAGE_LIMIT = {Market.BINANCE_FUTURES: 1500, Market.BINANCE_SPOT: 1000}
FUNDING_PAGE_LIMIT = {Market.BINANCE_FUTURES: 1000, Market.BINANCE_SPOT: 0}
DEFAULT_TIMEOUT_SECS = 10.0


class BinanceHistoricalVenue:
    """Binance spot or USD-M futures history over python-binance (implements HistoricalVenue)."""

    def __init__(
        self,
        market: Market,
        base_url: str | None = None,
        timeout_secs: float = DEFAULT_TIMEOUT_SECS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if market not in KLINE_PAGE_LIMIT:
            raise ValueError(f"{market} is not a Binance market")
        self.market = market
        self.kline_page_limit = KLINE_PAGE_LIMIT[market]
        self.funding_page_limit = FUNDING_PAGE_LIMIT[market]
        self._clock = clock
        self._client = Client(ping=False, requests_params={"timeout": timeout_secs})
        if base_url:
            host = base_url.rstrip("/")
            self._client.API_URL = f"{host}/api"
            self._client.FUTURES_URL = f"{host}/fapi"

    @property
    def _futures(self) -> bool:
        return self.market == Market.BINANCE_FUTURES

    def _request(self, call: Callable[[], Any]) -> tuple[Any, float]:
        """Run one python-binance call; returns (payload, pause_secs) or raises a venue error."""
        try:
            payload = call()
        except BinanceAPIException as exc:
            raise _translate(exc) from exc
        except BinanceRequestException as exc:
            raise VenueTransientError(f"malformed or truncated response ({exc.message[:200]})") from exc
        except requests.exceptions.RequestException as exc:
            raise (
                unreachable_error(exc, self._host_url) or VenueTransientError(f"{type(exc).__name__}: {exc}")
            ) from exc
        return payload, self._pause_secs()

    @property
    def _host_url(self) -> str:
        return self._client.FUTURES_URL if self._futures else self._client.API_URL

    def _pause_secs(self) -> float:
        response = self._client.response
        used = response.headers.get(USED_WEIGHT_HEADER) if response is not None else None
        if used is None or not used.isdigit():
            return 0.0
        if int(used) < PAUSE_AT_WEIGHT_FRACTION * WEIGHT_LIMIT_PER_MINUTE[self.market]:
            return 0.0
        return 60.0 - self._clock() % 60.0 + 0.5  # the weight window resets each minute

    def fetch_klines(
        self, symbol: str, interval: KlineInterval, start_ms: int, end_ms: int, limit: int
    ) -> KlinePage:
        method = self._client.futures_klines if self._futures else self._client.get_klines
        rows, pause = self._request(
            lambda: method(
                symbol=symbol, interval=interval.value, startTime=start_ms, endTime=end_ms, limit=limit
            )
        )
        return KlinePage(kline_frame(rows), pause)

    def fetch_funding_rates(self, symbol: str, start_ms: int, end_ms: int, limit: int) -> FundingPage:
        if not self._futures:
            raise VenueRejectedError("Binance spot has no funding rates")
        rows, pause = self._request(
            lambda: self._client.futures_funding_rate(
                symbol=symbol, startTime=start_ms, endTime=end_ms, limit=limit
            )
        )
        return FundingPage(funding_frame(rows), pause)

    def fetch_instruments(self, symbols: Sequence[str] | None = None) -> InstrumentListing:
        if self._futures:
            payload, _ = self._request(self._client.futures_exchange_info)
            return futures_instruments_from_exchange_info(_mapping(payload), symbols)
        payload, _ = self._request(self._client.get_exchange_info)
        return spot_instruments_from_exchange_info(_mapping(payload), symbols)


def _mapping(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or "symbols" not in payload:
        raise VenueTransientError(f"exchangeInfo answer is not the expected object: {str(payload)[:200]}")
    return payload


def _translate(exc: BinanceAPIException) -> Exception:
    status = exc.status_code
    text = f"HTTP {status}, code {exc.code}: {exc.message}"
    if status in RATE_LIMIT_STATUSES:
        retry_after = exc.response.headers.get("Retry-After") if exc.response is not None else None
        seconds = float(retry_after) if retry_after and retry_after.strip().isdigit() else None
        return VenueRateLimitedError(text, seconds)
    if status >= 500:
        return VenueTransientError(text)
    return VenueRejectedError(text)


def kline_frame(rows: Any) -> pl.DataFrame:
    """Binance kline arrays [open_time ms, "open", "high", "low", "close", "volume", ...] -> KLINE_SCHEMA."""
    if not isinstance(rows, list):
        raise VenueTransientError(f"kline answer is not a list: {str(rows)[:200]}")
    return kline_rows_frame(rows, "Binance")


def funding_frame(rows: Any) -> pl.DataFrame:
    """Binance fundingRate objects {fundingTime ms, fundingRate "0.0001", ...} -> ts_event (ns), rate."""
    if not isinstance(rows, list):
        raise VenueTransientError(f"fundingRate answer is not a list: {str(rows)[:200]}")
    try:
        return pl.DataFrame(
            {
                "ts_event": [int(row["fundingTime"]) * 1_000_000 for row in rows],
                "rate": [str(row["fundingRate"]) for row in rows],
            },
            schema={"ts_event": pl.Int64, "rate": pl.String},
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise VenueTransientError(f"malformed funding rows ({exc})") from exc


def binance_futures_venue(
    base_url: str | None = None, timeout_secs: float = DEFAULT_TIMEOUT_SECS
) -> BinanceHistoricalVenue:
    return BinanceHistoricalVenue(Market.BINANCE_FUTURES, base_url, timeout_secs)


def binance_spot_venue(
    base_url: str | None = None, timeout_secs: float = DEFAULT_TIMEOUT_SECS
) -> BinanceHistoricalVenue:
    return BinanceHistoricalVenue(Market.BINANCE_SPOT, base_url, timeout_secs)
