"""``GET /api/v3/runs/{id}``: the run in the trigger.dev SDK's shape, through the real handler."""

from __future__ import annotations

import json
from typing import Any

from sluice import engine
from sluice.engine import TriggerBody, TriggerOptions, packets
from tests.conftest import AwsStack, Tenant, make_tenant

SUPERJSON = {"json": {"at": "1970-01-01T00:00:00.000Z"}, "meta": {"values": {"at": ["Date"]}}}


def v3(call_api: Any, tenant: Tenant, run_id: str) -> Any:
    return call_api("GET", f"/api/v3/runs/{run_id}", headers=tenant.headers)


def test_a_queued_run_in_the_sdks_shape(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    body = {"payload": json.dumps(SUPERJSON), "options": {"payloadType": packets.SUPERJSON_TYPE, "tags": "a"}}
    created = call_api("POST", "/api/v1/tasks/hello/trigger", json_body=body, headers=tenant.headers)
    run_id = created.json()["id"]
    res = v3(call_api, tenant, run_id)
    assert res.status == 200, res.body
    run = res.json()
    assert run["taskIdentifier"] == "hello" and run["status"] == "QUEUED"
    flags = (run["isQueued"], run["isExecuting"], run["isCompleted"], run["isWaiting"])
    assert flags == (True, False, False, False)
    assert run["payload"] == SUPERJSON["json"] and run["tags"] == ["a"]
    assert run["relatedRuns"] == {} and run["depth"] == 0 and run["attemptCount"] == 0
    assert run["updatedAt"] == run["createdAt"] and run["durationMs"] == 0
    # Absent, never null: the SDK's schema refuses null for its optional fields.
    assert None not in run.values()
    assert "idempotencyKey" not in run and "startedAt" not in run and "finishedAt" not in run


def test_parent_and_root_are_related_runs(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    def child_of(parent: str | None) -> str:
        return engine.trigger(tenant.env, "t", TriggerBody(options=TriggerOptions(parentRunId=parent))).id

    root = child_of(None)
    parent = child_of(root)
    child = child_of(parent)
    run = v3(call_api, tenant, child).json()
    assert run["depth"] == 2
    assert run["relatedRuns"]["parent"]["id"] == parent and run["relatedRuns"]["parent"]["depth"] == 1
    assert run["relatedRuns"]["root"]["id"] == root and run["relatedRuns"]["root"]["depth"] == 0


def test_another_tenants_run_is_a_404(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    run_id = engine.trigger(tenant.env, "t", TriggerBody()).id
    other = make_tenant(org_id="org_a", env_id="env_other")
    res = v3(call_api, other, run_id)
    assert res.status == 404 and res.json()["code"] == "not_found"
