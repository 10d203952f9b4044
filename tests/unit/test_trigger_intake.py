"""Trigger intake through the real handler, with moto in-process."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from sluice import aws as sluice_aws
from sluice import triggers
from sluice.config import reload_settings
from sluice.engine import service
from tests.conftest import AwsStack, HttpResult, Tenant, make_tenant


def trigger(call_api: Any, tenant: Tenant, task: str = "hello", **body: Any) -> HttpResult:
    result: HttpResult = call_api(
        "POST", f"/api/v1/tasks/{task}/trigger", json_body=body, headers=tenant.headers
    )
    return result


def run_ids_on_queue(aws: AwsStack) -> list[str]:
    return [m["runId"] for m in aws.bodies("RunQueue")]


def test_trigger_creates_a_run_and_enqueues_it_once(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    res = trigger(call_api, tenant, payload={"n": 1}, options={"tags": ["a", "b"]})
    assert res.status == 200, res.body
    run_id = res.json()["id"]
    assert run_id.startswith("run_") and res.json()["isCached"] is False

    got = call_api("GET", f"/api/v1/runs/{run_id}", headers=tenant.headers)
    assert got.status == 200
    run = got.json()
    assert run["taskId"] == "hello" and run["payload"] == {"n": 1} and run["tags"] == ["a", "b"]
    assert run["status"] == "QUEUED" and run["buffered"] is False
    assert "envId" not in run and "orgId" not in run
    assert run_ids_on_queue(aws) == [run_id]


def test_run_queue_message_is_grouped_by_organization(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    trigger(call_api, tenant, payload=1)
    (message,) = aws.receive_all("RunQueue")
    assert message["Attributes"]["MessageGroupId"] == tenant.env.org_id


def test_same_idempotency_key_returns_the_cached_run(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    first = trigger(call_api, tenant, payload=1, options={"idempotencyKey": "k1"}).json()
    second = trigger(call_api, tenant, payload=2, options={"idempotencyKey": "k1"}).json()
    assert second == {"id": first["id"], "isCached": True}
    assert run_ids_on_queue(aws) == [first["id"]]


def test_idempotency_key_is_scoped_to_task_and_environment(
    aws: AwsStack, tenant: Tenant, call_api: Any
) -> None:
    other_env = make_tenant("org_a", "env_a_prod")
    a = trigger(call_api, tenant, "t1", options={"idempotencyKey": "k"}).json()["id"]
    b = trigger(call_api, tenant, "t2", options={"idempotencyKey": "k"}).json()["id"]
    c = trigger(call_api, other_env, "t1", options={"idempotencyKey": "k"}).json()["id"]
    assert len({a, b, c}) == 3


def test_expired_idempotency_key_lets_a_new_run_through(
    aws: AwsStack, tenant: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {"idempotencyKey": "k", "idempotencyKeyTTL": "10s"}
    first = trigger(call_api, tenant, options=options).json()["id"]
    assert trigger(call_api, tenant, options=options).json() == {"id": first, "isCached": True}

    later = datetime.now(UTC) + timedelta(seconds=11)
    monkeypatch.setattr(service, "_now", lambda: later)
    third = trigger(call_api, tenant, options=options).json()
    assert third["isCached"] is False and third["id"] != first


def test_default_idempotency_ttl_is_thirty_days(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    run_id = trigger(call_api, tenant, options={"idempotencyKey": "k"}).json()["id"]
    run = call_api("GET", f"/api/v1/runs/{run_id}", headers=tenant.headers).json()
    created = datetime.fromisoformat(run["createdAt"])
    expires = datetime.fromisoformat(run["idempotencyKeyExpiresAt"])
    assert expires - created == timedelta(days=30)


def test_another_environments_run_is_not_found(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    run_id = trigger(call_api, tenant).json()["id"]
    stranger = make_tenant("org_b", "env_b_dev")
    res = call_api("GET", f"/api/v1/runs/{run_id}", headers=stranger.headers)
    assert res.status == 404 and res.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "unauthorized"),
        ({"authorization": "Basic abc"}, "unauthorized"),
        ({"authorization": "Bearer sk_dev_unknown"}, "unauthorized"),
    ],
)
def test_missing_or_unknown_key_is_401(
    aws: AwsStack, call_api: Any, headers: dict[str, str], code: str
) -> None:
    res = call_api("POST", "/api/v1/tasks/t/trigger", json_body={"payload": 1}, headers=headers)
    assert res.status == 401 and res.json()["code"] == code
    assert aws.bodies("RunQueue") == []


def test_malformed_json_is_400(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    res = call_api("POST", "/api/v1/tasks/t/trigger", body="{not json", headers=tenant.headers)
    assert res.status == 400 and res.json()["code"] == "invalid_json"


def test_idempotency_key_over_2048_characters_is_400(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    res = trigger(call_api, tenant, options={"idempotencyKey": "x" * 2049})
    assert res.status == 400 and res.json()["code"] == "idempotency_key_too_long"
    assert trigger(call_api, tenant, options={"idempotencyKey": "x" * 2048}).status == 200


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"tags": [f"t{i}" for i in range(11)]}, ["options", "tags"]),
        ({"maxAttempts": 0}, ["options", "maxAttempts"]),
        ({"idempotencyKeyTTL": "forever"}, ["options", "idempotencyKeyTTL"]),
        ({"idempotencyKey": "k", "unknownOption": True}, ["options", "unknownOption"]),
    ],
)
def test_invalid_fields_are_422_with_issues(
    aws: AwsStack, tenant: Tenant, call_api: Any, options: dict[str, Any], path: list[str]
) -> None:
    res = trigger(call_api, tenant, options=options)
    assert res.status == 422
    assert path in [issue["path"] for issue in res.json()["issues"]]
    assert aws.bodies("RunQueue") == []


def test_body_that_is_not_an_object_is_422(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    res = call_api("POST", "/api/v1/tasks/t/trigger", json_body=[1, 2], headers=tenant.headers)
    assert res.status == 422


def test_invalid_delay_is_422(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    res = trigger(call_api, tenant, options={"delay": "next tuesday"})
    assert res.status == 422 and res.json()["code"] == "invalid_delay"


def test_delay_makes_a_delayed_run(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    run_id = trigger(call_api, tenant, options={"delay": "1h"}).json()["id"]
    run = call_api("GET", f"/api/v1/runs/{run_id}", headers=tenant.headers).json()
    assert run["status"] == "DELAYED"
    assert datetime.fromisoformat(run["delayUntil"]) > datetime.now(UTC) + timedelta(minutes=59)


def test_payload_over_the_limit_is_413(
    aws: AwsStack, tenant: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_MAX_PAYLOAD_BYTES", "1000")
    reload_settings()
    res = trigger(call_api, tenant, payload="x" * 1000)
    assert res.status == 413 and res.json()["code"] == "payload_too_large"
    assert trigger(call_api, tenant, payload="x" * 990).status == 200


def test_large_payload_is_offloaded_to_s3_and_read_back(
    aws: AwsStack, tenant: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_PAYLOAD_OFFLOAD_BYTES", "100")
    reload_settings()
    payload = {"blob": "y" * 500, "n": [1, 2.5, None]}
    run_id = trigger(call_api, tenant, payload=payload).json()["id"]

    item = aws.dynamodb.get_item(
        TableName=aws.stack.physical_name("RunsTable"), Key={"runId": {"S": run_id}}
    )["Item"]
    doc = json.loads(item["doc"]["S"])
    assert doc["payload"] is None and doc["payloadRef"].endswith(f"{run_id}.json")
    stored = aws.s3.get_object(Bucket=aws.stack.physical_name("PayloadBucket"), Key=doc["payloadRef"])
    assert json.loads(stored["Body"].read()) == payload

    run = call_api("GET", f"/api/v1/runs/{run_id}", headers=tenant.headers).json()
    assert run["payload"] == payload and "payloadRef" not in run


def test_unknown_run_is_404(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    res = call_api("GET", "/api/v1/runs/run_nope", headers=tenant.headers)
    assert res.status == 404 and res.json()["code"] == "not_found"


def _failing(operation: str, real: Any, failures: list[int]) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        if failures[0] > 0:
            failures[0] -= 1
            raise EndpointConnectionError(endpoint_url=f"https://{operation}")
        return real(*args, **kwargs)

    return call


def test_queue_outage_answers_200_and_the_dispatcher_sends_the_run_when_it_is_back(
    aws: AwsStack, tenant: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request path does not touch SQS: a RunQueue outage neither fails the trigger nor
    leaves an unsent run (the gap the old send-on-request path had without a key)."""
    sqs = sluice_aws.sqs()
    real = sqs.send_message_batch
    monkeypatch.setattr(sqs, "send_message_batch", _failing("sqs", real, [99]))
    first = trigger(call_api, tenant, payload=1)
    assert first.status == 200 and first.json()["isCached"] is False
    assert aws.bodies("RunQueue") == []  # the dispatcher failed and will retry from this record

    monkeypatch.setattr(sqs, "send_message_batch", real)
    assert run_ids_on_queue(aws) == [first.json()["id"]]


def test_dynamodb_down_is_503_and_nothing_is_enqueued(
    aws: AwsStack, tenant: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ddb = sluice_aws.dynamodb()
    trigger(call_api, tenant)  # warms the auth cache, so the outage hits the run store
    aws.bodies("RunQueue")
    monkeypatch.setattr(ddb, "put_item", _failing("dynamodb", ddb.put_item, [99]))
    res = trigger(call_api, tenant, payload=1)
    assert res.status == 503
    assert aws.bodies("RunQueue") == []


REFUSALS = {
    "AccessDeniedException": "User: arn:aws:sts::123:assumed-role/x is not authorized to perform: PutItem",
    "ValidationException": "One or more parameter values were invalid: a misconfigured table",
}


@pytest.fixture(params=sorted(REFUSALS))
def refusing_run_store(
    request: pytest.FixtureRequest,
    aws: AwsStack,
    tenant: Tenant,
    call_api: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """The run store refuses every write with an AWS error code no client caused; returns it."""
    code: str = request.param
    trigger(call_api, tenant)  # warms the auth cache, so the refusal hits the run store
    aws.bodies("RunQueue")

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": code, "Message": REFUSALS[code]}}, "PutItem")

    monkeypatch.setattr(sluice_aws.dynamodb(), "put_item", refused)
    return code


def test_an_aws_refusal_that_is_not_the_clients_is_a_structured_500_logged_with_its_code(
    aws: AwsStack, tenant: Tenant, call_api: Any, caplog: pytest.LogCaptureFixture, refusing_run_store: str
) -> None:
    """Not retryable, so not a 503; not the request's fault, so not a 4xx: a 500 in the API's error
    shape whose cause is in the log, not in the body."""
    res = trigger(call_api, tenant, payload=1)
    assert res.status == 500, res.body
    body = res.json()
    assert set(body) == {"error", "code"} and body["code"] == "internal_error", body
    assert "Traceback" not in res.body and refusing_run_store not in res.body and "arn:aws" not in res.body
    [record] = [r for r in caplog.records if r.getMessage() == "unexpected error"]
    assert record.levelname == "ERROR" and record.exc_info is not None, "logged with its traceback"
    assert record.__dict__["awsErrorCode"] == refusing_run_store
    assert aws.bodies("RunQueue") == []


def test_unknown_route_is_a_structured_404(aws: AwsStack, tenant: Tenant) -> None:
    from devstack.apigw import Route, http_event
    from devstack.handlers import context_for, load_handler

    spec = aws.stack.function("trigger_intake")
    route = Route("GET", "/api/v1/unknown", spec.name)
    response = load_handler(spec)(http_event(route, "/api/v1/unknown", {}, tenant.headers), context_for(spec))
    assert response["statusCode"] == 404 and json.loads(response["body"])["code"] == "route_not_found"


def test_concurrent_triggers_with_one_key_send_one_message(aws: AwsStack, tenant: Tenant) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # The use case, not the HTTP handler, runs in the threads: Powertools' resolver is one object
    # per process that keeps the request it resolves on itself (Lambda runs one request per process).
    body = {"payload": 1, "options": {"idempotencyKey": "burst"}}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: triggers.trigger(tenant.env, "hello", body), range(8)))
    ids = {r.id for r in results}
    assert len(ids) == 1
    assert run_ids_on_queue(aws) == list(ids)


def test_concurrent_first_triggers_with_one_key_answer_exactly_one_uncached(
    aws: AwsStack, tenant: Tenant, call_api: Any
) -> None:
    """50 concurrent first triggers with one key: exactly one is answered ``isCached: false``.
    The race is timing-dependent, so it is repeated with a fresh key per trial."""
    from concurrent.futures import ThreadPoolExecutor

    trigger(call_api, tenant)  # warms the handler's caches so that the threads start together
    with ThreadPoolExecutor(50) as pool:
        for trial in range(12):
            body = {"payload": 1, "options": {"idempotencyKey": f"first-{trial}"}}
            # The use case in the threads, as in the test above: the resolver is per process.
            calls = [pool.submit(triggers.trigger, tenant.env, "hello", body) for _ in range(50)]
            results = [call.result() for call in calls]
            assert len({r.id for r in results}) == 1
            uncached = [r for r in results if r.is_cached is False]
            assert len(uncached) == 1, f"trial {trial}: {len(uncached)} answers were isCached: false"
