"""Phase 2 validates an item exactly as a trigger is validated, and batch_runs turns any item it
still cannot make into a FAILED run, so that a batch always completes."""

from __future__ import annotations

import json

import pytest


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
