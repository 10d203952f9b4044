"""Hostile bodies and parameters on every JSON route: a structured 4xx, never a 5xx or a mangled value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import AwsStack, HttpResult, Tenant

JSON = {"content-type": "application/json"}


def post(call_api: Any, tenant: Tenant, path: str, body: bytes) -> HttpResult:
    result: HttpResult = call_api("POST", path, body=body, headers={**tenant.headers, **JSON})
    return result


def assert_error(res: HttpResult, status: int, code: str) -> dict[str, Any]:
    assert res.status == status, res.body
    body: dict[str, Any] = json.loads(res.body)
    assert body["code"] == code and body["error"], body
    return body


TRIGGER = "/api/v1/tasks/hello/trigger"
NON_STANDARD_NUMBERS = [
    b'{"payload": NaN}',
    b'{"payload": {"x": Infinity}}',
    b'{"payload": [-Infinity]}',
    b'{"payload": 1e400}',
    b'{"payload": 1, "options": {"metadata": {"x": 1e400}}}',
    b'{"payload": 1, "options": {"maxAttempts": NaN}}',
]


@pytest.mark.parametrize("body", NON_STANDARD_NUMBERS)
def test_trigger_rejects_numbers_json_cannot_hold(
    aws: AwsStack, tenant: Tenant, call_api: Any, body: bytes
) -> None:
    assert_error(post(call_api, tenant, TRIGGER, body), 400, "invalid_json")
    assert aws.bodies("RunQueue") == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"payload": "\xff\xfe"}',  # not UTF-8
        b'{"payload": ' + b"9" * 5000 + b"}",  # over Python's 4300-digit integer limit
        b"",
    ],
)
def test_trigger_rejects_bodies_that_do_not_decode(
    aws: AwsStack, tenant: Tenant, call_api: Any, body: bytes
) -> None:
    assert_error(post(call_api, tenant, TRIGGER, body), 400, "invalid_json")


@pytest.mark.parametrize("body", [b'{"runCount": 1, "idempotencyKeyTTL": 1e400}', b'{"runCount": NaN}'])
def test_batch_create_rejects_non_standard_numbers(
    aws: AwsStack, tenant: Tenant, call_api: Any, body: bytes
) -> None:
    assert_error(post(call_api, tenant, "/api/v3/batches", body), 400, "invalid_json")


@pytest.mark.parametrize(
    "options",
    [
        {"delay": 1e12},
        {"delay": "99999999999d"},
        {"ttl": "99999999999w"},
        {"idempotencyKey": "k", "idempotencyKeyTTL": 1e300},
    ],
)
def test_trigger_durations_that_overflow_are_422(
    aws: AwsStack, tenant: Tenant, call_api: Any, options: dict[str, Any]
) -> None:
    res = post(call_api, tenant, TRIGGER, json.dumps({"payload": 1, "options": options}).encode())
    assert 400 <= res.status < 500, res.body
    assert json.loads(res.body)["code"]
    assert aws.bodies("RunQueue") == []


def test_batch_idempotency_ttl_that_overflows_is_422(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    body = {"runCount": 1, "idempotencyKey": "k", "idempotencyKeyTTL": "99999999999d"}
    assert_error(
        post(call_api, tenant, "/api/v3/batches", json.dumps(body).encode()), 422, "invalid_idempotency_ttl"
    )


def _batch(call_api: Any, tenant: Tenant) -> str:
    res = post(call_api, tenant, "/api/v3/batches", b'{"runCount": 2}')
    assert res.status == 202, res.body
    return str(res.json()["id"])


@pytest.mark.parametrize("body", [b"[1, 2]", b'"indices"', b"3", b"null"])
def test_payload_uploads_body_must_be_an_object(
    aws: AwsStack, redis_client: Any, tenant: Tenant, call_api: Any, body: bytes
) -> None:
    batch_id = _batch(call_api, tenant)
    res = post(call_api, tenant, f"/api/v3/batches/{batch_id}/payloads", body)
    assert_error(res, 400, "invalid_indices")


@pytest.mark.parametrize("offset", ["%C2%B2", "9" * 5000, "-1", "1.5", "abc"])
def test_runs_offset_must_be_a_plain_non_negative_integer(
    aws: AwsStack, redis_client: Any, tenant: Tenant, call_api: Any, offset: str
) -> None:
    batch_id = _batch(call_api, tenant)
    res = call_api("GET", f"/api/v3/batches/{batch_id}?runsOffset={offset}", headers=tenant.headers)
    assert_error(res, 400, "invalid_runs_offset")


def test_runs_offset_pages_the_run_ids(
    aws: AwsStack, redis_client: Any, tenant: Tenant, call_api: Any
) -> None:
    batch_id = _batch(call_api, tenant)
    res = call_api("GET", f"/api/v3/batches/{batch_id}?runsOffset=1", headers=tenant.headers)
    assert res.status == 200, res.body
    assert res.json()["runsOffset"] == 1 and len(res.json()["runs"]) == 1


@pytest.mark.parametrize("body", [b"M,\xff\xfe", b"\xff"])
def test_a_start_whose_optional_body_is_not_utf8_is_400_not_a_crash(
    aws: AwsStack, tenant: Tenant, call_api: Any, body: bytes
) -> None:
    """Found by the schemathesis fuzz test: the start route tested for a body by decoding it as
    text, which raised on bytes that are not UTF-8."""
    assert_error(post(call_api, tenant, "/api/v1/runs/run_any/start", body), 400, "invalid_json")


def test_a_snapshot_that_is_not_utf8_is_422_not_a_crash(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    """As the start's: the snapshot was read as text (and its size limit counted characters)."""
    session = {"type": "chat", "taskId": "agent"}
    created = call_api("POST", "/api/v1/sessions", json_body=session, headers=tenant.headers)
    path = f"/api/v1/sessions/{created.json()['id']}/snapshot"
    res: HttpResult = call_api("PUT", path, body=b"\xff", headers={**tenant.headers, **JSON})
    assert_error(res, 422, "invalid_snapshot")


@pytest.mark.parametrize(
    "options",
    [
        b'{"ttl": 1' + b"0" * 400 + b"}",  # an integer past a float's range: OverflowError, not a 500
        b'{"delay": -1' + b"0" * 400 + b"}",
        b'{"idempotencyKey": "k", "idempotencyKeyTTL": 1' + b"0" * 400 + b"}",
    ],
)
def test_durations_past_a_floats_range_are_422(
    aws: AwsStack, tenant: Tenant, call_api: Any, options: bytes
) -> None:
    res = post(call_api, tenant, TRIGGER, b'{"payload": 1, "options": ' + options + b"}")
    assert res.status == 422, res.body
    assert aws.bodies("RunQueue") == []


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": "0" * 300_000 + "1s"},  # a valid duration that the run would store, 300 KB long
        {"delay": "0" * 100 + "1s"},
        {"parentRunId": "r" * 257},
    ],
)
def test_strings_the_run_stores_are_bounded(
    aws: AwsStack, tenant: Tenant, call_api: Any, options: dict[str, Any]
) -> None:
    res = post(call_api, tenant, TRIGGER, json.dumps({"payload": 1, "options": options}).encode())
    body = assert_error(res, 422, "invalid_request")
    assert body["issues"][0]["path"][:2] == ["options", next(iter(options))]


def test_a_batch_parent_run_id_is_bounded(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    body = json.dumps({"runCount": 1, "parentRunId": "r" * 257}).encode()
    res = post(call_api, tenant, "/api/v3/batches", body)
    assert_error(res, 422, "invalid_request")


# Half of a UTF-16 surrogate pair is valid JSON syntax but has no UTF-8 form: nothing could store it.
LONE_SURROGATES = [b'"\\ud800"', b'{"\\udfff": 1}', b'["ok \\ud83d\\ude00", "\\ud83d"]']


@pytest.mark.parametrize("value", LONE_SURROGATES)
def test_a_lone_surrogate_is_invalid_json_on_every_json_route(
    aws: AwsStack, tenant: Tenant, call_api: Any, value: bytes
) -> None:
    assert_error(post(call_api, tenant, TRIGGER, b'{"payload": ' + value + b"}"), 400, "invalid_json")
    session = b'{"type": "chat", "taskId": "agent", "metadata": {"m": ' + value + b"}}"
    assert_error(post(call_api, tenant, "/api/v1/sessions", session), 400, "invalid_json")
    complete = b'{"leaseToken": "' + b"t" * 16 + b'", "output": ' + value + b"}"
    assert_error(post(call_api, tenant, "/api/v1/runs/run_any/complete", complete), 400, "invalid_json")
    assert aws.bodies("RunQueue") == []


def test_a_surrogate_pair_is_one_character_and_round_trips(
    aws: AwsStack, tenant: Tenant, call_api: Any
) -> None:
    res = post(call_api, tenant, TRIGGER, b'{"payload": "\\ud83d\\ude00 \\\\ud800"}')
    assert res.status == 200, res.body
    run = call_api("GET", f"/api/v1/runs/{res.json()['id']}", headers=tenant.headers).json()
    assert run["payload"] == "\U0001f600 \\ud800"


def test_a_batch_line_with_a_lone_surrogate_is_invalid_ndjson(
    aws: AwsStack, redis_client: Any, tenant: Tenant, call_api: Any
) -> None:
    batch_id = _batch(call_api, tenant)
    headers = {**tenant.headers, "content-type": "application/x-ndjson"}
    line = b'{"index": 0, "task": "t", "payload": "\\udc00"}\n'
    res = call_api("POST", f"/api/v3/batches/{batch_id}/items", body=line, headers=headers)
    assert_error(res, 400, "invalid_ndjson")


LONG_ID = "x" * 2100  # over DynamoDB's 2048-byte partition key: a ValidationException on AWS


LEASE = {"leaseToken": "t" * 16}


@pytest.mark.parametrize(
    "case",
    [
        ("GET", f"/api/v1/runs/run_{LONG_ID}", None, "not_found"),
        ("POST", f"/api/v1/runs/run_{LONG_ID}/start", {}, "not_found"),
        ("POST", f"/api/v1/runs/run_{LONG_ID}/heartbeat", LEASE, "not_found"),
        ("POST", f"/api/v1/runs/run_{LONG_ID}/fail", {**LEASE, "error": "e"}, "not_found"),
        ("PUT", f"/realtime/v1/streams/run_{LONG_ID}/key", None, "not_found"),
        ("GET", f"/api/v1/sessions/session_{LONG_ID}", None, "session_not_found"),
    ],
    ids=["get", "start", "heartbeat", "fail", "mint", "session"],
)
def test_an_id_too_long_for_a_dynamodb_key_is_404_without_asking_dynamodb(
    aws: AwsStack, tenant: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch, case: tuple[Any, ...]
) -> None:
    """moto answers such a read "no item"; DynamoDB answers it ValidationException (a 500), so the
    stores must not ask."""
    from sluice import aws as sluice_aws

    call_api("GET", "/api/v1/runs/run_warm", headers=tenant.headers)  # the key is resolved and cached
    method, path, body, code = case
    client, asked = sluice_aws.dynamodb(), []
    for operation in ("get_item", "update_item", "put_item"):
        real = getattr(client, operation)
        spy = lambda *a, _real=real, **kw: asked.append(kw) or _real(*a, **kw)  # noqa: E731
        monkeypatch.setattr(client, operation, spy)
    res = call_api(method, path, json_body=body, headers=tenant.headers)
    assert_error(res, 404, code)
    assert asked == []


@pytest.mark.parametrize(
    "options",
    [
        {"maxAttempts": True},
        {"maxAttempts": "3"},
        {"maxAttempts": 2.0},
        {"queue": {"name": "q", "concurrencyLimit": True}},
    ],
)
def test_a_trigger_option_of_the_wrong_json_type_is_422_not_coerced(
    aws: AwsStack, tenant: Tenant, call_api: Any, options: dict[str, Any]
) -> None:
    body = json.dumps({"payload": 1, "options": options}).encode()
    assert_error(post(call_api, tenant, TRIGGER, body), 422, "invalid_request")
    assert aws.bodies("RunQueue") == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "text/json"])
def test_a_trigger_body_that_is_not_sent_as_json_is_415(
    aws: AwsStack, tenant: Tenant, call_api: Any, content_type: str
) -> None:
    headers = {**tenant.headers, "content-type": content_type}
    res = call_api("POST", TRIGGER, body=b'{"payload": 1}', headers=headers)
    assert_error(res, 415, "unsupported_media_type")
    assert aws.bodies("RunQueue") == []


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/vnd.api+json", None]
)
def test_a_trigger_body_sent_as_json_or_without_a_type_is_read(
    aws: AwsStack, tenant: Tenant, call_api: Any, content_type: str | None
) -> None:
    headers = {**tenant.headers, **({"content-type": content_type} if content_type else {})}
    assert call_api("POST", TRIGGER, body=b'{"payload": 1}', headers=headers).status == 200
