"""Phase 2, POST /api/v3/batches/{id}/items: the reference's StreamBatchItemsService list
(spec §2.11) and this port's own cases, through the real handler."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from sluice import aws as sluice_aws
from sluice.batches import ingest, items, state, store
from sluice.batches.models import BatchStatus
from tests.unit.batches.conftest import BatchApi, item, ndjson


def force(api: BatchApi, batch_id: str, **changes: Any) -> None:
    """Overwrite the batch record, as a concurrent writer would."""
    batch = store.get(batch_id)
    assert batch is not None
    api.aws.dynamodb.put_item(
        TableName=api.aws.stack.physical_name("BatchesTable"),
        Item=store._item(batch.model_copy(update=changes)),
    )


def status(api: BatchApi, batch_id: str) -> dict[str, Any]:
    res = api.get(batch_id)
    assert res.status == 200, res.body
    body: dict[str, Any] = res.json()
    return body


@pytest.fixture
def before_seal(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[str], None]], None]:
    """Run a concurrent writer's change just before this request's seal attempt."""

    def install(change: Callable[[str], None]) -> None:
        real = store.seal

        def seal(batch: Any, now: datetime) -> bool:
            change(batch.id)
            return real(batch, now)

        monkeypatch.setattr(ingest.store, "seal", seal)

    return install


@pytest.fixture
def before_count(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[str], None]], None]:
    """Run a concurrent writer's change just before this request reads the enqueued count."""

    def install(change: Callable[[str], None]) -> None:
        real = state.enqueued_count

        def count(batch_id: str) -> int:
            change(batch_id)
            return real(batch_id)

        monkeypatch.setattr(ingest.state, "enqueued_count", count)

    return install


# --- the reference list ---------------------------------------------------------------------------


def test_should_seal_batch_successfully_when_no_race_condition(api: BatchApi) -> None:
    batch_id = api.create_id(3)
    res = api.items(batch_id, [item(i) for i in range(3)])
    assert res.status == 200, res.body
    assert res.json() == {
        "id": batch_id,
        "itemsAccepted": 3,
        "itemsDeduplicated": 0,
        "sealed": True,
        "enqueuedCount": 3,
        "runCount": 3,
    }
    got = status(api, batch_id)
    assert got["status"] == "PROCESSING" and got["sealed"] is True and got["sealedAt"]
    assert len(api.queued_items()) == 3


def test_should_return_sealed_true_when_batch_is_already_sealed_and_processing(api: BatchApi) -> None:
    batch_id = api.create_id(2)
    api.items(batch_id, [item(0), item(1)])
    retry = api.items(batch_id, [item(0), item(1)]).json()
    assert retry["sealed"] is True and retry["itemsAccepted"] == 0 and retry["itemsDeduplicated"] == 0
    assert len(api.queued_items()) == 2


def test_should_return_sealed_true_when_batch_is_completed_before_phase_2_retry_arrives(
    api: BatchApi,
) -> None:
    batch_id = api.create_id(2)
    api.items(batch_id, [item(0), item(1)])
    assert api.run_items() == []
    assert status(api, batch_id)["status"] == "COMPLETED"
    assert api.items(batch_id, [item(0), item(1)]).json()["sealed"] is True


def test_should_throw_when_batch_is_in_aborted_status(api: BatchApi) -> None:
    batch_id = api.create_id(2)
    force(api, batch_id, status=BatchStatus.ABORTED)
    res = api.items(batch_id, [item(0), item(1)])
    assert res.status == 409 and "not in PENDING status (current: ABORTED)" in res.json()["error"]
    assert api.queued_items() == []


def test_should_throw_when_batch_is_sealed_but_aborted(api: BatchApi) -> None:
    batch_id = api.create_id(1)
    force(api, batch_id, status=BatchStatus.ABORTED, sealed=True)
    assert api.items(batch_id, [item(0)]).status == 409


def test_should_return_sealed_true_when_batch_is_partial_failed(
    api: BatchApi, configure: Callable[..., None]
) -> None:
    configure(batch_item_max_bytes=1024)  # index 1 becomes a pre-failed PAYLOAD_TOO_LARGE run
    batch_id = api.create_id(2)
    api.items(batch_id, [item(0), item(1, payload="x" * 4096)])
    api.run_items()
    assert status(api, batch_id)["status"] == "PARTIAL_FAILED"
    assert api.items(batch_id, [item(0), item(1)]).json()["sealed"] is True


def test_should_return_sealed_true_when_batch_is_partial_failed_by_callback_before_seal_attempt(
    api: BatchApi, before_seal: Callable[[Callable[[str], None]], None]
) -> None:
    batch_id = api.create_id(1)
    before_seal(lambda b: force(api, b, status=BatchStatus.PARTIAL_FAILED, sealed=True))
    assert api.items(batch_id, [item(0)]).json()["sealed"] is True


def test_should_return_sealed_true_when_concurrent_request_already_sealed_the_batch_during_seal_attempt(
    api: BatchApi, before_seal: Callable[[Callable[[str], None]], None]
) -> None:
    batch_id = api.create_id(1)
    before_seal(lambda b: force(api, b, status=BatchStatus.PROCESSING, sealed=True))
    res = api.items(batch_id, [item(0)]).json()
    assert res["sealed"] is True and res["itemsAccepted"] == 1


def test_should_return_sealed_true_when_batch_is_completed_by_batch_queue_before_seal_attempt(
    api: BatchApi, before_seal: Callable[[Callable[[str], None]], None]
) -> None:
    batch_id = api.create_id(1)
    before_seal(lambda b: force(api, b, status=BatchStatus.COMPLETED, sealed=True))
    assert api.items(batch_id, [item(0)]).json()["sealed"] is True


def test_should_throw_error_when_race_condition_leaves_batch_in_unexpected_state(
    api: BatchApi, before_seal: Callable[[Callable[[str], None]], None]
) -> None:
    batch_id = api.create_id(1)
    before_seal(lambda b: force(api, b, status=BatchStatus.ABORTED))
    res = api.items(batch_id, [item(0)])
    assert res.status == 409 and "unexpected state" in res.json()["error"]


def test_should_return_sealed_false_when_item_count_does_not_match(api: BatchApi) -> None:
    batch_id = api.create_id(3)
    res = api.items(batch_id, [item(0), item(2)]).json()
    assert res == {
        "id": batch_id,
        "itemsAccepted": 2,
        "itemsDeduplicated": 0,
        "sealed": False,
        "enqueuedCount": 2,
        "runCount": 3,
    }
    assert status(api, batch_id)["status"] == "PENDING"


def test_should_return_sealed_true_when_seal_failed_race_produces_sealed_true_and_pending(
    api: BatchApi, before_seal: Callable[[Callable[[str], None]], None]
) -> None:
    batch_id = api.create_id(1)
    before_seal(lambda b: force(api, b, sealed=True))
    assert api.items(batch_id, [item(0)]).json()["sealed"] is True


def test_should_throw_when_count_mismatch_race_produces_sealed_true_and_aborted(
    api: BatchApi, before_count: Callable[[Callable[[str], None]], None]
) -> None:
    batch_id = api.create_id(3)
    before_count(lambda b: force(api, b, status=BatchStatus.ABORTED, sealed=True))
    assert api.items(batch_id, [item(0)]).status == 409


def test_should_return_sealed_true_when_batch_is_unsealed_pending_with_completion_set(api: BatchApi) -> None:
    batch_id = api.create_id(2)
    force(api, batch_id, completedAt=datetime.now(UTC))
    res = api.items(batch_id, [item(0), item(1)]).json()
    assert res["sealed"] is True and res["itemsAccepted"] == 0
    assert api.queued_items() == []


def test_should_return_sealed_true_on_count_mismatch_when_callback_fired_before_our_count(
    api: BatchApi, before_count: Callable[[Callable[[str], None]], None]
) -> None:
    batch_id = api.create_id(2)

    def completed_and_cleaned_up(b: str) -> None:
        force(api, b, status=BatchStatus.COMPLETED, sealed=True)
        state.clear(b)

    before_count(completed_and_cleaned_up)
    assert api.items(batch_id, [item(0), item(1)]).json()["sealed"] is True


def test_ingests_a_large_batch_with_bounded_concurrency_and_seals_it(api: BatchApi) -> None:
    batch_id = api.create_id(100)
    res = api.items(batch_id, [item(i) for i in reversed(range(100))]).json()
    assert res["sealed"] is True and res["itemsAccepted"] == 100 and res["enqueuedCount"] == 100
    indexes = sorted(json.loads(m["Body"])["index"] for m in api.queued_items())
    assert indexes == list(range(100))


def test_items_share_their_round_trips_a_group_at_a_time(api: BatchApi, redis_client: redis.Redis) -> None:
    batch_id = api.create_id(25)
    sqs, sends = sluice_aws.sqs(), []

    def count(params: dict[str, Any], **_: Any) -> None:
        sends.append(len(params.get("Entries", [None])))

    sqs.meta.events.register("before-parameter-build.sqs", count)
    try:
        redis_client.config_resetstat()
        res = api.items(batch_id, [item(i) for i in range(25)]).json()
    finally:
        sqs.meta.events.unregister("before-parameter-build.sqs", count)
    assert res["sealed"] is True and res["itemsAccepted"] == 25
    stats = redis_client.info("commandstats")
    # Per group of 10: one SMISMEMBER skips what is enqueued, one SendMessageBatch, one mark (SADD).
    assert sends == [10, 10, 5]
    assert stats["cmdstat_smismember"]["calls"] == 3 and stats["cmdstat_sadd"]["calls"] == 3
    assert "cmdstat_sismember" not in stats
    assert sorted(json.loads(m["Body"])["index"] for m in api.queued_items()) == list(range(25))


@pytest.mark.parametrize("concurrency", [1, 4, 10])
def test_bounds_in_flight_item_processing_to_the_configured_concurrency(
    api: BatchApi, configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    configure(batch_ingest_concurrency=concurrency, payload_offload_bytes=64)
    lock, gauge = threading.Lock(), {"now": 0, "peak": 0, "calls": 0}
    real_store = items.payloads.store

    # The first `concurrency` stores wait for each other, so a loaded machine cannot hide the
    # overlap the setting allows; a pool that never runs that many at once breaks the barrier.
    first_wave = threading.Barrier(concurrency)

    def instrumented_store(key: str, body: bytes) -> None:
        with lock:
            gauge["now"] += 1
            gauge["calls"] += 1
            gauge["peak"] = max(gauge["peak"], gauge["now"])
            in_first_wave = gauge["calls"] <= concurrency
        if in_first_wave:
            with contextlib.suppress(threading.BrokenBarrierError):
                first_wave.wait(timeout=10)
        time.sleep(0.01)
        real_store(key, body)
        with lock:
            gauge["now"] -= 1

    monkeypatch.setattr(items.payloads, "store", instrumented_store)
    batch_id = api.create_id(40)
    res = api.items(batch_id, [item(i, payload={"blob": "x" * 200}) for i in range(40)]).json()
    assert res["sealed"] is True and gauge["calls"] == 40
    assert gauge["peak"] <= concurrency
    assert gauge["peak"] == concurrency


def test_deduplicates_already_enqueued_items_during_concurrent_ingest(api: BatchApi) -> None:
    batch_id = api.create_id(100)
    first = api.items(batch_id, [item(i) for i in range(0, 100, 2)]).json()
    assert first["sealed"] is False and first["enqueuedCount"] == 50
    retry = api.items(batch_id, [item(i) for i in range(100)]).json()
    assert (retry["itemsAccepted"], retry["itemsDeduplicated"], retry["sealed"]) == (50, 50, True)
    assert len(api.queued_items()) == 100


def test_rejects_an_oversized_item_whose_index_exceeds_run_count(
    api: BatchApi, configure: Callable[..., None]
) -> None:
    configure(batch_item_max_bytes=1024)
    batch_id = api.create_id(2)
    big = json.dumps({"index": 5, "task": "t", "payload": "x" * 4096}).encode() + b"\n"
    res = api.items(batch_id, ndjson([item(0)]) + big)
    assert res.status == 422 and res.json()["error"] == "Item index 5 exceeds batch runCount 2"


# --- this port's cases ---------------------------------------------------------------------------


def test_oversized_item_in_range_becomes_a_pre_failed_run(
    api: BatchApi, configure: Callable[..., None]
) -> None:
    configure(batch_item_max_bytes=1024)
    batch_id = api.create_id(2)
    big = json.dumps({"index": 1, "task": "big", "payload": "x" * 4096}).encode() + b"\n"
    res = api.items(batch_id, ndjson([item(0)]) + big).json()
    assert res["sealed"] is True and res["itemsAccepted"] == 2
    api.run_items()
    got = status(api, batch_id)
    assert got["status"] == "PARTIAL_FAILED" and got["failedCount"] == 1 and got["processedCount"] == 2
    run = api.call("GET", f"/api/v1/runs/{got['runs'][1]}", headers=api.tenant.headers).json()
    assert run["status"] == "FAILED" and run["taskId"] == "big" and run["batchIndex"] == 1
    assert run["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert run["error"]["message"].startswith("Batch item payload is too large (4.")
    assert "Maximum allowed size is 1.0 KB" in run["error"]["message"]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
def test_other_content_types_are_a_415(api: BatchApi, content_type: str) -> None:
    batch_id = api.create_id(1)
    headers = {**api.tenant.headers, "content-type": content_type}
    res = api.call("POST", f"/api/v3/batches/{batch_id}/items", body=ndjson([item(0)]), headers=headers)
    assert res.status == 415


@pytest.mark.parametrize("content_type", ["application/ndjson; charset=utf-8", "application/octet-stream"])
def test_application_ndjson_and_raw_bytes_are_accepted(api: BatchApi, content_type: str) -> None:
    """``application/octet-stream`` is what generated clients send (openapi.json lists it)."""
    batch_id = api.create_id(1)
    headers = {**api.tenant.headers, "content-type": content_type}
    res = api.call("POST", f"/api/v3/batches/{batch_id}/items", body=ndjson([item(0)]), headers=headers)
    assert res.status == 200 and res.json()["sealed"] is True


def test_empty_body_is_a_400(api: BatchApi) -> None:
    batch_id = api.create_id(1)
    assert api.items(batch_id, b"").status == 400


def test_invalid_json_line_is_a_400_naming_the_line_and_keeps_earlier_items(api: BatchApi) -> None:
    batch_id = api.create_id(3)
    res = api.items(batch_id, ndjson([item(0), item(1)]) + b"{oops\n" + ndjson([item(2)]))
    assert res.status == 400 and "Invalid JSON at line 3" in res.json()["error"]
    assert api.items(batch_id, [item(i) for i in range(3)]).json()["itemsDeduplicated"] >= 1


def test_invalid_item_is_a_422_naming_the_index(api: BatchApi) -> None:
    batch_id = api.create_id(3)
    res = api.items(batch_id, [item(0), {"index": 1, "task": 7}])
    assert res.status == 422 and res.json()["error"].startswith("Invalid item at index 1: task")
    res = api.items(batch_id, [{"task": "t"}])
    assert res.status == 422 and "unknown index (line 1)" in res.json()["error"]
    res = api.items(batch_id, [item(2, bogus=1)])
    assert res.status == 422 and "index 2" in res.json()["error"]


def test_index_outside_the_batch_is_a_422(api: BatchApi) -> None:
    batch_id = api.create_id(2)
    res = api.items(batch_id, [item(2)])
    assert res.status == 422 and res.json()["error"] == "Item index 2 exceeds batch runCount 2"
    assert api.items(batch_id, [{"index": -1, "task": "t"}]).status == 422


def test_numeric_concurrency_key_is_coerced_to_a_string(api: BatchApi) -> None:
    batch_id = api.create_id(1)
    api.items(batch_id, [item(0, concurrencyKey=42)])
    (message,) = api.queued_items()
    assert json.loads(message["Body"])["options"]["concurrencyKey"] == "42"


def test_items_of_another_environment_are_not_found(api: BatchApi) -> None:
    from tests.conftest import make_tenant

    batch_id = api.create_id(1)
    assert api.items(batch_id, [item(0)], tenant=make_tenant("org_b", "env_b_dev")).status == 404


def test_large_payload_is_offloaded_and_the_run_reads_it_back(
    api: BatchApi, configure: Callable[..., None]
) -> None:
    configure(payload_offload_bytes=1000)
    batch_id = api.create_id(2)
    api.items(batch_id, [item(0, payload={"blob": "y" * 5000}), item(1, payload={"small": True})])
    messages = api.queued_items()
    by_index = {json.loads(m["Body"])["index"]: json.loads(m["Body"]) for m in messages}
    assert "payloadRef" in by_index[0] and "payload" not in by_index[0]
    assert by_index[1]["payload"] == {"small": True}
    api.run_items(messages)
    run_id = status(api, batch_id)["runs"][0]
    run = api.call("GET", f"/api/v1/runs/{run_id}", headers=api.tenant.headers).json()
    assert run["payload"] == {"blob": "y" * 5000}


def test_phase_2_split_over_several_requests_seals_on_the_last(api: BatchApi) -> None:
    batch_id = api.create_id(30)
    for start in range(0, 30, 10):
        res = api.items(batch_id, [item(i) for i in range(start, start + 10)]).json()
        assert res["sealed"] is (start == 20) and res["enqueuedCount"] == start + 10


def test_all_keys_of_a_batch_share_one_cluster_slot() -> None:
    from redis.crc import key_slot

    from sluice.batches import keys

    batch_id = keys.new_batch_id()
    slots = {
        key_slot(k.encode())
        for k in (keys.enqueued(batch_id), keys.processed(batch_id), keys.failed(batch_id))
    }
    assert len(slots) == 1
