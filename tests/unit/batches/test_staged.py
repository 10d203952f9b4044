"""Staged ingest: an NDJSON object in the staging bucket, its S3 notification through
StagedIngestQueue, and batch_staged_ingest reading it as a stream in resumable chunks.

devstack.provision applies the template's notifications to moto; moto then delivers
ObjectCreated events to the queue itself, as S3 does.
"""

from __future__ import annotations

import io
import itertools
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody

from devstack.handlers import context_for, load_handler
from devstack.pollers import sqs_record
from sluice import aws as sluice_aws
from sluice.batches import keys, staged
from tests.unit.batches.conftest import BatchApi, item, ndjson
from tests.unit.batches.test_ingest import status


@pytest.fixture
def staging(api: BatchApi) -> BatchApi:
    api.aws.receive_all("StagedIngestQueue")  # moto's s3:TestEvent
    return api


def upload(api: BatchApi, batch_id: str, body: bytes) -> None:
    """What the client does with the presigned URL (moto in-process has no HTTP endpoint)."""
    api.aws.s3.put_object(
        Bucket=api.aws.stack.physical_name("StagingBucket"),
        Key=keys.staging(api.tenant.env.tenant, batch_id),
        Body=body,
        ContentType="application/x-ndjson",
    )


def run_staged(api: BatchApi, limit: int = 1000) -> int:
    """Invoke batch_staged_ingest for each StagedIngestQueue message until the queue is empty
    (one message per invocation, as BatchSize 1 does); returns how many invocations ran."""
    spec = api.aws.stack.function("batch_staged_ingest")
    arn = api.aws.stack.arn("StagedIngestQueue")
    for invocations in itertools.count():
        messages = api.aws.receive_all("StagedIngestQueue")
        if not messages:
            return invocations
        assert invocations < limit
        for message in messages:
            result = load_handler(spec)({"Records": [sqs_record(message, arn)]}, context_for(spec))
            assert result["batchItemFailures"] == []
    raise AssertionError("unreachable")


def test_staged_batch_is_ingested_from_the_upload_and_sealed(staging: BatchApi) -> None:
    batch_id = staging.create_id(50, staged=True)
    upload(staging, batch_id, ndjson([item(i) for i in reversed(range(50))]))
    assert run_staged(staging) == 1
    got = status(staging, batch_id)
    assert got["status"] == "PROCESSING" and got["enqueuedCount"] == 50
    staging.run_items()
    assert status(staging, batch_id)["status"] == "COMPLETED"


@pytest.mark.slow
# make test runs it at a lower priority beside the cases, which now take ~5 minutes of both
# cores: it took 192-267 s there (17.6 s alone at the last stop), close to pytest's default 300 s.
@pytest.mark.timeout(900)
def test_staged_ingest_of_20000_items_runs_in_bounded_memory(
    staging: BatchApi, monkeypatch: pytest.MonkeyPatch, configure: Callable[..., None], tmp_path: Path
) -> None:
    range_bytes = 512 * 1024
    configure(batch_staged_range_bytes=range_bytes)
    count, blob = 20_000, "p" * 1200
    batch_id = staging.create_id(count, staged=True)
    body = ndjson([item(i, payload={"blob": blob}) for i in range(count)])
    upload(staging, batch_id, body)
    # Two stand-ins, each for a cost of moto's that is not ours: moto's S3 copies the whole
    # object into memory for every ranged GET (9.5 MB for one 512 KiB range of a 9 MB object),
    # so the ranges are served from a file as S3 would stream them; moto's SQS walks the whole
    # queue on every send (minutes for 20 000), so the sends are recorded. Parsing, Redis dedup,
    # the bounded pool and the DynamoDB seal are the real ones.
    source = tmp_path / "staged.ndjson"
    source.write_bytes(body)

    def open_range(job: staged.StagedJob, offset: int) -> tuple[StreamingBody, int] | None:
        size = source.stat().st_size
        if offset >= size:
            return None
        with source.open("rb") as f:
            f.seek(offset)
            data = f.read(range_bytes)
        return StreamingBody(io.BytesIO(data), len(data)), size

    monkeypatch.setattr(staged, "_open", open_range)
    sent: list[int] = []

    def record(**request: Any) -> dict[str, Any]:
        sent.extend(json.loads(entry["MessageBody"])["index"] for entry in request["Entries"])
        return {"Successful": [], "Failed": []}

    monkeypatch.setattr(sluice_aws.sqs(), "send_message_batch", record)
    del body
    tracemalloc.start()
    try:
        run_staged(staging)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status(staging, batch_id)["status"] == "PROCESSING"
    assert sorted(sent) == list(range(count))
    size = source.stat().st_size
    # A range and its chunks, one parser buffer, 10 items in flight, the clients' own working
    # memory (and this test's record of 20 000 sends): a few MB against a 25 MB object.
    assert peak < 8 * 1024 * 1024 < size / 3, (peak, size)


def test_staged_ingest_resumes_across_invocations_without_losing_or_repeating_items(
    staging: BatchApi, configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = itertools.count()
    monkeypatch.setattr(staged, "monotonic", lambda: float(next(ticks)))
    configure(batch_staged_reserve_s=900 - 20)  # each invocation gets about 20 items' worth of ticks
    oversized = json.dumps({"index": 7, "task": "big", "payload": "x" * 5000}).encode() + b"\n"
    configure(batch_item_max_bytes=1024)
    lines = [item(i) for i in range(120) if i != 7]
    body = ndjson(lines[:7]) + oversized + b"\n\n" + ndjson(lines[7:])
    batch_id = staging.create_id(120, staged=True)
    upload(staging, batch_id, body)
    assert run_staged(staging) > 3
    assert status(staging, batch_id)["sealed"] is True
    messages = staging.queued_items()
    assert sorted(json.loads(m["Body"])["index"] for m in messages) == list(range(120))
    staging.run_items(messages)
    got = status(staging, batch_id)
    assert got["status"] == "PARTIAL_FAILED" and got["failedCount"] == 1


def test_invalid_line_in_a_staged_object_aborts_the_batch_naming_the_line(staging: BatchApi) -> None:
    batch_id = staging.create_id(3, staged=True)
    upload(staging, batch_id, ndjson([item(0), item(1)]) + b"{broken\n")
    run_staged(staging)
    got = status(staging, batch_id)
    assert got["status"] == "ABORTED" and "Invalid JSON at line 3" in got["error"]


def test_a_replaced_object_stops_the_old_ingest_and_the_new_one_completes(
    staging: BatchApi, configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = itertools.count()
    monkeypatch.setattr(staged, "monotonic", lambda: float(next(ticks)))
    configure(batch_staged_reserve_s=900 - 20)
    batch_id = staging.create_id(60, staged=True)
    upload(staging, batch_id, ndjson([item(i, payload="old") for i in range(60)]))
    first = staging.aws.receive_all("StagedIngestQueue")
    spec = staging.aws.stack.function("batch_staged_ingest")
    arn = staging.aws.stack.arn("StagedIngestQueue")
    load_handler(spec)({"Records": [sqs_record(first[0], arn)]}, context_for(spec))
    upload(staging, batch_id, ndjson([item(i, payload="new") for i in range(60)]))
    run_staged(staging)  # the old continuation finds a new ETag and stops; the new event starts over
    assert status(staging, batch_id)["sealed"] is True
    assert len({json.loads(m["Body"])["index"] for m in staging.queued_items()}) == 60


def test_objects_outside_the_staging_layout_and_test_events_are_ignored(staging: BatchApi) -> None:
    assert staged.jobs_from_message({"Service": "Amazon S3", "Event": "s3:TestEvent"}) == []
    record: dict[str, Any] = {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "b"}, "object": {"key": "staging/env/not-a-batch.ndjson"}},
    }
    assert staged.jobs_from_message({"Records": [record]}) == []
    unknown = keys.staging(staging.tenant.env.tenant, keys.new_batch_id())
    staging.aws.s3.put_object(
        Bucket=staging.aws.stack.physical_name("StagingBucket"), Key=unknown, Body=b"{}"
    )
    assert run_staged(staging) == 1
    assert staging.queued_items() == []
