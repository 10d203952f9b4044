"""``tasks.trigger`` of the trigger.dev SDK: what the worker receives, what the run keeps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.compat.conftest import CompatTenant, Received, unique

pytestmark = [pytest.mark.compat, pytest.mark.devstack]


def test_the_worker_receives_the_object_the_user_passed(compat: CompatTenant, worker: Received) -> None:
    payload = {"to": "ada@example.com", "n": 3, "nested": {"list": [1, "two", None, True]}}
    handle = compat.sdk("tasks.trigger", "compat-echo", payload)
    assert handle["id"].startswith("run_")

    received = worker.wait_for(handle["id"])
    assert received.payload == payload
    run = compat.client.runs.retrieve(handle["id"])
    assert run["payload"] == payload
    assert run["payloadType"] == "application/super+json"


def test_superjson_dates_maps_sets_and_bigints_reach_the_python_worker(
    compat: CompatTenant, worker: Received
) -> None:
    payload = {
        "at": {"$date": "2026-01-02T03:04:05.678Z"},
        "byName": {"$map": [["a", 1], ["b", {"$set": [1, 2]}]]},
        "tags": {"$set": ["x", "y"]},
        "big": {"$bigint": "12345678901234567890"},
        "plain": [1, 2],
    }
    handle = compat.sdk("tasks.trigger", "compat-echo", payload)

    received = worker.wait_for(handle["id"]).payload
    assert received["at"] == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert received["byName"] == {"a": 1, "b": {1, 2}}
    assert received["tags"] == {"x", "y"}
    assert received["big"] == 12345678901234567890
    assert received["plain"] == [1, 2]


def test_a_string_payload_stays_a_string(compat: CompatTenant, worker: Received) -> None:
    handle = compat.sdk("tasks.trigger", "compat-echo", "just text")
    assert worker.wait_for(handle["id"]).payload == "just text"
    assert compat.client.runs.retrieve(handle["id"])["payloadType"] == "text/plain"


def test_every_option_the_sdk_sends_is_accepted_and_lands(compat: CompatTenant) -> None:
    options: dict[str, Any] = {
        "queue": "compat-queue",
        "concurrencyKey": "tenant-7",
        "delay": "1h",
        "ttl": "10m",
        "tags": ["a", "b"],
        "maxAttempts": 4,
        "metadata": {"source": "compat"},
        "maxDuration": 300,
        "machine": "small-2x",
        "priority": 30,
        "idempotencyKey": unique("key"),
        "idempotencyKeyTTL": "5m",
    }
    handle = compat.sdk("tasks.trigger", "compat-other", {"x": 1}, options)

    run = compat.client.runs.retrieve(handle["id"])
    assert run["status"] == "DELAYED"
    assert run["queue"] == "compat-queue"
    assert run["concurrencyKey"] == "tenant-7"
    assert run["ttl"] == "10m"
    assert run["tags"] == ["a", "b"]
    assert run["maxAttempts"] == 4
    assert run["metadata"] == {"source": "compat"}
    assert run["maxDuration"] == 300
    assert run["machine"] == "small-2x"
    assert run["priority"] == 30
    # The SDK hashes the key it sends; the key the user gave is kept beside it.
    assert run["idempotencyKeyOptions"] == {"key": options["idempotencyKey"], "scope": "run"}
    assert run["idempotencyKey"] != options["idempotencyKey"]


def test_the_same_idempotency_key_returns_the_same_run(compat: CompatTenant) -> None:
    key = unique("welcome")
    first = compat.sdk("tasks.trigger", "compat-other", {"n": 1}, {"idempotencyKey": key})
    second = compat.sdk("tasks.trigger", "compat-other", {"n": 2}, {"idempotencyKey": key})
    other = compat.sdk("tasks.trigger", "compat-other", {"n": 3}, {"idempotencyKey": unique("welcome")})
    assert second["id"] == first["id"]
    assert other["id"] != first["id"]
    assert compat.client.runs.retrieve(first["id"])["payload"] == {"n": 1}


def test_a_payload_of_128_kib_or_more_goes_through_the_packet_store(
    compat: CompatTenant, worker: Received
) -> None:
    # The SDK uploads it (PUT /api/v2/packets/{file}, then the presigned URL) and triggers with
    # payloadType application/store and the packet's path as the payload.
    payload = {"blob": {"$bytes": 140 * 1024}, "n": 1}
    handle = compat.sdk("tasks.trigger", "compat-echo", payload)

    received = worker.wait_for(handle["id"]).payload
    assert received == {"blob": "x" * (140 * 1024), "n": 1}
