"""Fields that share a DynamoDB item are bounded, so that no request that passed its checks can
fail to be written (a ValidationException, a 500): metadata, a session's base payload, a run's
streams. Refused with a 4xx before anything is written, on every path a run is made by."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from sluice.config import get_settings, reload_settings
from tests.conftest import AwsStack, HttpResult, Tenant, make_tenant

KIB = 1024
TRIGGER = "/api/v1/tasks/hello/trigger"


def sized(limit: int) -> dict[str, str]:
    """An object whose compact JSON is exactly ``limit`` bytes."""
    return {"m": "x" * (limit - len('{"m":""}'))}


def trigger(call_api: Any, tenant: Tenant, body: dict[str, Any]) -> HttpResult:
    result: HttpResult = call_api("POST", TRIGGER, json_body=body, headers=tenant.headers)
    return result


def table_items(aws: AwsStack, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = aws.dynamodb.scan(TableName=aws.stack.physical_name(table))["Items"]
    return items


def bucket_keys(aws: AwsStack) -> list[str]:
    listing = aws.s3.list_objects_v2(Bucket=aws.stack.physical_name("PayloadBucket"))
    return [o["Key"] for o in listing.get("Contents", [])]


def assert_nothing_written(aws: AwsStack, bucket: list[str] | None = None) -> None:
    assert table_items(aws, "RunsTable") == []
    assert table_items(aws, "IdempotencyTable") == []
    assert bucket_keys(aws) == (bucket or [])
    assert aws.bodies("RunQueue") == []


def assert_too_large(res: HttpResult, code: str) -> None:
    assert res.status == 413, res.body
    body = res.json()
    assert body["code"] == code and str(get_settings().max_metadata_bytes) in body["error"], body


# --- triggers ------------------------------------------------------------------------------------

# The brief's case: an inline payload (under the 256 KiB offload threshold) beside 300 KiB of
# metadata is over DynamoDB's 400 KB item; the old code answered it with an unhandled 500.
OVERSIZED = {"payload": "p" * (250 * KIB), "options": {"metadata": sized(300 * KIB), "idempotencyKey": "k"}}


def test_a_trigger_whose_metadata_would_overflow_the_run_item_is_413_and_writes_nothing(
    aws: AwsStack, tenant: Tenant, call_api: Any
) -> None:
    assert_too_large(trigger(call_api, tenant, OVERSIZED), "metadata_too_large")
    assert_nothing_written(aws)


def test_metadata_is_accepted_up_to_its_limit_and_refused_one_byte_over(
    aws: AwsStack, tenant: Tenant, call_api: Any
) -> None:
    limit = get_settings().max_metadata_bytes
    over = trigger(call_api, tenant, {"payload": 1, "options": {"metadata": sized(limit + 1)}})
    assert_too_large(over, "metadata_too_large")
    at = trigger(call_api, tenant, {"payload": 1, "options": {"metadata": sized(limit)}})
    assert at.status == 200, at.body
    run = call_api("GET", f"/api/v1/runs/{at.json()['id']}", headers=tenant.headers).json()
    assert run["metadata"] == sized(limit)


def test_the_metadata_limit_is_a_setting(
    aws: AwsStack, tenant: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_MAX_METADATA_BYTES", "100")
    reload_settings()
    assert_too_large(trigger(call_api, tenant, {"options": {"metadata": sized(101)}}), "metadata_too_large")
    assert trigger(call_api, tenant, {"options": {"metadata": sized(100)}}).status == 200


def test_a_trigger_the_burst_buffer_would_take_is_refused_before_it_is_accepted(
    aws: AwsStack, redis_client: redis.Redis, call_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused at intake, not accepted (200) and then failed by the drainer."""
    monkeypatch.setenv("SLUICE_MOLLIFIER_ENABLED", "true")
    monkeypatch.setenv("SLUICE_MOLLIFIER_TRIP_THRESHOLD", "0")
    reload_settings()
    tenant = make_tenant(mollifierEnabled=True)
    control = trigger(call_api, tenant, {"payload": "p" * (250 * KIB)})
    assert control.status == 200 and "notice" in control.json(), "the control trigger is buffered"
    redis_client.flushall()
    aws.sqs.purge_queue(QueueUrl=aws.queue_urls["DrainQueue"])
    control_signal = bucket_keys(aws)  # the control's drain signal carries its entry in the bucket

    assert_too_large(trigger(call_api, tenant, OVERSIZED), "metadata_too_large")
    assert redis_client.keys("*") == [], "refused before the buffer, its idempotency or the gate"
    assert aws.receive_all("DrainQueue") == []
    assert_nothing_written(aws, bucket=control_signal)


# --- sessions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "code"),
    [("metadata", "metadata_too_large"), ("basePayload", "base_payload_too_large")],
)
def test_a_session_whose_fields_would_overflow_its_item_is_413_and_writes_nothing(
    aws: AwsStack, tenant: Tenant, call_api: Any, field: str, code: str
) -> None:
    body: dict[str, Any] = {"type": "chat", "taskId": "agent", "externalId": "conv-1"}
    if field == "metadata":
        body["metadata"] = sized(get_settings().max_metadata_bytes + 1)
    else:
        body["triggerConfig"] = {"basePayload": sized(get_settings().session_base_payload_max_bytes + 1)}
    res = call_api("POST", "/api/v1/sessions", json_body=body, headers=tenant.headers)
    assert res.status == 413, res.body
    assert res.json()["code"] == code
    assert table_items(aws, "SessionsTable") == []
    assert_nothing_written(aws)


# --- streams of a run ----------------------------------------------------------------------------


def mint(call_api: Any, tenant: Tenant, run_id: str, key: str) -> HttpResult:
    result: HttpResult = call_api("PUT", f"/realtime/v1/streams/{run_id}/{key}", headers=tenant.headers)
    return result


@pytest.fixture
def streams_run(aws: AwsStack, redis_client: redis.Redis, tenant: Tenant, call_api: Any) -> str:
    res = trigger(call_api, tenant, {"payload": 1})
    assert res.status == 200, res.body
    return str(res.json()["id"])


def stream_keys(aws: AwsStack, run_id: str) -> set[str]:
    table = aws.stack.physical_name("RunsTable")
    got = aws.dynamodb.get_item(TableName=table, Key={"runId": {"S": run_id}})["Item"]
    return set(got.get("streamKeys", {}).get("SS", []))


def test_a_run_takes_streams_up_to_its_limit_then_409(
    aws: AwsStack, tenant: Tenant, call_api: Any, streams_run: str
) -> None:
    limit = get_settings().max_streams_per_run
    for i in range(limit):
        assert mint(call_api, tenant, streams_run, f"s{i}").status == 200
    res = mint(call_api, tenant, streams_run, "one-more")
    assert res.status == 409 and res.json()["code"] == "too_many_streams", res.body
    assert mint(call_api, tenant, streams_run, "s0").status == 200, "a key the run has is minted again"
    assert stream_keys(aws, streams_run) == {f"s{i}" for i in range(limit)}


def test_racing_mints_never_record_more_streams_than_the_limit(
    aws: AwsStack, tenant: Tenant, call_api: Any, streams_run: str
) -> None:
    limit = get_settings().max_streams_per_run
    attempt: Callable[[int], HttpResult] = lambda i: mint(call_api, tenant, streams_run, f"k{i}")  # noqa: E731
    with ThreadPoolExecutor(8) as pool:
        statuses = [res.status for res in pool.map(attempt, range(3 * limit))]
    assert sorted(set(statuses)) == [200, 409] and statuses.count(200) == limit
    assert len(stream_keys(aws, streams_run)) == limit


def test_a_mint_for_a_run_that_does_not_exist_is_still_404(
    aws: AwsStack, redis_client: redis.Redis, tenant: Tenant, call_api: Any
) -> None:
    res = mint(call_api, tenant, "run_nope", "s")
    assert res.status == 404 and res.json()["code"] == "not_found"
