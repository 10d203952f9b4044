"""Trigger intake through the real handler, with moto in-process."""

from __future__ import annotations

from typing import Any

from tests.conftest import AwsStack, Tenant, make_tenant


def trigger(call_api: Any, tenant: Tenant, task: str = "hello", **body: Any) -> Any:
    return call_api("POST", f"/api/v1/tasks/{task}/trigger", json_body=body, headers=tenant.headers)


def test_trigger_creates_a_run_and_enqueues_it_once(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    res = trigger(call_api, tenant, payload={"n": 1}, options={"tags": ["a", "b"]})
    assert res.status == 200, res.body
    run_id = res.json()["id"]
    assert run_id.startswith("run_") and res.json()["isCached"] is False

    got = call_api("GET", f"/api/v1/runs/{run_id}", headers=tenant.headers)
    assert got.status == 200
    run = got.json()
    assert run["taskId"] == "hello" and run["payload"] == {"n": 1} and run["tags"] == ["a", "b"]
    assert run["status"] == "QUEUED" and run["buffered"] is False
    assert [m["runId"] for m in aws.bodies("RunQueue")] == [run_id]
