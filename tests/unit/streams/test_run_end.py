"""A run's streams end when the run lifecycle brings it to a final status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

from devstack.handlers import context_for, load_handler
from sluice.engine import lifecycle
from tests.unit.streams.conftest import StreamsApi, new_run, parse_sse


def _start(api: StreamsApi, run_id: str) -> str:
    started = api.call("POST", f"/api/v1/runs/{run_id}/start", headers=api.tenant.headers)
    assert started.status == 200, started.body
    return str(started.json()["leaseToken"])


def test_a_completed_run_ends_its_streams_and_refuses_new_ones(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id, "out")
    assert api.append(run_id, "out", token, {"n": 1}).status == 200
    lease = _start(api, run_id)
    done = api.call(
        "POST", f"/api/v1/runs/{run_id}/complete", json_body={"leaseToken": lease}, headers=api.tenant.headers
    )
    assert done.status == 200, done.body
    frames = parse_sse(api.read(run_id, "out", query="lastEventId=0-0").body)
    assert [json.loads(f["data"]) for f in frames if f.get("event") != "end" and "data" in f] == [{"n": 1}]
    assert frames[-1].get("event") == "end"
    assert api.append(run_id, "out", token, {"n": 2}).status == 409
    assert api.mint(run_id, "logs").json()["code"] == "run_finished"


def test_a_run_failed_for_good_ends_its_streams(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id, "out")
    lease = _start(api, run_id)
    failed = api.call(
        "POST",
        f"/api/v1/runs/{run_id}/fail",
        json_body={"leaseToken": lease, "error": "boom", "retry": False},
        headers=api.tenant.headers,
    )
    assert failed.status == 200 and failed.json()["status"] == "FAILED", failed.body
    frames = parse_sse(api.read(run_id, "out", query="lastEventId=0-0").body)
    assert frames[-1].get("event") == "end"
    assert api.append(run_id, "out", token, {"n": 1}).status == 409


# --- fenced on the attempt: a worker whose lease is stale, or whose run was canceled, cannot write --
def _leased_token(api: StreamsApi, run_id: str, lease: str, key: str = "out") -> str:
    res = api.call(
        "PUT", f"/realtime/v1/streams/{run_id}/{key}", headers={**api.tenant.headers, "x-lease-token": lease}
    )
    assert res.status == 200, res.body
    return str(res.json()["token"])


def _retry(api: StreamsApi, run_id: str, lease: str) -> None:
    failed = api.call(
        "POST",
        f"/api/v1/runs/{run_id}/fail",
        json_body={"leaseToken": lease, "error": "x"},
        headers=api.tenant.headers,
    )
    assert (failed.status, failed.json()["status"]) == (200, "QUEUED"), failed.body


def _data(api: StreamsApi, run_id: str) -> list[object]:
    frames = parse_sse(api.read(run_id, "out", query="lastEventId=0-0").body)
    return [json.loads(f["data"]) for f in frames if f.get("event") != "end" and "data" in f]


def test_a_retried_attempts_appends_are_refused_and_the_next_attempt_writes(
    api: StreamsApi, retry_at_once: None
) -> None:
    run_id = new_run(api.tenant)
    first_lease = _start(api, run_id)
    first = _leased_token(api, run_id, first_lease)
    assert api.append(run_id, "out", first, {"attempt": 1}).status == 200

    _retry(api, run_id, first_lease)  # the first worker is presumed lost; it goes on writing

    stale = api.append(run_id, "out", first, {"attempt": "1, late"})
    assert (stale.status, stale.json()["code"]) == (409, "stale_lease")
    second = _leased_token(api, run_id, _start(api, run_id))
    assert api.append(run_id, "out", second, {"attempt": 2}).status == 200
    assert api.append(run_id, "out", first, {"attempt": "1, later"}).status == 409
    assert _data(api, run_id) == [{"attempt": 1}, {"attempt": 2}]


def test_the_reapers_retry_fences_the_lost_workers_streams(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    lease = _start(api, run_id)
    token = _leased_token(api, run_id, lease)
    # The reaper, at a time past the lease: the worker stopped heartbeating (SIGKILLed, say).
    reaper = load_handler(api.aws.stack.function("run_reaper"))
    with patch.object(lifecycle, "_now", lambda: datetime.now(UTC) + timedelta(hours=1)):
        assert reaper({}, context_for(api.aws.stack.function("run_reaper")))["retried"] == 1

    late = api.append(run_id, "out", token, {"n": 1})

    assert (late.status, late.json()["code"]) == (409, "stale_lease")


def test_a_mint_with_a_lease_that_is_not_current_is_409_and_a_newer_attempts_mint_fences_the_older(
    api: StreamsApi, retry_at_once: None
) -> None:
    run_id = new_run(api.tenant)
    first_lease = _start(api, run_id)
    old = _leased_token(api, run_id, first_lease, "logs")  # "logs" is fenced only by the next mint
    _retry(api, run_id, first_lease)
    res = api.call(
        "PUT",
        f"/realtime/v1/streams/{run_id}/out",
        headers={**api.tenant.headers, "x-lease-token": first_lease},
    )
    assert (res.status, res.json()["code"]) == (409, "stale_lease")

    _leased_token(api, run_id, _start(api, run_id), "logs")

    assert api.append(run_id, "logs", old, {"n": 1}).json()["code"] == "stale_lease"


def test_a_canceled_runs_attempt_cannot_write(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    token = _leased_token(api, run_id, _start(api, run_id))
    assert api.call("POST", f"/api/v2/runs/{run_id}/cancel", headers=api.tenant.headers).status == 200

    late = api.append(run_id, "out", token, {"n": 1})

    assert (late.status, late.json()["code"]) == (409, "stream_closed")
