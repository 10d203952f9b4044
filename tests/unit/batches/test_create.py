"""Phase 1, POST /api/v3/batches, through the real handler."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from sluice.batches import keys, service
from sluice.config import get_settings
from tests.conftest import make_tenant
from tests.unit.batches.conftest import BatchApi


def test_create_returns_202_with_a_batch_id(api: BatchApi) -> None:
    res = api.create(3)
    assert res.status == 202, res.body
    body = res.json()
    assert keys.is_batch_id(body["id"]) and body == {"id": body["id"], "runCount": 3, "isCached": False}
    status = api.get(body["id"]).json()
    assert status["status"] == "PENDING" and status["sealed"] is False and status["enqueuedCount"] == 0


@pytest.mark.parametrize("count", [0, -1, 1.5, "3", True])
def test_run_count_must_be_a_positive_integer(api: BatchApi, count: Any) -> None:
    res = api.create(count)
    assert res.status == 400 and res.json()["error"] == "runCount must be a positive integer"


def test_run_count_over_the_maximum_is_a_400(api: BatchApi) -> None:
    # The trigger.dev SDK sends a batch whole: 10 000 items is the most, and the default bucket
    # admits one that large at once.
    assert get_settings().batch_max_items == 10_000
    assert api.create(10_000).status == 202
    res = api.create(10_001)
    assert res.status == 400
    assert res.json()["error"].startswith("Batch runCount of 10001 exceeds maximum allowed of 10000.")


def test_idempotency_key_over_2048_characters_is_a_400(api: BatchApi) -> None:
    assert api.create(1, idempotencyKey="k" * 2048).status == 202
    res = api.create(1, idempotencyKey="k" * 2049)
    assert res.status == 400 and res.json()["code"] == "idempotency_key_too_long"


def test_unknown_field_is_a_422(api: BatchApi) -> None:
    res = api.create(1, bogus=True)
    assert res.status == 422 and res.json()["issues"][0]["path"] == ["bogus"]


def test_same_idempotency_key_returns_200_and_the_cached_batch(api: BatchApi) -> None:
    first = api.create(2, idempotencyKey="nightly")
    second = api.create(5, idempotencyKey="nightly")
    assert first.status == 202 and second.status == 200
    assert second.json() == {
        "id": first.json()["id"],
        "runCount": 2,
        "isCached": True,
        "idempotencyKey": "nightly",
    }


def test_idempotency_key_is_scoped_to_the_environment(api: BatchApi) -> None:
    other = make_tenant("org_a", "env_a_prod")
    a = api.create(1, idempotencyKey="k").json()["id"]
    b = api.create(1, tenant=other, idempotencyKey="k").json()["id"]
    assert a != b


def test_expired_idempotency_key_makes_a_new_batch(api: BatchApi, monkeypatch: pytest.MonkeyPatch) -> None:
    first = api.create(1, idempotencyKey="k", idempotencyKeyTTL="10s").json()["id"]
    assert api.create(1, idempotencyKey="k", idempotencyKeyTTL="10s").status == 200
    later = datetime.now(UTC) + timedelta(seconds=12)
    monkeypatch.setattr(service, "_now", lambda: later)
    second = api.create(1, idempotencyKey="k", idempotencyKeyTTL="10s")
    assert second.status == 202 and second.json()["id"] != first


def test_rate_limit_answers_429_with_retry_after_and_rate_limit_headers(
    api: BatchApi, configure: Callable[..., None]
) -> None:
    configure(batch_rate_limit_max=10, batch_rate_limit_refill=5, batch_rate_limit_interval_s=60)
    assert api.create(6).status == 202
    res = api.create(6)
    assert res.status == 429 and res.json()["code"] == "batch_rate_limited"
    headers = {k.lower(): v for k, v in res.headers.items()}
    assert headers["x-ratelimit-limit"] == "10" and headers["x-ratelimit-remaining"] == "4"
    assert 1 <= int(headers["retry-after"]) <= 60
    # Unix milliseconds, as the trigger.dev SDK reads it (it waits until then, then retries).
    reset_ms = int(headers["x-ratelimit-reset"])
    assert time.time() * 1000 < reset_ms <= (time.time() + 61) * 1000
    assert api.create(4).status == 202  # what is left still fits


def test_rate_limit_is_per_environment(api: BatchApi, configure: Callable[..., None]) -> None:
    configure(batch_rate_limit_max=5, batch_rate_limit_refill=1, batch_rate_limit_interval_s=60)
    assert api.create(5).status == 202
    assert api.create(1).status == 429
    assert api.create(5, tenant=make_tenant("org_b", "env_b_dev")).status == 202


def test_rate_limit_refills_over_time(api: BatchApi, configure: Callable[..., None]) -> None:
    configure(batch_rate_limit_max=4, batch_rate_limit_refill=4, batch_rate_limit_interval_s=0.3)
    assert api.create(4).status == 202
    assert api.create(4).status == 429
    time.sleep(0.35)
    assert api.create(4).status == 202


def test_cached_create_spends_no_tokens(api: BatchApi, configure: Callable[..., None]) -> None:
    configure(batch_rate_limit_max=3, batch_rate_limit_refill=1, batch_rate_limit_interval_s=60)
    assert api.create(3, idempotencyKey="k").status == 202
    assert api.create(3, idempotencyKey="k").status == 200


def test_redis_down_is_a_503_and_creates_nothing(
    api: BatchApi, configure: Callable[..., None], redis_client: redis.Redis
) -> None:
    configure(redis_url="redis://127.0.0.1:1/0", redis_connect_timeout_ms=50, redis_retries=0)
    from sluice.redis import reset_redis

    reset_redis()
    res = api.create(3, idempotencyKey="k")
    assert res.status == 503 and res.json()["code"] == "service_unavailable"
    assert api.aws.dynamodb.scan(TableName=api.aws.stack.physical_name("BatchesTable"))["Items"] == []


def test_staged_create_returns_a_presigned_put_url(api: BatchApi) -> None:
    res = api.create(50_000, staged=True)
    assert res.status == 202, res.body
    upload = res.json()["upload"]
    assert upload["method"] == "PUT" and upload["headers"] == {"content-type": "application/x-ndjson"}
    assert f"staging/org_a/env_a_dev/{res.json()['id']}.ndjson" in upload["url"]
    assert "X-Amz-Signature=" in upload["url"]


def test_staged_run_count_over_its_maximum_is_a_400(api: BatchApi) -> None:
    res = api.create(100_001, staged=True)
    assert res.status == 400 and "maximum allowed of 100000" in res.json()["error"]


def test_another_environments_batch_is_not_found(api: BatchApi) -> None:
    batch_id = api.create_id(1)
    assert api.get(batch_id, tenant=make_tenant("org_b", "env_b_dev")).status == 404
    assert api.get("batch_nope").status == 404


def test_missing_api_key_is_a_401(api: BatchApi) -> None:
    res = api.call("POST", "/api/v3/batches", json_body={"runCount": 1})
    assert res.status == 401
