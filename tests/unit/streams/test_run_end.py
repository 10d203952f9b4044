"""A run's streams end when the run lifecycle brings it to a final status."""

from __future__ import annotations

import json

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
