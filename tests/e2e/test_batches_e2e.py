"""End to end on devstack: client.batches.trigger over HTTP, items through BatchItemQueue and
batch_runs, a staged upload through S3's notification and batch_staged_ingest, until every run
exists and the batch is COMPLETED.

devstack provisions buckets without their NotificationConfiguration, so the staged test applies
the template's to moto's server itself; moto's server then delivers ObjectCreated to SQS.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from devstack.testing.launcher import DevStack
from sluice_client import Sluice

BIG = {"blob": "e" * (200 * 1024)}  # over the SDK's 128 KiB offload threshold


def wait_for(client: Sluice, batch_id: str, status: str, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = client.batches.retrieve(batch_id)
        if got["status"] == status or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


@pytest.mark.devstack
def test_a_streamed_batch_becomes_one_run_per_item(devstack: DevStack) -> None:
    key = devstack.create_key("org_batch_e2e", "env_batch_e2e")
    with Sluice(devstack.api_url, key) as client:
        items: list[dict[str, Any]] = [{"task": "e2e", "payload": {"i": i}} for i in range(60)]
        items[7]["payload"] = BIG
        client.batches.max_request_bytes = 2048  # several phase-2 requests
        result = client.batches.trigger(items, idempotency_key="e2e-streamed", progress=False)
        assert result.sealed and result.run_count == 60
        got = wait_for(client, result.id, "COMPLETED")
        assert got["status"] == "COMPLETED" and got["processedCount"] == 60, got
        runs = [client.runs.retrieve(run_id) for run_id in got["runs"]]
        assert [r["batchIndex"] for r in runs] == list(range(60))
        assert runs[7]["payload"] == BIG and runs[8]["payload"] == {"i": 8}
        assert client.batches.trigger(items, idempotency_key="e2e-streamed").is_cached


@pytest.mark.devstack
def test_a_staged_batch_is_ingested_from_its_upload(devstack: DevStack) -> None:
    key = devstack.create_key("org_batch_e2e", "env_batch_staged")
    # Staged above 100 items instead of the default 1000: the same path with a tenth of the runs.
    with Sluice(devstack.api_url, key, stage_above_items=100) as client:
        items = [{"task": "e2e", "payload": {"i": i}} for i in range(120)]
        result = client.batches.trigger(items, progress=False)
        assert result.staged and not result.sealed
        got = wait_for(client, result.id, "COMPLETED", timeout_s=300)
        assert got["status"] == "COMPLETED" and got["processedCount"] == 120, got
