"""Phase 2 validates an item exactly as a trigger is validated, and batch_runs turns any item it
still cannot make into a FAILED run, so that a batch always completes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.batches import items
from sluice.config import get_settings
from sluice.strict_json import MAX_DEPTH
from tests.unit.batches.conftest import BatchApi, item, ndjson
from tests.unit.test_payload_depth import nested, nested_bytes
from tests.unit.test_task_ids import LONGEST


@pytest.mark.parametrize(
    "line",
    [
        ndjson([item(1, payload=nested(MAX_DEPTH + 1))]),
        ndjson([item(1, metadata={"m": nested(MAX_DEPTH)})]),
        b'{"index": 1, "task": "t", "payload": ' + nested_bytes(3000) + b"}\n",
    ],
    ids=["payload", "metadata", "undecodable"],
)
def test_batch_item_too_deep_is_422_naming_its_index(api: BatchApi, line: bytes) -> None:
    batch_id = api.create_id(2)
    res = api.items(batch_id, ndjson([item(0)]) + line)
    assert res.status == 422, res.body
    body = res.json()
    assert body["code"] == "invalid_batch_item" and "index 1" in body["error"], body
    assert str(MAX_DEPTH) in body["error"]
    assert [json.loads(m["Body"])["index"] for m in api.queued_items()] == [0]


@pytest.mark.parametrize("task", ["t" * 257, "bad\x00id", "bad\nid", "\x85"])
def test_batch_item_task_outside_the_rule_is_422(api: BatchApi, task: str) -> None:
    batch_id = api.create_id(1)
    res = api.items(batch_id, [item(0, task=task)])
    assert res.status == 422, res.body
    assert res.json()["code"] == "invalid_batch_item" and "index 0" in res.json()["error"]


def test_batch_item_task_takes_what_the_path_takes(api: BatchApi) -> None:
    batch_id = api.create_id(2)
    res = api.items(batch_id, [item(0, task="emails/send"), item(1, task=LONGEST)])
    assert res.status == 200, res.body


@pytest.mark.parametrize(
    "options",
    [{"delay": 1e300}, {"delay": "99999999999d"}, {"idempotencyKey": "k", "idempotencyKeyTTL": 1e300}],
)
def test_item_options_a_trigger_would_refuse_are_422_naming_the_index(
    api: BatchApi, options: dict[str, Any]
) -> None:
    batch_id = api.create_id(2)
    res = api.items(batch_id, [item(0), item(1, **options)])
    assert res.status == 422, res.body
    assert res.json()["code"] == "invalid_batch_item" and "index 1" in res.json()["error"]
    assert [json.loads(m["Body"])["index"] for m in api.queued_items()] == [0]


def _batch_status(api: BatchApi, batch_id: str) -> dict[str, Any]:
    got: dict[str, Any] = api.get(batch_id).json()
    return got


def _run(api: BatchApi, run_id: str) -> dict[str, Any]:
    got: dict[str, Any] = api.call("GET", f"/api/v1/runs/{run_id}", headers=api.tenant.headers).json()
    return got


def test_items_that_slip_past_validation_become_failed_runs(
    api: BatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if phase 2 had missed them: an item batch_runs cannot serialize, and one it cannot delay.
    monkeypatch.setattr(items, "check_trigger", lambda body: None)
    batch_id = api.create_id(3)
    lines = [item(0), item(1, payload=nested(300)), item(2, delay=1e300)]
    res = api.items(batch_id, lines)
    assert res.status == 200 and res.json()["sealed"] is True, res.body

    assert api.run_items() == []
    got = _batch_status(api, batch_id)
    assert got["status"] == "PARTIAL_FAILED" and got["processedCount"] == 3 and got["failedCount"] == 2
    statuses = [_run(api, run_id)["status"] for run_id in got["runs"]]
    assert statuses == ["QUEUED", "FAILED", "FAILED"]
    assert _run(api, got["runs"][1])["error"]["code"] == "INVALID_BATCH_ITEM"
    assert _run(api, got["runs"][2])["error"]["code"] == "INVALID_DELAY"


def test_queued_item_whose_options_do_not_parse_becomes_a_failed_run(api: BatchApi) -> None:
    batch_id = api.create_id(2)
    assert api.items(batch_id, [item(0), item(1)]).json()["sealed"] is True
    messages = api.queued_items()
    for message in messages:
        body = json.loads(message["Body"])
        if body["index"] == 1:
            body["options"] = {"maxAttempts": 0, "parentRunId": "run_parent"}
            message["Body"] = json.dumps(body)

    assert api.run_items(messages) == []
    got = _batch_status(api, batch_id)
    assert got["status"] == "PARTIAL_FAILED" and got["failedCount"] == 1
    failed = _run(api, got["runs"][1])
    assert failed["status"] == "FAILED" and failed["parentRunId"] == "run_parent"


def test_a_batch_item_with_metadata_over_the_limit_is_refused_naming_its_index(api: BatchApi) -> None:
    """As a trigger is refused (413 ``metadata_too_large``): metadata shares the run's DynamoDB
    item with an inline payload, so an item accepted with it could never be written."""
    limit = get_settings().max_metadata_bytes
    batch_id = api.create_id(3)
    for index, size in ((1, limit + 1), (2, 300 * 1024)):
        metadata = {"m": "x" * (size - len('{"m":""}'))}
        res = api.items(batch_id, [item(0), item(index, payload="p" * (250 * 1024), metadata=metadata)])
        assert res.status == 422, res.body
        body = res.json()
        assert body["code"] == "invalid_batch_item" and f"index {index}" in body["error"], body
        assert [issue["code"] for issue in body["issues"]] == ["metadata_too_large"]
    assert [json.loads(m["Body"])["index"] for m in api.queued_items()] == [0]
    listing = api.aws.s3.list_objects_v2(Bucket=api.aws.stack.physical_name("PayloadBucket"))
    assert listing.get("KeyCount", 0) == 0, "no payload was offloaded for a refused item"
