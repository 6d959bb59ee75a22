"""Bybit v5 request signing as the venue checks it, and the response envelopes it writes.

REST: HMAC_SHA256(secret, timestamp + api_key + recv_window + payload), hex; payload = the raw query
string of a GET, the raw body of a POST. Headers X-BAPI-API-KEY, X-BAPI-TIMESTAMP, X-BAPI-SIGN,
X-BAPI-RECV-WINDOW. Websocket auth: {"op": "auth", "args": [api_key, expires_ms, HMAC(secret,
"GET/realtime" + expires_ms)]}. Time checks use the wall clock (clients sign with theirs), never the
simulated bar clock.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

API_KEY_INVALID = (10003, "API key is invalid.")
SIGN_ERROR = (10004, "error sign!")
TIMESTAMP_ERROR = (10002, "invalid request, please check your server timestamp or recv_window param")
DEFAULT_RECV_WINDOW_MS = 5_000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def check_rest_signature(
    headers: dict[str, str] | Any, payload: str, api_key: str, api_secret: str
) -> tuple[int, str] | None:
    """None when the request is signed by `api_key`/`api_secret` within its recv window, else (code, msg)."""
    key = headers.get("X-BAPI-API-KEY", "")
    if key != api_key:
        return API_KEY_INVALID
    timestamp = headers.get("X-BAPI-TIMESTAMP", "")
    recv_window = headers.get("X-BAPI-RECV-WINDOW", str(DEFAULT_RECV_WINDOW_MS))
    try:
        sent_ms, window_ms = int(timestamp), int(recv_window)
    except ValueError:
        return TIMESTAMP_ERROR
    now = wall_ms()
    # Bybit's rule: server_time - recv_window <= timestamp < server_time + 1000
    if not (now - window_ms <= sent_ms < now + 1_000):
        return TIMESTAMP_ERROR
    expected = sign(api_secret, f"{timestamp}{key}{recv_window}{payload}")
    if not hmac.compare_digest(expected, headers.get("X-BAPI-SIGN", "")):
        return SIGN_ERROR
    return None


def check_ws_auth(args: list[Any], api_key: str, api_secret: str) -> tuple[int, str] | None:
    """None when `args` = [api_key, expires_ms, signature] is valid and not expired, else (code, msg)."""
    if len(args) != 3:
        return 10001, "params error"
    key, expires, signature = args
    if key != api_key:
        return API_KEY_INVALID
    try:
        expires_ms = int(expires)
    except (TypeError, ValueError):
        return TIMESTAMP_ERROR
    if expires_ms < wall_ms():
        return TIMESTAMP_ERROR
    if not hmac.compare_digest(sign(api_secret, f"GET/realtime{expires_ms}"), str(signature)):
        return SIGN_ERROR
    return None


def envelope(result: dict[str, Any] | None, ret_code: int = 0, ret_msg: str = "OK") -> dict[str, Any]:
    """The REST envelope: retCode, retMsg, result, retExtInfo, time."""
    return {
        "retCode": ret_code,
        "retMsg": ret_msg,
        "result": result if result is not None else {},
        "retExtInfo": {},
        "time": wall_ms(),
    }
