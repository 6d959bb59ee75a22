"""A Binance + Bybit v5 REST server on 127.0.0.1 for download tests: real bars, real payload formats, faults.

It speaks the venues' response formats: Binance kline arrays (GET /fapi/v1/klines, /api/v3/klines), Binance
fundingRate objects and exchangeInfo (the bundled real snapshots of adapters/binance/snapshots), and the Bybit
v5 envelope (retCode / retMsg / result / retExtInfo / time, as in tests/data/bybit_api_samples) for
/v5/market/kline (strings, newest first), /v5/market/funding/history and /v5/market/instruments-info (the
bundled real snapshot adapters/bybit/snapshots/linear_instruments.json plus the real TSLAUSDT sample).

Bars are whatever the test hands in (real slices, tests.factories.real_klines). Binance kline fields those
klines lack (quote volume, trade count, taker-buy volumes) are served as "0" placeholders; the downloader
does not read them. Funding series are whatever the test hands in.

Faults (`Fault`) hit the matching requests in order: rate limits (Binance 429/418 with Retry-After, Bybit
retCode 10006 with X-Bapi-Limit-Reset-Timestamp), 5xx, a slow answer (client timeout), a truncated body
(Content-Length promised, connection closed half-way) or a short body (invalid JSON), and a page that
repeats bars. A venue-side gap is simply bars missing from the served frame. Every request is logged.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import numpy as np
import polars as pl

REPO_ROOT = Path(__file__).resolve().parents[1]
BINANCE_SNAPSHOTS = REPO_ROOT / "adapters" / "binance" / "snapshots"
BYBIT_INSTRUMENTS = REPO_ROOT / "adapters" / "bybit" / "snapshots" / "linear_instruments.json"
BYBIT_SAMPLES = REPO_ROOT / "tests" / "data" / "bybit_api_samples"
INTERVAL_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
BYBIT_INTERVALS = {"1": "1m", "5": "5m", "15": "15m", "60": "1h", "240": "4h", "D": "1d"}
KLINE_LIMITS = {"binance-futures": 1500, "binance-spot": 1000, "bybit-linear": 1000}
FUNDING_LIMITS = {"binance-futures": 1000, "bybit-linear": 200}


@dataclass
class Fault:
    """A fault served instead of (or around) the normal answer of matching requests.

    kind: rate_limit | ban | server_error | timeout | truncated | short_body | repeat
    path: the request path must contain this ("kline" by default); skip: matching requests let through
    first; count: how many matching requests get the fault.
    """

    kind: str
    path: str = "kline"
    count: int = 1
    skip: int = 0
    retry_after_secs: int = 7
    status: int = 503
    delay_secs: float = 2.0
    repeat_bars: int = 100
    hits: int = 0
    seen: int = 0


@dataclass(frozen=True)
class Served:
    path: str
    params: dict[str, str]
    status: int
    fault: str | None
    rows: int


def _number(value: float) -> str:
    return np.format_float_positional(value, trim="-")


@dataclass
class _Series:
    """One kline series, pre-rendered as JSON rows in each venue's format."""

    open_ms: np.ndarray
    rows: list[str]


def _render_klines(frame: pl.DataFrame, market: str, interval: str) -> _Series:
    open_ms = frame["ts_open"].dt.epoch("ms").to_numpy().astype(np.int64)
    step = INTERVAL_MS[interval]
    values = [frame[name].to_list() for name in ("open", "high", "low", "close", "volume")]
    rows = []
    for index, start in enumerate(open_ms.tolist()):
        o, h, low, c, v = (_number(column[index]) for column in values)
        if market.startswith("binance"):
            rows.append(f'[{start},"{o}","{h}","{low}","{c}","{v}",{start + step - 1},"0",0,"0","0","0"]')
        else:
            rows.append(f'["{start}","{o}","{h}","{low}","{c}","{v}","0"]')
    return _Series(open_ms, rows)


class LoopbackVenue:
    """Threaded HTTP server on 127.0.0.1 (port 0); use as a context manager; `base_url` for the clients."""

    def __init__(
        self,
        klines: dict[tuple[str, str, str], pl.DataFrame] | None = None,
        funding: dict[tuple[str, str], pl.DataFrame] | None = None,
        kline_delay_secs: float = 0.0,
        used_weight: int = 10,
    ) -> None:
        self._series = {key: _render_klines(frame, key[0], key[2]) for key, frame in (klines or {}).items()}
        self._funding = {
            key: (frame["ts_ms"].to_numpy().astype(np.int64), frame["rate"].to_list())
            for key, frame in (funding or {}).items()
        }
        self.kline_delay_secs = kline_delay_secs
        self.used_weight = used_weight
        self.faults: list[Fault] = []
        self.log: list[Served] = []
        self._lock = threading.Lock()
        self._binance_info = {
            "binance-futures": json.loads(
                (BINANCE_SNAPSHOTS / "futures_usdt_exchange_info.json").read_text()
            ),
            "binance-spot": json.loads((BINANCE_SNAPSHOTS / "spot_exchange_info.json").read_text()),
        }
        bybit = json.loads(BYBIT_INSTRUMENTS.read_text())
        # the real payload of another listed symbol (TSLAUSDT)
        extra = BYBIT_SAMPLES / "http_get_instruments_linear_symbol_type.json"
        bybit["result"]["list"] += json.loads(extra.read_text())["result"]["list"]
        self._bybit_instruments = bybit
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> LoopbackVenue:
        venue = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                venue._handle(self)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- introspection -------------------------------------------------------------------------------

    def kline_windows(self) -> list[tuple[int, int]]:
        """(start_ms, end_ms) of every kline request answered normally (or with a repeat), in order."""
        windows = []
        for item in list(self.log):
            if "kline" in item.path and item.status == 200 and item.fault in (None, "repeat"):
                start = item.params.get("startTime") or item.params.get("start")
                end = item.params.get("endTime") or item.params.get("end")
                windows.append((int(start), int(end)))
        return windows

    def requests(self, path_part: str = "") -> list[Served]:
        return [item for item in list(self.log) if path_part in item.path]

    # -- dispatch ------------------------------------------------------------------------------------

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path in path and fault.hits < fault.count:
                    fault.seen += 1
                    if fault.seen > fault.skip:
                        fault.hits += 1
                        return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        path, params = parts.path, dict(parse_qsl(parts.query))
        fault = self._fault_for(path)
        bybit = path.startswith("/v5/")
        if fault is not None and fault.kind == "timeout":
            self._record(path, params, 200, fault.kind, 0)
            time.sleep(fault.delay_secs)  # the client gives up meanwhile
            return self._send(handler, 200, b"[]", {})
        if fault is not None and fault.kind in ("rate_limit", "ban", "server_error"):
            return self._send_fault(handler, fault, path, params, bybit)
        status, payload, headers, rows = self._route(path, params, fault)
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if "kline" in path and self.kline_delay_secs:
            time.sleep(self.kline_delay_secs)
        kind = fault.kind if fault is not None else None
        self._record(path, params, status, kind, rows)
        if kind == "truncated":
            return self._send(handler, status, body, headers, cut_at=len(body) // 2)
        if kind == "short_body":
            body = body[: len(body) // 2]
        return self._send(handler, status, body, headers)

    def _record(self, path: str, params: dict[str, str], status: int, fault: str | None, rows: int) -> None:
        with self._lock:
            self.log.append(Served(path, params, status, fault, rows))

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str],
        cut_at: int | None = None,
        content_type: str = "application/json",
    ) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                handler.send_header(name, value)
            if cut_at is not None:
                handler.send_header("Connection", "close")
                handler.close_connection = True
            handler.end_headers()
            handler.wfile.write(body if cut_at is None else body[:cut_at])
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def _send_fault(
        self, handler: BaseHTTPRequestHandler, fault: Fault, path: str, params: dict[str, str], bybit: bool
    ) -> None:
        now_ms = int(time.time() * 1000)
        if fault.kind == "server_error":
            self._record(path, params, fault.status, fault.kind, 0)
            body = f"<html><body><h1>{fault.status} Service Unavailable</h1></body></html>".encode()
            return self._send(handler, fault.status, body, {}, content_type="text/html")
        if bybit:  # Bybit signals its limit in the envelope, with HTTP 200
            self._record(path, params, 200, fault.kind, 0)
            payload = {
                "retCode": 10006,
                "retMsg": "Too many visits!",
                "result": {},
                "retExtInfo": {},
                "time": now_ms,
            }
            headers = {
                "X-Bapi-Limit": "600",
                "X-Bapi-Limit-Status": "0",
                "X-Bapi-Limit-Reset-Timestamp": str(now_ms + fault.retry_after_secs * 1000),
            }
            return self._send(handler, 200, json.dumps(payload).encode(), headers)
        status = 418 if fault.kind == "ban" else 429
        self._record(path, params, status, fault.kind, 0)
        message = (
            "Way too many requests; IP(127.0.0.1) banned until now + Retry-After."
            if status == 418
            else "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute."
        )
        body = json.dumps({"code": -1003, "msg": message}).encode()
        return self._send(handler, status, body, {"Retry-After": str(fault.retry_after_secs)})

    def _route(
        self, path: str, params: dict[str, str], fault: Fault | None
    ) -> tuple[int, Any, dict[str, str], int]:
        market = "binance-futures" if path.startswith("/fapi/") else "binance-spot"
        weight = {"X-MBX-USED-WEIGHT-1M": str(self.used_weight)}
        if path in ("/fapi/v1/ping", "/api/v3/ping"):
            return 200, {}, weight, 0
        if path in ("/fapi/v1/exchangeInfo", "/api/v3/exchangeInfo"):
            return 200, self._binance_info[market], weight, 0
        if path in ("/fapi/v1/klines", "/api/v3/klines"):
            return self._binance_klines(market, params, fault, weight)
        if path == "/fapi/v1/fundingRate":
            return self._binance_funding(params, weight)
        bybit_headers = {
            "X-Bapi-Limit": "600",
            "X-Bapi-Limit-Status": "599",
            "X-Bapi-Limit-Reset-Timestamp": str(int(time.time() * 1000) + 1000),
        }
        if path == "/v5/market/kline":
            return self._bybit_klines(params, fault, bybit_headers)
        if path == "/v5/market/funding/history":
            return self._bybit_funding(params, bybit_headers)
        if path == "/v5/market/instruments-info":
            return self._bybit_instrument_list(params, bybit_headers)
        return 404, {"code": -1, "msg": f"no route {path}"}, {}, 0

    # -- Binance -------------------------------------------------------------------------------------

    def _binance_symbols(self, market: str) -> set[str]:
        listed = {entry["symbol"] for entry in self._binance_info[market]["symbols"]}
        return listed | {key[1] for key in self._series if key[0] == market}

    def _binance_klines(
        self, market: str, params: dict[str, str], fault: Fault | None, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str], int]:
        symbol, interval = params.get("symbol", ""), params.get("interval", "")
        limit = int(params.get("limit", 500))
        if symbol not in self._binance_symbols(market):
            return 400, {"code": -1121, "msg": "Invalid symbol."}, headers, 0
        if interval not in INTERVAL_MS:
            return 400, {"code": -1120, "msg": "Invalid interval."}, headers, 0
        if not 1 <= limit <= KLINE_LIMITS[market]:
            return 400, {"code": -1130, "msg": "Invalid data sent for a parameter."}, headers, 0
        series = self._series.get((market, symbol, interval))
        if series is None:
            return 200, b"[]", headers, 0
        start = int(params.get("startTime", 0))
        end = int(params.get("endTime", 2**62))
        if fault is not None and fault.kind == "repeat":
            start -= fault.repeat_bars * INTERVAL_MS[interval]  # serves the previous page's tail again
        first = int(np.searchsorted(series.open_ms, start, side="left"))
        last = int(np.searchsorted(series.open_ms, end, side="right"))
        rows = series.rows[first : min(last, first + limit)]  # oldest first, at most `limit`
        return 200, f"[{','.join(rows)}]".encode(), headers, len(rows)

    def _binance_funding(
        self, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str], int]:
        symbol = params.get("symbol", "")
        limit = int(params.get("limit", 100))
        if symbol not in self._binance_symbols("binance-futures"):
            return 400, {"code": -1121, "msg": "Invalid symbol."}, headers, 0
        if not 1 <= limit <= FUNDING_LIMITS["binance-futures"]:
            return 400, {"code": -1130, "msg": "Invalid data sent for a parameter."}, headers, 0
        times, rates = self._funding.get(("binance-futures", symbol), (np.empty(0, dtype=np.int64), []))
        start, end = int(params.get("startTime", 0)), int(params.get("endTime", 2**62))
        first = int(np.searchsorted(times, start, side="left"))
        last = min(int(np.searchsorted(times, end, side="right")), first + limit)
        payload = [
            {"symbol": symbol, "fundingTime": int(times[i]), "fundingRate": rates[i], "markPrice": "0"}
            for i in range(first, last)
        ]
        return 200, payload, headers, len(payload)

    # -- Bybit ---------------------------------------------------------------------------------------

    def _envelope(self, result: dict[str, Any], code: int = 0, message: str = "OK") -> dict[str, Any]:
        return {
            "retCode": code,
            "retMsg": message,
            "result": result,
            "retExtInfo": {},
            "time": int(time.time() * 1000),
        }

    def _bybit_symbols(self) -> set[str]:
        listed = {entry["symbol"] for entry in self._bybit_instruments["result"]["list"]}
        return listed | {key[1] for key in self._series if key[0] == "bybit-linear"}

    def _bybit_klines(
        self, params: dict[str, str], fault: Fault | None, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str], int]:
        symbol, code = params.get("symbol", ""), params.get("interval", "")
        limit = int(params.get("limit", 200))
        if symbol not in self._bybit_symbols():
            return 200, self._envelope({}, 10001, "Not supported symbols"), headers, 0
        if code not in BYBIT_INTERVALS:
            return 200, self._envelope({}, 10001, "Invalid period!"), headers, 0
        if not 1 <= limit <= KLINE_LIMITS["bybit-linear"]:
            return 200, self._envelope({}, 10001, "params error: limit"), headers, 0
        series = self._series.get(("bybit-linear", symbol, BYBIT_INTERVALS[code]))
        rows: list[str] = []
        if series is not None:
            start, end = int(params.get("start", 0)), int(params.get("end", 2**62))
            first = int(np.searchsorted(series.open_ms, start, side="left"))
            last = int(np.searchsorted(series.open_ms, end, side="right"))
            rows = series.rows[max(first, last - limit) : last][::-1]  # the newest `limit`, newest first
            if fault is not None and fault.kind == "repeat":
                rows = rows + rows[: fault.repeat_bars]  # the same bars twice in one page
        body = json.dumps(self._envelope({"category": "linear", "symbol": symbol, "list": []}))
        body = body.replace('"list": []', f'"list": [{",".join(rows)}]')
        return 200, body.encode(), headers, len(rows)

    def _bybit_funding(
        self, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str], int]:
        symbol = params.get("symbol", "")
        limit = int(params.get("limit", 200))
        if symbol not in self._bybit_symbols():
            return 200, self._envelope({}, 10001, "Not supported symbols"), headers, 0
        if not 1 <= limit <= FUNDING_LIMITS["bybit-linear"]:
            return 200, self._envelope({}, 10001, "params error: limit"), headers, 0
        times, rates = self._funding.get(("bybit-linear", symbol), (np.empty(0, dtype=np.int64), []))
        start, end = int(params.get("startTime", 0)), int(params.get("endTime", 2**62))
        first = int(np.searchsorted(times, start, side="left"))
        last = int(np.searchsorted(times, end, side="right"))
        chosen = range(last - 1, max(first, last - limit) - 1, -1)  # newest first
        items = [
            {"symbol": symbol, "fundingRate": rates[i], "fundingRateTimestamp": str(int(times[i]))}
            for i in chosen
        ]
        return 200, self._envelope({"category": "linear", "list": items}), headers, len(items)

    def _bybit_instrument_list(
        self, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str], int]:
        entries = self._bybit_instruments["result"]["list"]
        if "symbol" in params:
            entries = [entry for entry in entries if entry["symbol"] == params["symbol"]]
        result = {"category": "linear", "list": entries, "nextPageCursor": ""}
        return 200, self._envelope(result), headers, len(entries)


def funding_series(times_ms: list[int], rates: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"ts_ms": times_ms, "rate": rates}, schema={"ts_ms": pl.Int64, "rate": pl.String})
