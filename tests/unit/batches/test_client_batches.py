"""client.batches.trigger against the real handlers: httpx requests are answered in-process by
the batch_ingest handler, and presigned S3 PUTs by moto."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from sluice_client import BatchNotSealedError, BatchTriggerError, Sluice
from sluice_client.batches import Batches, BatchTriggerResult
from sluice_client.transport import RetryOptions, Transport
from tests.unit.batches.conftest import BatchApi, fake_batch_routes
from tests.unit.batches.test_ingest import status
from tests.unit.batches.test_staged import run_staged

Mangle = Callable[[httpx.Request, bytes], bytes]


class Bridge:
    """An httpx transport onto the in-process API and moto's S3."""

    def __init__(self, api: BatchApi) -> None:
        self.api = api
        self.requests: list[tuple[str, str]] = []
        self.mangle: Mangle | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.requests.append((request.method, request.url.path))
        if request.url.host.endswith("amazonaws.com"):
            return self._s3(request, body)
        if self.mangle and request.url.path.endswith("/items"):
            body = self.mangle(request, body)
        path = request.url.path + (f"?{request.url.query.decode()}" if request.url.query else "")
        res = self.api.call(request.method, path, body=body, headers=dict(request.headers))
        return httpx.Response(res.status, headers=res.headers, content=res.body.encode())

    def _s3(self, request: httpx.Request, body: bytes) -> httpx.Response:
        assert "authorization" not in request.headers  # the API key never goes to S3
        path = unquote(request.url.path).lstrip("/")
        if request.url.host.startswith("s3."):  # path-style
            bucket, _, key = path.partition("/")
        else:  # virtual-hosted: <bucket>.s3.amazonaws.com/<key>
            bucket, key = request.url.host.split(".s3")[0], path
        self.api.aws.s3.put_object(Bucket=bucket, Key=key, Body=body)
        return httpx.Response(200)


@pytest.fixture
def bridge(api: BatchApi) -> Bridge:
    return Bridge(api)


@pytest.fixture
def client(bridge: Bridge, api: BatchApi) -> Sluice:
    mock = httpx.MockTransport(bridge)
    http = httpx.Client(base_url="http://sluice.test", transport=mock, headers=api.tenant.headers)
    transport = Transport("http://sluice.test", "unused", http=http, sleep=lambda _: None)
    sluice = Sluice("http://sluice.test", "unused", transport=transport)
    sluice.batches = Batches(transport, uploads=httpx.Client(transport=mock))
    return sluice


FAST = RetryOptions(max_attempts=3, min_delay_s=0, max_delay_s=0, randomize=False)


def items(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"task": "hello", "payload": {"n": i}, **extra} for i in range(n)]


def test_trigger_creates_streams_and_seals(client: Sluice, api: BatchApi) -> None:
    result = client.batches.trigger(items(5), idempotency_key="k")
    assert result == BatchTriggerResult(result.id, 5, is_cached=False, sealed=True)
    api.run_items()
    assert client.batches.retrieve(result.id)["status"] == "COMPLETED"
    again = client.batches.trigger(items(5), idempotency_key="k")
    assert again.is_cached and again.id == result.id


def test_large_batches_are_split_over_several_requests(client: Sluice, bridge: Bridge, api: BatchApi) -> None:
    client.batches.max_request_bytes = 300
    result = client.batches.trigger(items(40))
    streams = [r for r in bridge.requests if r[1].endswith("/items")]
    assert result.sealed and len(streams) > 5
    assert status(api, result.id)["enqueuedCount"] == 40


def test_retries_when_sealed_false_and_succeeds_when_sealed_true_on_retry(
    client: Sluice, bridge: Bridge
) -> None:
    calls = [0]

    def drop_last_line_once(request: httpx.Request, body: bytes) -> bytes:
        calls[0] += 1
        return b"\n".join(body.split(b"\n")[:-2]) + b"\n" if calls[0] == 1 else body

    bridge.mangle = drop_last_line_once
    assert client.batches.trigger(items(3), retry=FAST).sealed is True
    assert calls[0] == 2


def test_throws_batch_not_sealed_error_when_sealed_false_after_retries_exhausted(
    client: Sluice, bridge: Bridge
) -> None:
    bridge.mangle = lambda request, body: b"\n".join(body.split(b"\n")[:-2]) + b"\n"
    with pytest.raises(BatchNotSealedError) as err:
        client.batches.trigger(items(3), retry=FAST)
    assert (err.value.phase, err.value.enqueued_count, err.value.expected_count) == ("stream", 2, 3)
    assert "2 of 3 items enqueued" in str(err.value)


def test_server_errors_are_retried_and_client_errors_carry_the_phase(
    client: Sluice, bridge: Bridge, api: BatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice.batches import items as server_items
    from sluice.errors import ServiceUnavailable

    real, failures = server_items.state.mark_enqueued, [1]

    def flaky(batch_id: str, indexes: list[int]) -> int:
        if failures[0]:
            failures[0] -= 1
            raise ServiceUnavailable("down")
        return real(batch_id, indexes)

    monkeypatch.setattr(server_items.state, "mark_enqueued", flaky)
    assert client.batches.trigger(items(2), retry=FAST).sealed is True

    with pytest.raises(BatchTriggerError) as err:
        client.batches.trigger([{"task": "t", "options": {"bogus": True}}], retry=FAST)
    assert err.value.phase == "stream" and err.value.batch_id and "422" in str(err.value)
    with pytest.raises(BatchTriggerError) as err:
        client.batches.trigger([], retry=FAST)
    assert err.value.phase == "create"


def test_large_payloads_are_offloaded_before_phase_2(client: Sluice, bridge: Bridge, api: BatchApi) -> None:
    big = {"blob": "b" * (200 * 1024)}
    result = client.batches.trigger([{"task": "t", "payload": big}, {"task": "t", "payload": 1}])
    assert any(path.endswith("/payloads") for _, path in bridge.requests)
    messages = api.queued_items()
    bodies = {json.loads(m["Body"])["index"]: json.loads(m["Body"]) for m in messages}
    assert "payloadRef" in bodies[0] and bodies[1]["payload"] == 1
    api.run_items(messages)
    run_id = status(api, result.id)["runs"][0]
    assert api.call("GET", f"/api/v1/runs/{run_id}", headers=api.tenant.headers).json()["payload"] == big


def test_store_payload_that_was_never_uploaded_is_a_422(api: BatchApi) -> None:
    batch_id = api.create_id(1)
    res = api.items(batch_id, [{"index": 0, "task": "t", "options": {"payloadType": "application/store"}}])
    assert res.status == 422 and "was not uploaded" in res.json()["error"]


def test_by_default_more_than_1000_items_are_staged() -> None:
    seen: list[dict[str, Any]] = []
    mock = httpx.MockTransport(fake_batch_routes(seen))
    http = httpx.Client(base_url="http://sluice.test", transport=mock)
    transport = Transport("http://sluice.test", "k", http=http)
    batches = Batches(transport, uploads=httpx.Client(transport=mock))
    assert not batches.trigger(items(1000), progress=False).staged
    assert batches.trigger(items(1001), progress=False).staged
    created = [(body["runCount"], body["staged"]) for body in seen if "runCount" in body]
    assert created == [(1000, False), (1001, True)]


def test_more_items_than_the_staging_threshold_go_through_a_staged_upload(
    client: Sluice, api: BatchApi
) -> None:
    api.aws.receive_all("StagedIngestQueue")  # moto's s3:TestEvent
    api.aws.receive_all("StagedIngestQueue")
    client.batches.stage_above_items = 20
    assert not client.batches.trigger(items(20), progress=False).staged
    seen: list[tuple[int, int]] = []
    result = client.batches.trigger(items(21), progress=lambda sent, total: seen.append((sent, total)))
    assert result.staged and not result.sealed
    assert seen[-1][0] == seen[-1][1] > 0
    run_staged(api)
    got = client.batches.retrieve(result.id)
    assert got["sealed"] is True and got["enqueuedCount"] == 21
