"""``tasks.batchTrigger`` of the trigger.dev SDK (its two-phase batch: create, then one NDJSON
stream of every item): what the workers receive, idempotency, and a 2000-item batch."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sluice_client.errors import NotFoundError
from tests.compat.conftest import CompatTenant, Received, unique

pytestmark = [pytest.mark.compat, pytest.mark.devstack]


def finished(compat: CompatTenant, batch_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch: dict[str, Any] = compat.client.batches.retrieve(batch_id)
        if batch["status"] in ("COMPLETED", "PARTIAL_FAILED"):
            return batch
        time.sleep(0.5)
    counts = {k: batch.get(k) for k in ("status", "enqueuedCount", "processedCount", "failedCount")}
    raise AssertionError(f"batch {batch_id} did not complete within {timeout_s} s: {counts}")


def test_each_worker_receives_its_items_payload(compat: CompatTenant, worker: Received) -> None:
    items = [{"payload": {"i": i, "at": {"$date": f"2026-01-0{i + 1}T00:00:00.000Z"}}} for i in range(5)]
    handle = compat.sdk("tasks.batchTrigger", "compat-echo", items)
    assert handle["batchId"].startswith("batch_") and handle["runCount"] == 5

    batch = finished(compat, handle["batchId"])
    assert batch["status"] == "COMPLETED" and batch["failedCount"] == 0
    received = [worker.wait_for(run_id).payload for run_id in batch["runs"]]
    assert [p["i"] for p in received] == list(range(5))
    assert [p["at"].day for p in received] == [1, 2, 3, 4, 5]  # superjson dates revived


def test_item_options_land_on_each_run(compat: CompatTenant) -> None:
    items = [
        {"payload": "a", "options": {"tags": ["first"], "machine": "micro", "maxAttempts": 2}},
        {"payload": "b", "options": {"priority": 10, "maxDuration": 60, "metadata": {"k": 1}}},
    ]
    handle = compat.sdk("tasks.batchTrigger", "compat-other", items)
    batch = finished(compat, handle["batchId"])
    first, second = (compat.client.runs.retrieve(run_id) for run_id in batch["runs"])
    assert (first["payload"], first["tags"], first["machine"]) == ("a", ["first"], "micro")
    assert first["maxAttempts"] == 2
    assert (second["payload"], second["priority"], second["maxDuration"]) == ("b", 10, 60)
    assert second["metadata"] == {"k": 1}


def test_a_batch_idempotency_key_returns_the_same_batch(compat: CompatTenant) -> None:
    key = unique("nightly")
    items = [{"payload": {"i": i}} for i in range(3)]
    first = compat.sdk("tasks.batchTrigger", "compat-other", items, {"idempotencyKey": key})
    again = compat.sdk("tasks.batchTrigger", "compat-other", items, {"idempotencyKey": key})
    other = compat.sdk("tasks.batchTrigger", "compat-other", items, {"idempotencyKey": unique("nightly")})
    assert again["batchId"] == first["batchId"]
    assert other["batchId"] != first["batchId"]
    assert finished(compat, first["batchId"])["processedCount"] == 3


def test_item_idempotency_keys_dedup_across_batches(compat: CompatTenant) -> None:
    key = unique("item")
    keyed = [{"payload": 1, "options": {"idempotencyKey": key}}]
    one = compat.sdk("tasks.batchTrigger", "compat-other", keyed)
    two = compat.sdk(
        "tasks.batchTrigger",
        "compat-other",
        [{"payload": 2, "options": {"idempotencyKey": key}}, {"payload": 3}],
    )
    first_run = finished(compat, one["batchId"])["runs"][0]
    finished(compat, two["batchId"])
    run = compat.client.runs.retrieve(first_run)
    assert run["payload"] == 1
    assert run["idempotencyKeyOptions"] == {"key": key, "scope": "run"}
    # The second batch's first item found the key bound: no run of its own was made.
    with pytest.raises(NotFoundError):
        compat.client.runs.retrieve(compat.client.batches.retrieve(two["batchId"])["runs"][0])


@pytest.mark.backlog
# Its own waits (the SDK's call, then the batch completing) are 600 s each: pytest's default 300 s
# stopped it on a loaded machine with 1986 of 2000 runs done.
@pytest.mark.timeout(1260)
def test_a_2000_item_batch_completes(compat: CompatTenant) -> None:
    items = [{"payload": {"i": i}} for i in range(2000)]
    # One phase-2 request of 2000 items; on a loaded machine it may outlast the function's 29 s,
    # and the SDK re-sends it (items already queued are deduplicated by index).
    handle = compat.sdk("tasks.batchTrigger", "compat-other", items, timeout_s=600)
    assert handle["runCount"] == 2000
    batch = finished(compat, handle["batchId"], timeout_s=600)
    assert batch["status"] == "COMPLETED"
    assert batch["processedCount"] == 2000 and batch["failedCount"] == 0
