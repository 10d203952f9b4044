"""Triggers as the trigger.dev SDK sends them: a payload packet (``options.payloadType``) and the
options beside Sluice's own, through the real handler with moto in-process."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

from sluice.config import reload_settings
from sluice.engine import packets
from tests.conftest import AwsStack, HttpResult, Tenant, make_tenant

SUPERJSON = {
    "json": {"at": "1970-01-01T00:00:00.000Z", "tags": ["x"], "n": 1},
    "meta": {"values": {"at": ["Date"], "tags": ["set"]}},
}


def trigger(call_api: Any, tenant: Tenant, payload: Any, **options: Any) -> HttpResult:
    body = {"payload": payload, "options": options}
    path = "/api/v1/tasks/hello/trigger"
    result: HttpResult = call_api("POST", path, json_body=body, headers=tenant.headers)
    return result


def read(call_api: Any, tenant: Tenant, run_id: str) -> dict[str, Any]:
    got: dict[str, Any] = call_api("GET", f"/api/v1/runs/{run_id}", headers=tenant.headers).json()
    return got


def test_a_superjson_packet_is_stored_decoded_and_shown_with_its_meta(
    aws: AwsStack, tenant: Tenant, call_api: Any
) -> None:
    res = trigger(call_api, tenant, json.dumps(SUPERJSON), payloadType=packets.SUPERJSON_TYPE, payloadSize=99)
    assert res.status == 200, res.body
    run = read(call_api, tenant, res.json()["id"])
    assert run["payload"] == SUPERJSON["json"]
    assert run["payloadMeta"] == SUPERJSON["meta"]
    assert run["payloadType"] == packets.SUPERJSON_TYPE
    assert "payloadSize" not in run  # accepted, not kept: Sluice measures what it stores


@pytest.mark.parametrize(
    "case",
    [
        ('{"a": [1, 2]}', packets.JSON_TYPE, {"a": [1, 2]}),
        ({"a": 1}, packets.JSON_TYPE, {"a": 1}),
        ("plain words", packets.TEXT_TYPE, "plain words"),
        ("<x/>", "application/xml", "<x/>"),
    ],
)
def test_other_packet_types(aws: AwsStack, tenant: Tenant, call_api: Any, case: tuple[Any, str, Any]) -> None:
    payload, payload_type, shown = case
    res = trigger(call_api, tenant, payload, payloadType=payload_type)
    assert res.status == 200, res.body
    run = read(call_api, tenant, res.json()["id"])
    assert run["payload"] == shown and run["payloadType"] == payload_type
    assert "payloadMeta" not in run


@pytest.mark.parametrize(
    ("payload", "payload_type"),
    [
        ("{not json", packets.SUPERJSON_TYPE),
        ('{"a": 1}', packets.SUPERJSON_TYPE),  # JSON, but not a superjson envelope
        ('{"json": 1, "meta": 2}', packets.SUPERJSON_TYPE),
        ("{not json", packets.JSON_TYPE),
        (17, packets.SUPERJSON_TYPE),
        ({"path": "x"}, packets.STORE_TYPE),
        ("trigger/never-uploaded.json", packets.STORE_TYPE),
    ],
)
def test_a_packet_that_is_not_what_its_type_says_is_a_422(
    aws: AwsStack, tenant: Tenant, call_api: Any, payload: Any, payload_type: str
) -> None:
    res = trigger(call_api, tenant, payload, payloadType=payload_type)
    assert res.status == 422, res.body
    assert res.json()["code"] == "invalid_payload"
    assert aws.bodies("RunQueue") == []


@pytest.mark.parametrize("path", ["../other/payload.json", "/abs.json", "a/../../b.json", "x" * 600])
def test_a_packet_path_outside_the_tenant_is_refused(
    aws: AwsStack, tenant: Tenant, call_api: Any, path: str
) -> None:
    res = trigger(call_api, tenant, path, payloadType=packets.STORE_TYPE)
    assert res.status == 422 and res.json()["code"] == "invalid_packet_path"


def _upload(aws: AwsStack, call_api: Any, tenant: Tenant, path: str, body: bytes) -> None:
    """What the SDK does: ask for the URL (its file name percent-encoded into one segment), then
    PUT to it; moto in-process has no HTTP endpoint, so the PUT is written straight to S3 at the
    key the URL names."""
    res = call_api("PUT", f"/api/v2/packets/{quote(path, safe='')}", headers=tenant.headers)
    assert res.status == 200, res.body
    answer = res.json()
    assert answer["storagePath"] == path
    url = urlsplit(answer["presignedUrl"])
    key = packets.packet_key(tenant.env.tenant, path)
    assert unquote(url.path).endswith("/" + key) and "Signature" in url.query
    aws.s3.put_object(Bucket=aws.stack.physical_name("PayloadBucket"), Key=key, Body=body)


def test_the_v1_packet_routes_presign_the_same_key(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    key = packets.packet_key(tenant.env.tenant, "a/b.json")
    for method in ("PUT", "GET"):
        res = call_api(method, "/api/v1/packets/a%2Fb.json", headers=tenant.headers)
        assert res.status == 200, res.body
        assert unquote(urlsplit(res.json()["presignedUrl"]).path).endswith("/" + key)
    bad = call_api("PUT", "/api/v2/packets/..", headers=tenant.headers)
    assert bad.json()["code"] == "invalid_packet_path"


def test_an_uploaded_packet_is_read_from_the_bucket(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    path = "trigger/packet_abc/payload.json"
    _upload(aws, call_api, tenant, path, json.dumps(SUPERJSON).encode())
    res = trigger(call_api, tenant, path, payloadType=packets.STORE_TYPE, payloadSize=200_000)
    assert res.status == 200, res.body
    run = read(call_api, tenant, res.json()["id"])
    assert run["payload"] == SUPERJSON["json"] and run["payloadMeta"] == SUPERJSON["meta"]
    assert run["payloadType"] == packets.SUPERJSON_TYPE  # what the packet held


def test_a_text_packet_stays_text(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    path = "trigger/packet_txt/payload.txt"
    _upload(aws, call_api, tenant, path, b"long text")
    res = trigger(call_api, tenant, path, payloadType=packets.STORE_TYPE)
    run = read(call_api, tenant, res.json()["id"])
    assert run["payload"] == "long text" and run["payloadType"] == packets.TEXT_TYPE


def test_another_tenants_packet_cannot_be_named(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    path = "trigger/packet_mine/payload.json"
    _upload(aws, call_api, tenant, path, json.dumps(SUPERJSON).encode())
    # The same environment name in another organization is another tenant.
    other = make_tenant(org_id="org_b", env_id=tenant.env.env_id)
    res = trigger(call_api, other, path, payloadType=packets.STORE_TYPE)
    assert res.status == 422 and res.json()["code"] == "invalid_payload"


def test_an_uploaded_packet_over_the_payload_limit_is_a_413(
    aws: AwsStack, tenant: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = "trigger/packet_big/payload.json"
    _upload(aws, call_api, tenant, path, json.dumps({"json": "x" * 2000}).encode())
    monkeypatch.setenv("SLUICE_MAX_PAYLOAD_BYTES", "1000")
    reload_settings()
    res = trigger(call_api, tenant, path, payloadType=packets.STORE_TYPE)
    assert res.status == 413 and res.json()["code"] == "payload_too_large"


def test_the_sdk_options_are_stored_and_shown(aws: AwsStack, tenant: Tenant, call_api: Any) -> None:
    options = {
        "idempotencyKey": "hashed",
        "idempotencyKeyOptions": {"key": "welcome-42", "scope": "global"},
        "machine": "large-1x",
        "priority": 60,
        "maxDuration": 3600,
        "test": True,
        "concurrencyKey": 7,
        # Accepted and ignored (README: "Using the trigger.dev SDK").
        "lockToVersion": "20250101.1",
        "region": "eu",
        "concurrency": ["shared"],
        "debounce": {"key": "k", "delay": "5s"},
        "metadataType": "application/json",
        "externalDeploymentId": "sha",
    }
    res = trigger(call_api, tenant, {"a": 1}, **options)
    assert res.status == 200, res.body
    run = read(call_api, tenant, res.json()["id"])
    assert run["idempotencyKey"] == "hashed"
    assert run["idempotencyKeyOptions"] == {"key": "welcome-42", "scope": "global"}
    shown = (run["machine"], run["priority"], run["maxDuration"], run["isTest"])
    assert shown == ("large-1x", 60, 3600, True)
    assert run["concurrencyKey"] == "7"
    ignored = ("lockToVersion", "region", "concurrency", "debounce", "metadataType", "externalDeploymentId")
    assert not set(ignored) & set(run)


@pytest.mark.parametrize(
    "options",
    [
        {"machine": "huge"},
        {"priority": -1},
        {"idempotencyKeyOptions": {"key": "k", "scope": "forever"}},
        {"payloadSize": -5},
        {"notAnOption": 1},
    ],
)
def test_an_invalid_sdk_option_is_still_a_422(
    aws: AwsStack, tenant: Tenant, call_api: Any, options: dict[str, Any]
) -> None:
    res = trigger(call_api, tenant, {"a": 1}, **options)
    assert res.status == 422 and res.json()["code"] == "invalid_request"
