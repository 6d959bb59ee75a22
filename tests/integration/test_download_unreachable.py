"""A venue that cannot be reached at all (its host name does not resolve, nothing listens on its port) ends a
download at once with one line naming the host, instead of backing off for minutes; once the venue has
answered, the same failure is a passing blip and is retried. No test needs a network: the hosts are
`nonexistent.invalid` (RFC 6761: never resolves, with or without a network) and a free loopback port with no
listener; proxies from the environment are switched off."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from datetime import date

import pytest

from adapters.binance.historical import BinanceHistoricalVenue
from adapters.bybit.historical import BybitHistoricalVenue
from qa_engine.data.download import RetryPolicy
from qa_engine.data.download import VenueCaller
from qa_engine.data.download import VenueUnreachableError
from qa_engine.data.download import download_klines
from qa_engine.data.download import resolve_instruments
from qa_engine.data.markets import Market
from qa_engine.errors import VenueError
from tests.factories import real_klines
from tests.loopback_venue import LoopbackVenue

UNRESOLVABLE = "http://nonexistent.invalid"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """A proxy from the environment would answer for the hosts instead of failing like no network."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def refused_url() -> str:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _qa(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "qa_engine.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "300"},
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize("venue", ["binance-futures", "bybit-linear"])
@pytest.mark.parametrize("target", ["unresolvable", "refused"])
def test_an_unreachable_venue_ends_the_download_at_once_with_one_line(tmp_path, refused_url, venue, target):
    base_url = UNRESOLVABLE if target == "unresolvable" else refused_url
    host = "nonexistent.invalid" if target == "unresolvable" else refused_url.removeprefix("http://")

    result, secs = _qa(
        "data", "download", "--venue", venue, "--symbols", "BTCUSDT", "--interval", "1m",
        "--start", "2024-01-01", "--end", "2024-01-02", "--catalog", str(tmp_path / "catalog"),
        "--base-url", base_url,
    )  # fmt: skip

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert secs < 15
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert host in lines[0] and "unreachable" in lines[0] and "not retried" in lines[0]
    assert ("cannot resolve" if target == "unresolvable" else "refused the connection") in lines[0]
    assert not (tmp_path / "catalog").exists()


def test_download_funding_and_instruments_end_at_once_too(tmp_path, refused_url):
    funding, funding_secs = _qa(
        "data", "download-funding", "--venue", "bybit-linear", "--symbols", "BTCUSDT",
        "--start", "2024-01-01", "--end", "2024-01-02", "--catalog", str(tmp_path),
        "--base-url", UNRESOLVABLE,
    )  # fmt: skip
    listing, listing_secs = _qa(
        "data", "download-instruments", "--venue", "binance-spot", "--catalog", str(tmp_path),
        "--base-url", refused_url,
    )  # fmt: skip

    assert (funding.returncode, listing.returncode) == (1, 1)
    assert funding_secs < 15 and listing_secs < 15
    assert "nonexistent.invalid" in funding.stderr and refused_url.removeprefix("http://") in listing.stderr
    assert "Traceback" not in funding.stderr + listing.stderr


@pytest.mark.parametrize("market", [Market.BINANCE_FUTURES, Market.BYBIT_LINEAR])
def test_the_adapters_translate_both_failures_naming_the_host(refused_url, market):
    def venue(url):
        if market == Market.BYBIT_LINEAR:
            return BybitHistoricalVenue(url, timeout_secs=2.0)
        return BinanceHistoricalVenue(market, url, timeout_secs=2.0)

    for url, host, words in [
        (UNRESOLVABLE, "nonexistent.invalid", "cannot resolve the host name nonexistent.invalid"),
        (refused_url, refused_url.removeprefix("http://"), "refused the connection"),
    ]:
        with pytest.raises(VenueUnreachableError, match=words) as caught:
            venue(url).fetch_instruments(["BTCUSDT"])
        assert caught.value.host == host


def test_unreachable_before_any_answer_is_not_retried(refused_url):
    waits: list[float] = []
    caller = VenueCaller(RetryPolicy(), sleep=waits.append, rng=random.Random(7))

    with pytest.raises(
        VenueError, match=r"unreachable: 127\.0\.0\.1:\d+ refused the connection; not retried"
    ):
        resolve_instruments(BinanceHistoricalVenue(Market.BINANCE_FUTURES, refused_url), ["BTCUSDT"], caller)

    assert (caller.stats.requests, caller.stats.retries, waits) == (1, 0, [])


def test_a_venue_that_goes_away_mid_download_is_retried_with_back_off(tmp_path, refused_url):
    """Once the venue has answered, a refused connection may be a restart or a blip: back-off as before."""
    bars = real_klines("binance_futures_BTCUSDT_1m", 1_440, start="2025-05-05")
    waits: list[float] = []
    caller = VenueCaller(RetryPolicy(max_attempts=3), sleep=waits.append, rng=random.Random(7))
    with LoopbackVenue({("binance-futures", "BTCUSDT", "1m"): bars}) as server:
        served = BinanceHistoricalVenue(Market.BINANCE_FUTURES, server.base_url, timeout_secs=2.0)
        instrument = resolve_instruments(served, ["BTCUSDT"], caller)["BTCUSDT"]
    gone = BinanceHistoricalVenue(
        Market.BINANCE_FUTURES, refused_url, timeout_secs=2.0
    )  # its host now refuses

    with pytest.raises(VenueError, match=r"failed 3 time\(s\), last: .*refused the connection; run the same"):
        download_klines(
            gone, instrument, "BTCUSDT", "1m", date(2025, 5, 5), date(2025, 5, 5), tmp_path, caller=caller
        )

    assert len(waits) == 2 and caller.stats.retries == 2
