"""The venue's admin endpoints over plain HTTP: arm faults, read the state, refuse a bad stream name."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.unit.live.venue_harness import venue_thread


def _call(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    method = "GET" if body is None and "/state" in url else "POST"
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.timeout(60)
def test_venue_server_admin_faults_state_and_drop() -> None:
    with venue_thread() as venue:
        status, _ = _call(
            f"{venue.http_url}/admin/faults", {"rate_limit": 1, "standing": {"duplicate_acks": True}}
        )
        assert status == 200
        status, reply = _call(f"{venue.http_url}/admin/drop?stream=bogus")
        assert (status, reply["ok"]) == (400, False)
        status, reply = _call(f"{venue.http_url}/admin/drop?stream=public")
        assert (status, reply) == (200, {"ok": True, "closed": 0})
        _call(f"{venue.http_url}/admin/begin", {})
        assert venue.done.wait(10)
        status, state = _call(f"{venue.http_url}/admin/state")
    assert status == 200
    assert state["faults"] == {"drop_public": 1}
    assert state["counts"]["bars_published"] == 12
    assert state["books"]["balance"] == "10000"
    assert state["done"] is True
