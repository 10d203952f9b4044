"""Every dependency failure's defined behaviour, and interrupted phase 2 requests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from sluice import aws as sluice_aws
from sluice.batches import items, state
from sluice.errors import ServiceUnavailable
from sluice.redis import reset_redis
from tests.unit.batches.conftest import BatchApi, item, ndjson, run_ids_on_run_queue
from tests.unit.batches.test_ingest import status


@pytest.fixture
def fail_s3_puts() -> Iterator[Callable[[int], list[int]]]:
    """``fail_s3_puts(times)``: make the next ``times`` S3 PutObject attempts fail at the
    connection, below boto3's retries (until the test ends: the process keeps its clients)."""
    armed: list[tuple[Any, Callable[..., None]]] = []

    def arm(times: int) -> list[int]:
        calls = [0]

        def fail(request: Any, **_: Any) -> None:
            calls[0] += 1
            if calls[0] <= times:
                raise EndpointConnectionError(endpoint_url=request.url)

        client = sluice_aws.s3()
        client.meta.events.register_first("before-send.s3.PutObject", fail)
        armed.append((client, fail))
        return calls

    yield arm
    for client, handler in armed:
        client.meta.events.unregister("before-send.s3.PutObject", handler)


def redis_down(configure: Callable[..., None]) -> None:
    configure(redis_url="redis://127.0.0.1:1/0", redis_connect_timeout_ms=50, redis_retries=0)
    reset_redis()


def assert_exactly_one_run_per_index(api: BatchApi, batch_id: str, run_count: int) -> None:
    assert api.run_items() == []
    got = status(api, batch_id)
    assert got["status"] == "COMPLETED" and got["processedCount"] == run_count
    assert sorted(run_ids_on_run_queue(api.aws)) == sorted(got["runs"])


def test_phase_2_cut_off_mid_body_and_retried_ends_with_exactly_run_count_runs(api: BatchApi) -> None:
    batch_id = api.create_id(20)
    body = ndjson([item(i) for i in range(20)])
    cut = api.items(batch_id, body[: len(body) // 2])  # the connection dropped mid-line
    assert cut.status == 400 and "Invalid JSON" in cut.json()["error"]
    assert 0 < status(api, batch_id)["enqueuedCount"] < 20
    retry = api.items(batch_id, body).json()
    assert retry["sealed"] is True and retry["itemsAccepted"] + retry["itemsDeduplicated"] == 20
    assert_exactly_one_run_per_index(api, batch_id, 20)


def test_phase_2_stopped_by_a_queue_failure_and_retried_ends_with_exactly_run_count_runs(
    api: BatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id = api.create_id(30)
    sqs = sluice_aws.sqs()
    real, sent = sqs.send_message_batch, [0]

    def dies_after_ten(**kwargs: Any) -> Any:
        sent[0] += len(kwargs["Entries"])
        if sent[0] > 10:
            raise EndpointConnectionError(endpoint_url="https://sqs")
        return real(**kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(sqs, "send_message_batch", dies_after_ten)
        res = api.items(batch_id, [item(i) for i in range(30)])
    assert res.status == 503 and res.json()["code"] == "service_unavailable"
    assert api.items(batch_id, [item(i) for i in range(30)]).json()["sealed"] is True
    assert_exactly_one_run_per_index(api, batch_id, 30)


def test_messages_the_queue_refuses_are_a_503_and_the_retry_sends_them(
    api: BatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id = api.create_id(4)
    sqs = sluice_aws.sqs()
    real = sqs.send_message_batch

    def refuses_the_last(**request: Any) -> Any:
        *taken, refused = request["Entries"]
        response = real(**{**request, "Entries": taken})
        failure = {"Id": refused["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
        return {**response, "Failed": [failure]}

    with monkeypatch.context() as patch:
        patch.setattr(sqs, "send_message_batch", refuses_the_last)
        res = api.items(batch_id, [item(i) for i in range(4)])
    assert res.status == 503 and "InternalError" in res.json()["error"]
    assert status(api, batch_id)["enqueuedCount"] == 3
    retry = api.items(batch_id, [item(i) for i in range(4)]).json()
    assert (retry["itemsAccepted"], retry["itemsDeduplicated"], retry["sealed"]) == (1, 3, True)
    assert_exactly_one_run_per_index(api, batch_id, 4)


def test_half_done_item_is_repaired_by_the_retry(api: BatchApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """Queued but not marked (the process died between the two): the retry sends it again and
    batch_runs still makes one run for it."""
    batch_id = api.create_id(3)
    real = state.mark_enqueued

    def lost_mark(b: str, indexes: list[int]) -> int:
        added = real(b, [i for i in indexes if i != 1])
        if 1 in indexes:
            raise ServiceUnavailable("Redis went away")
        return added

    with monkeypatch.context() as patch:
        patch.setattr(items.state, "mark_enqueued", lost_mark)
        assert api.items(batch_id, [item(i) for i in range(3)]).status == 503
    assert status(api, batch_id)["enqueuedCount"] == 2
    retry = api.items(batch_id, [item(i) for i in range(3)]).json()
    assert (retry["itemsAccepted"], retry["itemsDeduplicated"], retry["sealed"]) == (1, 2, True)
    messages = api.queued_items()
    assert sorted(json.loads(m["Body"])["index"] for m in messages) == [0, 1, 1, 2]
    api.run_items(messages)
    got = status(api, batch_id)
    assert got["status"] == "COMPLETED" and got["processedCount"] == 3
    assert sorted(run_ids_on_run_queue(api.aws)) == sorted(got["runs"])


def test_offload_retries_a_transient_failure_and_succeeds_on_the_third_attempt(
    api: BatchApi, configure: Callable[..., None], fail_s3_puts: Callable[[int], list[int]]
) -> None:
    configure(payload_offload_bytes=100, batch_ingest_concurrency=1, aws_max_attempts=3)
    calls = fail_s3_puts(2)
    batch_id = api.create_id(1)
    res = api.items(batch_id, [item(0, payload={"blob": "z" * 500})])
    assert res.status == 200 and res.json()["sealed"] is True
    assert calls[0] == 3


def test_s3_down_is_a_503_and_nothing_is_lost(
    api: BatchApi, configure: Callable[..., None], fail_s3_puts: Callable[[int], list[int]]
) -> None:
    configure(payload_offload_bytes=100, aws_max_attempts=2)
    calls = fail_s3_puts(10**6)
    batch_id = api.create_id(4)
    lines = [item(0), item(1, payload={"blob": "z" * 500}), item(2), item(3, payload={"blob": "w" * 500})]
    res = api.items(batch_id, lines)
    assert res.status == 503 and "payload store" in res.json()["error"]
    assert calls[0] >= 2  # boto3 retried before giving up
    first = api.queued_items()
    assert {json.loads(m["Body"])["index"] for m in first} == {0, 2}
    assert status(api, batch_id)["enqueuedCount"] == 2
    calls[0] = 10**7  # S3 is back
    assert api.items(batch_id, lines).json()["sealed"] is True
    api.run_items(first + api.queued_items())
    got = status(api, batch_id)
    assert got["status"] == "COMPLETED"
    run = api.call("GET", f"/api/v1/runs/{got['runs'][3]}", headers=api.tenant.headers).json()
    assert run["payload"] == {"blob": "w" * 500}


def test_does_not_offload_when_there_is_no_payload_data(
    api: BatchApi, configure: Callable[..., None], fail_s3_puts: Callable[[int], list[int]]
) -> None:
    configure(payload_offload_bytes=1)
    calls = fail_s3_puts(0)
    batch_id = api.create_id(1)
    api.items(batch_id, [{"index": 0, "task": "t"}])
    assert calls[0] == 0 and json.loads(api.queued_items()[0]["Body"])["payload"] is None


def test_queue_down_is_a_503_and_nothing_is_marked(api: BatchApi, monkeypatch: pytest.MonkeyPatch) -> None:
    batch_id = api.create_id(2)
    sqs = sluice_aws.sqs()

    def down(**_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://sqs")

    with monkeypatch.context() as patch:
        patch.setattr(sqs, "send_message_batch", down)
        assert api.items(batch_id, [item(0), item(1)]).status == 503
    assert status(api, batch_id)["enqueuedCount"] == 0


def test_redis_down_in_phase_2_is_a_503_and_nothing_is_queued(
    api: BatchApi, configure: Callable[..., None]
) -> None:
    batch_id = api.create_id(2)
    redis_down(configure)
    res = api.items(batch_id, [item(0), item(1)])
    assert res.status == 503 and "batch state store" in res.json()["error"]
    assert api.queued_items() == []


def test_dynamodb_down_is_a_503(api: BatchApi, monkeypatch: pytest.MonkeyPatch) -> None:
    batch_id = api.create_id(1)
    ddb = sluice_aws.dynamodb()

    def down(**_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://dynamodb")

    monkeypatch.setattr(ddb, "get_item", down)
    monkeypatch.setattr(ddb, "transact_write_items", down)
    assert api.items(batch_id, [item(0)]).status == 503
    assert api.create(1).status == 503
    assert api.queued_items() == []


def test_redis_down_in_batch_runs_reports_every_item_for_redelivery(
    api: BatchApi, configure: Callable[..., None], redis_url: str
) -> None:
    batch_id = api.create_id(2)
    api.items(batch_id, [item(0), item(1)])
    messages = api.queued_items()
    redis_down(configure)
    assert len(api.run_items(messages)) == 2  # the runs exist; their count could not be kept
    configure(redis_url=redis_url, redis_connect_timeout_ms=1000, redis_retries=2)
    reset_redis()
    assert api.run_items(messages) == []
    assert status(api, batch_id)["status"] == "COMPLETED"
    assert sorted(run_ids_on_run_queue(api.aws)) == sorted(status(api, batch_id)["runs"])


def test_status_with_redis_down_is_a_503(api: BatchApi, configure: Callable[..., None]) -> None:
    batch_id = api.create_id(2)
    redis_down(configure)
    assert api.get(batch_id).status == 503
