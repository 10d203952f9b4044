"""One payload depth limit on intake: a payload or metadata nested deeper than a stored run can be
read back with is a 422, and nothing is bound or created (batch items: tests/unit/batches/
test_item_validation.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.strict_json import MAX_DEPTH
from tests.conftest import AwsStack, HttpResult, Tenant

TRIGGER = "/api/v1/tasks/hello/trigger"


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def nested_bytes(levels: int) -> bytes:
    return b"[" * levels + b"1" + b"]" * levels


def post_trigger(call_api: Any, tenant: Tenant, body: bytes) -> HttpResult:
    headers = {**tenant.headers, "content-type": "application/json"}
    result: HttpResult = call_api("POST", TRIGGER, body=body, headers=headers)
    return result


def test_payload_at_the_limit_round_trips(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    res = post_trigger(call_api, tenant, json.dumps({"payload": nested(MAX_DEPTH)}).encode())
    assert res.status == 200, res.body
    got = call_api("GET", f"/api/v1/runs/{res.json()['id']}", headers=tenant.headers)
    assert got.status == 200, got.body
    assert got.json()["payload"] == nested(MAX_DEPTH)


@pytest.mark.parametrize(
    "body",
    [
        b'{"payload": ' + nested_bytes(MAX_DEPTH + 1) + b', "options": {"idempotencyKey": "k"}}',
        b'{"payload": 1, "options": {"idempotencyKey": "k", "metadata": {"m": '
        + nested_bytes(MAX_DEPTH)
        + b"}}}",
        # Too deep for Python's own JSON decoder.
        b'{"payload": ' + nested_bytes(3000) + b', "options": {"idempotencyKey": "k"}}',
    ],
    ids=["payload", "metadata", "undecodable"],
)
def test_trigger_too_deep_is_422_and_binds_nothing(
    aws: AwsStack, tenant: Tenant, call_api: Any, body: bytes
) -> None:
    res = post_trigger(call_api, tenant, body)
    assert res.status == 422, res.body
    assert res.json()["code"] == "payload_too_deep" and str(MAX_DEPTH) in res.json()["error"]
    assert aws.bodies("RunQueue") == []
    # The key was not bound: the next trigger with it makes a run.
    again = post_trigger(call_api, tenant, b'{"payload": 1, "options": {"idempotencyKey": "k"}}')
    assert again.status == 200 and again.json()["isCached"] is False
