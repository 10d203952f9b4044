"""Phase 2 against hostile input: an oversized line without its index up front, the same index
twice in one request, and payload uploads that are not JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sluice.batches import ingest as ingest_module
from sluice.batches import items as items_module
from sluice.batches import keys
from sluice.config import get_settings
from tests.unit.batches.conftest import BatchApi, item, ndjson

STORE = {"payloadType": "application/store"}


def messages_by_index(api: BatchApi) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    for message in api.queued_items():
        body = json.loads(message["Body"])
        found.setdefault(body["index"], []).append(body)
    return found


def test_oversized_line_naming_its_index_late_is_a_413_and_touches_no_other_item(
    api: BatchApi, configure: Callable[..., None]
) -> None:
    configure(batch_item_max_bytes=1024)
    batch_id = api.create_id(3)
    late = json.dumps({"task": "big", "payload": "x" * 4096, "index": 2}).encode() + b"\n"
    res = api.items(batch_id, ndjson([item(1)]) + late + ndjson([item(0)]))
    assert res.status == 413, res.body
    body = res.json()
    assert body["code"] == "batch_item_too_large" and body["issues"][0]["line"] == 2
    queued = messages_by_index(api)
    assert list(queued) == [1] and "error" not in queued[1][0]


def test_oversized_line_cut_off_before_its_newline_is_a_413_too(
    api: BatchApi, configure: Callable[..., None]
) -> None:
    configure(batch_item_max_bytes=1024)
    batch_id = api.create_id(2)
    late = json.dumps({"task": "big", "payload": "x" * 200_000, "index": 1}).encode() + b"\n"
    res = api.items(batch_id, ndjson([item(0)]) + late)
    assert res.status == 413 and res.json()["issues"][0]["line"] == 2
    assert list(messages_by_index(api)) == [0]


def test_repeated_index_in_one_request_keeps_the_first_and_counts_the_rest(api: BatchApi) -> None:
    batch_id = api.create_id(2)
    lines = [item(0, payload="first")] + [item(0, payload=f"repeat {n}") for n in range(20)] + [item(1)]
    res = api.items(batch_id, lines)
    assert res.status == 200, res.body
    body = res.json()
    assert body["itemsAccepted"] == 2 and body["itemsDeduplicated"] == 20 and body["sealed"] is True
    queued = messages_by_index(api)
    assert [m["payload"] for m in queued[0]] == ["first"]


def upload_payload(api: BatchApi, batch_id: str, index: int, data: bytes) -> None:
    res = api.call(
        "POST",
        f"/api/v3/batches/{batch_id}/payloads",
        json_body={"indices": [index]},
        headers=api.tenant.headers,
    )
    assert res.status == 200, res.body
    (upload,) = res.json()["uploads"]
    key = keys.item_payload(api.tenant.env.tenant, batch_id, index)
    assert httpx.URL(upload["url"]).path.endswith(key)
    # What the client's PUT to the presigned URL stores, written straight to moto's S3.
    api.aws.s3.put_object(Bucket=get_settings().payload_bucket, Key=key, Body=data)


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n", b"{not json", b'{"x": NaN}', b"\xff\xfe{}"])
def test_uploaded_payload_that_is_not_json_is_a_422_naming_the_index(api: BatchApi, data: bytes) -> None:
    batch_id = api.create_id(2)
    upload_payload(api, batch_id, 1, data)
    res = api.items(batch_id, [item(0), {"index": 1, "task": "t", "options": STORE}])
    assert res.status == 422, res.body
    assert res.json()["code"] == "invalid_batch_item" and "index 1" in res.json()["error"]
    assert 1 not in messages_by_index(api)


def test_uploaded_payload_over_the_limit_is_a_422(api: BatchApi, configure: Callable[..., None]) -> None:
    configure(max_payload_bytes=100)
    batch_id = api.create_id(1)
    upload_payload(api, batch_id, 0, json.dumps({"blob": "x" * 200}).encode())
    res = api.items(batch_id, [{"index": 0, "task": "t", "options": STORE}])
    assert res.status == 422 and "limit is 100" in res.json()["error"]


def test_uploaded_json_payload_becomes_the_runs_payload(api: BatchApi) -> None:
    batch_id = api.create_id(1)
    upload_payload(api, batch_id, 0, b'{"uploaded": true}')
    res = api.items(batch_id, [{"index": 0, "task": "t", "options": STORE}])
    assert res.status == 200 and res.json()["sealed"] is True
    api.run_items()
    got = api.get(batch_id).json()
    run = api.call("GET", f"/api/v1/runs/{got['runs'][0]}", headers=api.tenant.headers).json()
    assert run["payload"] == {"uploaded": True}


def test_a_request_over_the_line_limit_is_a_413_before_any_line_is_read(
    api: BatchApi, configure: Callable[..., None]
) -> None:
    configure(batch_request_max_lines=5)
    batch_id = api.create_id(6)
    res = api.items(batch_id, ndjson([item(i) for i in range(6)]))
    assert (res.status, res.json()["code"]) == (413, "too_many_lines"), res.body
    assert api.queued_items() == []
    blank_lines = ndjson([item(i) for i in range(5)]) + b"\n\n\n"  # blank lines are no items
    assert api.items(batch_id, blank_lines).status == 200


def test_a_request_out_of_time_is_a_413_and_keeps_what_it_queued(
    api: BatchApi, configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that cannot finish in SLUICE_BATCH_REQUEST_BUDGET_S answers long before the
    function's timeout; the items it queued stay, and sending the body again completes the batch
    without queueing any item twice."""
    configure(batch_request_budget_s=0.3, batch_ingest_concurrency=1)
    batch_id = api.create_id(40)
    real_process = items_module.process

    def slow(batch: Any, lines: Any, pool: Any = None) -> Any:
        time.sleep(0.05)  # a slow dependency
        return real_process(batch, lines, pool)

    monkeypatch.setattr(items_module, "process", slow)
    body = ndjson([item(i) for i in range(40)])
    started = time.monotonic()
    res = api.items(batch_id, body)
    assert (res.status, res.json()["code"]) == (413, "time_budget_exceeded"), res.body
    queued = messages_by_index(api)
    assert 0 < len(queued) < 40
    configure(batch_request_budget_s=60)
    again = api.items(batch_id, body)
    assert again.status == 200 and again.json()["sealed"] is True, again.body
    rest = messages_by_index(api)  # the queue shows what it has not shown yet
    assert sorted([*queued, *rest]) == list(range(40)), "every index queued once"
    assert all(len(bodies) == 1 for bodies in rest.values())
    assert time.monotonic() - started < 60


def test_the_budget_ends_before_the_invocation_does(
    api: BatchApi, configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_module, "REQUEST_RESERVE_S", 29.0)  # of the 29 s function timeout
    batch_id = api.create_id(3)
    res = api.items(batch_id, ndjson([item(i) for i in range(3)]))
    assert (res.status, res.json()["code"]) == (413, "time_budget_exceeded"), res.body


def test_the_trigger_dev_sdk_hears_out_of_time_as_not_sealed(
    api: BatchApi, configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK gives up on a 413 but streams again on ``sealed: false``: that is its answer, so a
    batch too large for one request's time completes over several (repeats deduplicated)."""
    configure(batch_request_budget_s=0.3, batch_ingest_concurrency=1)
    batch_id = api.create_id(40)
    real_process = items_module.process

    def slow(batch: Any, lines: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)
        return real_process(batch, lines, **kwargs)

    monkeypatch.setattr(items_module, "process", slow)
    headers = {**api.tenant.headers, "content-type": "application/x-ndjson", "trigger-version": "4.8.3"}
    body = ndjson([item(i) for i in range(40)])
    res = api.call("POST", f"/api/v3/batches/{batch_id}/items", body=body, headers=headers)
    assert res.status == 200, res.body
    answer = res.json()
    assert answer["sealed"] is False and answer["expectedCount"] == 40
    assert 0 < answer["enqueuedCount"] < 40
    configure(batch_request_budget_s=60)
    again = api.call("POST", f"/api/v3/batches/{batch_id}/items", body=body, headers=headers)
    assert again.status == 200 and again.json()["sealed"] is True
