"""Task ids: the trigger path's is percent-decoded once, and both the path and a batch item's
``task`` follow one rule (1-256 characters, no control characters); anything else is a 422.
Batch items: tests/unit/batches/test_item_validation.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import AwsStack, Tenant

LONGEST = "t" * 256


def trigger_path(encoded_task: str) -> str:
    return f"/api/v1/tasks/{encoded_task}/trigger"


@pytest.mark.parametrize(
    ("encoded", "task"),
    [
        ("emails%2Fsend", "emails/send"),
        ("caf%C3%A9%20daily", "café daily"),
        ("a%252Fb", "a%2Fb"),  # decoded once, not twice
        ("plain-task", "plain-task"),
        (LONGEST, LONGEST),
    ],
)
def test_trigger_path_task_id_is_decoded_once(
    aws: AwsStack, tenant: Tenant, call_api: Any, encoded: str, task: str
) -> None:
    res = call_api("POST", trigger_path(encoded), json_body={"payload": 1}, headers=tenant.headers)
    assert res.status == 200, res.body
    run = call_api("GET", f"/api/v1/runs/{res.json()['id']}", headers=tenant.headers).json()
    assert run["taskId"] == task
    assert [m["taskId"] for m in aws.bodies("RunQueue")] == [task]


@pytest.mark.parametrize("encoded", [quote("t" * 257), "bad%00id", "bad%1Fid", "%C2%85", "%ff%fe"])
def test_trigger_path_task_id_outside_the_rule_is_422(
    aws: AwsStack, tenant: Tenant, call_api: Any, encoded: str
) -> None:
    res = call_api("POST", trigger_path(encoded), json_body={"payload": 1}, headers=tenant.headers)
    assert res.status == 422, res.body
    assert res.json()["code"] == "invalid_task_id"
    assert aws.bodies("RunQueue") == []
