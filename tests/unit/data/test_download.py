"""Pure parts of qa_engine.data.download: spans, page windows, checkpoints, the retry policy."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa_engine.data.download import Checkpoint
from qa_engine.data.download import RetryPolicy
from qa_engine.data.download import VenueCaller
from qa_engine.data.download import VenueRateLimitedError
from qa_engine.data.download import VenueRejectedError
from qa_engine.data.download import VenueTransientError
from qa_engine.data.download import checkpoint_path
from qa_engine.data.download import merge_spans
from qa_engine.data.download import plan_windows
from qa_engine.data.download import runs_of
from qa_engine.data.download import subtract_spans
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.errors import VenueError

MINUTE_MS = 60_000


def test_subtract_spans_cuts_stored_runs_out_of_the_request():
    assert subtract_spans([(0, 100)], [(10, 20), (50, 60), (90, 120)]) == [(0, 10), (20, 50), (60, 90)]


def test_merge_spans_joins_touching_and_overlapping_spans():
    assert merge_spans([(5, 10), (0, 5), (20, 30), (25, 40), (50, 50)]) == [(0, 10), (20, 40)]


def test_runs_of_grid_times_gives_half_open_spans():
    opens = np.array([0, 1, 2, 5, 6, 9]) * MINUTE_MS

    assert runs_of(opens, MINUTE_MS) == [
        (0, 3 * MINUTE_MS),
        (5 * MINUTE_MS, 7 * MINUTE_MS),
        (9 * MINUTE_MS, 10 * MINUTE_MS),
    ]


def test_plan_windows_never_exceed_the_page_limit_and_cover_the_spans_exactly():
    spans = [(0, 3_700 * MINUTE_MS), (4_000 * MINUTE_MS, 4_010 * MINUTE_MS)]

    windows = plan_windows(spans, MINUTE_MS, 1_500)

    assert [(b - a) // MINUTE_MS for a, b in windows] == [1_500, 1_500, 700, 10]
    assert merge_spans(windows) == spans


spans_strategy = st.lists(
    st.tuples(st.integers(0, 500), st.integers(0, 500)).map(lambda pair: (min(pair), max(pair))), max_size=8
)


@given(base=spans_strategy, remove=spans_strategy)
def test_subtracted_and_removed_parts_partition_the_base(base, remove):
    left = subtract_spans(base, remove)
    covered = subtract_spans(base, left)

    assert merge_spans([*left, *covered]) == merge_spans(base)
    assert subtract_spans(left, remove) == left  # nothing removed survives


def test_checkpoint_round_trips_and_is_replaced_atomically(tmp_path):
    path = checkpoint_path(tmp_path, "bybit-linear", "BTCUSDT", "5m")
    key = {"market": "bybit-linear", "symbol": "BTCUSDT", "interval": "5m"}
    checkpoint = Checkpoint(path, key, empty_spans=[(10, 20), (20, 30)])

    checkpoint.save()

    assert path == tmp_path / ".downloads" / "bybit-linear" / "BTCUSDT-5m.json"
    assert Checkpoint.load(path, key).empty_spans == [(10, 30)]
    assert [item.name for item in path.parent.iterdir()] == ["BTCUSDT-5m.json"]  # no temporary file left


def test_corrupt_or_foreign_checkpoint_starts_fresh(tmp_path):
    path = tmp_path / "c.json"
    key = {"symbol": "BTCUSDT"}
    path.write_text('{"version": 1, "key": {"sym')  # cut by a crash of another tool
    assert Checkpoint.load(path, key).empty_spans == []
    path.write_text(json.dumps({"version": 1, "key": {"symbol": "ETHUSDT"}, "empty_spans_ms": [[1, 2]]}))
    assert Checkpoint.load(path, key).empty_spans == []


class _Flaky:
    """Fails with the given errors in order, then returns 'ok'."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def _caller(**policy) -> tuple[VenueCaller, list[float]]:
    waits: list[float] = []
    return VenueCaller(RetryPolicy(**policy), sleep=waits.append, rng=random.Random(1)), waits


def test_rate_limit_waits_exactly_what_retry_after_says():
    caller, waits = _caller()

    result = caller.call(_Flaky(VenueRateLimitedError("HTTP 429", retry_after_secs=7)), "x")

    assert (result, waits, caller.stats.rate_limited) == ("ok", [7.0], 1)


def test_transient_errors_back_off_exponentially_with_jitter_and_a_cap():
    caller, waits = _caller(initial_wait_secs=0.5, max_wait_secs=3.0, max_attempts=8)

    caller.call(_Flaky(*[VenueTransientError("HTTP 503")] * 6), "x")

    assert len(waits) == 6
    for attempt, wait in enumerate(waits, start=1):
        base = 0.5 * 2 ** (attempt - 1)
        assert min(base, 3.0) <= wait <= min(base + 0.5, 3.0)
    assert waits[-1] == 3.0


def test_giving_up_after_max_attempts_is_a_venue_error_saying_to_run_again():
    caller, waits = _caller(max_attempts=3)
    request = _Flaky(*[VenueTransientError("HTTP 502")] * 10)

    with pytest.raises(VenueError, match="failed 3 time.*run the same command again"):
        caller.call(request, "binance-futures BTCUSDT 1m 2025-01-01")

    assert request.calls == 3 and len(waits) == 2


def test_a_ban_longer_than_the_wait_budget_fails_at_once_naming_the_wait():
    caller, waits = _caller(max_total_wait_secs=900)

    with pytest.raises(VenueError, match="asks to wait 7200 s"):
        caller.call(_Flaky(VenueRateLimitedError("HTTP 418", retry_after_secs=7200)), "x")

    assert waits == []


def test_a_rejection_is_not_retried_and_names_what_was_asked():
    caller, waits = _caller()
    request = _Flaky(VenueRejectedError("HTTP 400, code -1121: Invalid symbol."))

    with pytest.raises(DataError, match="binance-spot XYZ 1m: the venue rejected the request.*-1121"):
        caller.call(request, "binance-spot XYZ 1m")

    assert (request.calls, waits) == (1, [])


def test_invalid_retry_policy_is_a_config_error():
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)
