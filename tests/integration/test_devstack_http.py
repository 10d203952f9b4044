"""devstack over HTTP: the real trigger_intake handler behind the local API, and the API Gateway
behaviours devstack emulates (routing, 404/502, events, responses), on the probe template."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.testing.launcher import DevStack, start_devstack

pytestmark = pytest.mark.devstack

PROBE_TEMPLATE = Path(__file__).parent / "fixtures" / "template.yaml"


@pytest.fixture(scope="module")
def probe() -> Iterator[DevStack]:
    env = {
        "SLUICE_PROBE_SETTING": "overridden",
        "SLUICE_EXTRA": "extra",
        "SLUICE_REDIS_URL": "redis://ignored:1",
    }
    with start_devstack(env=env, template=PROBE_TEMPLATE, args=["--no-schedules"]) as stack:
        yield stack


def test_trigger_get_auth_errors_and_exactly_one_run_message(devstack: DevStack) -> None:
    with httpx.Client(base_url=devstack.api_url, headers=devstack.headers, timeout=30) as http:
        res = http.post("/api/v1/tasks/hello/trigger", json={"payload": {"n": 1}, "options": {"tags": ["t"]}})
        assert res.status_code == 200, res.text
        run_id = res.json()["id"]
        assert run_id.startswith("run_") and res.json()["isCached"] is False

        got = http.get(f"/api/v1/runs/{run_id}")
        assert got.status_code == 200, got.text
        assert got.json()["id"] == run_id and got.json()["payload"] == {"n": 1}

        nope = {"authorization": "Bearer sk_dev_nope"}
        unknown = http.post("/api/v1/tasks/hello/trigger", json={}, headers=nope)
        assert unknown.status_code == 401 and unknown.json()["code"]

        bad = http.post(
            "/api/v1/tasks/hello/trigger", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_json"

    # The session's stack is shared: look at every message, count ours, and put them all back.
    # The dispatcher sends the run from RunsTable's stream shortly after the trigger.
    queue_url = devstack.queue_url("RunQueue")
    ours: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while not ours and time.monotonic() < deadline:
        messages = devstack.receive_all("RunQueue", wait=1)
        for message in messages:
            devstack.client("sqs").change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        ours = [m for m in messages if json.loads(m["Body"]).get("runId") == run_id]
    assert len(ours) == 1


def test_session_stack_serves_the_default_template(devstack: DevStack) -> None:
    key = devstack.create_key(f"org_{uuid.uuid4().hex[:8]}", "env_http")
    headers = {"authorization": f"Bearer {key}"}
    res = httpx.post(devstack.url("/api/v1/tasks/smoke/trigger"), json={"payload": 1}, headers=headers)
    assert res.status_code == 200, res.text
    got = httpx.get(devstack.url(f"/api/v1/runs/{res.json()['id']}"), headers=headers)
    assert got.status_code == 200 and got.json()["taskId"] == "smoke"


def test_unknown_route_is_api_gateways_404(probe: DevStack) -> None:
    res = httpx.get(probe.url("/no/such/route"))
    assert res.status_code == 404 and res.json() == {"message": "Not Found"}
    # A route exists for GET only: other methods do not match it.
    assert httpx.post(probe.url("/files/a")).status_code == 404


def test_event_carries_path_query_headers_and_raw_body(probe: DevStack) -> None:
    res = httpx.post(
        probe.url("/probe/echo?a=1&a=2&b=x%20y"),
        content=json.dumps({"k": "v"}).encode(),
        headers={"content-type": "application/json", "x-custom": "yes", "cookie": "c1=1; c2=2"},
    )
    assert res.status_code == 200 and res.headers["x-probe"] == "yes"
    event = res.json()["event"]
    assert event["version"] == "2.0" and event["routeKey"] == "ANY /probe/{action}"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["pathParameters"] == {"action": "echo"}
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert event["headers"]["x-custom"] == "yes" and event["cookies"] == ["c1=1", "c2=2"]
    assert event["body"] == '{"k": "v"}' and event["isBase64Encoded"] is False

    binary = bytes(range(256))
    octets = {"content-type": "application/octet-stream"}
    res = httpx.put(probe.url("/probe/echo"), content=binary, headers=octets)
    event = res.json()["event"]
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == binary


def test_chunked_request_body_arrives_whole(probe: DevStack) -> None:
    lines = [json.dumps({"index": i}).encode() + b"\n" for i in range(50)]
    res = httpx.post(
        probe.url("/probe/echo"), content=iter(lines), headers={"content-type": "application/x-ndjson"}
    )
    assert res.status_code == 200
    assert res.json()["event"]["body"] == b"".join(lines).decode()


def test_greedy_path_parameter(probe: DevStack) -> None:
    res = httpx.get(probe.url("/files/a/b/c.txt"))
    assert res.status_code == 200
    assert res.json()["event"]["pathParameters"] == {"proxy": "a/b/c.txt"}


def test_response_shapes_base64_cookies_and_inferred_json(probe: DevStack) -> None:
    res = httpx.get(probe.url("/probe/binary"))
    assert res.status_code == 201 and res.content == bytes(range(256))
    assert res.headers.get_list("set-cookie") == ["a=1", "b=2"]

    plain = httpx.get(probe.url("/probe/plain"))
    assert plain.status_code == 200 and plain.json() == {"hello": "world"}
    assert plain.headers["content-type"] == "application/json"


def test_handler_exception_and_timeout_are_502(probe: DevStack) -> None:
    boom = httpx.get(probe.url("/probe/boom"))
    assert boom.status_code == 502 and boom.json() == {"message": "Internal server error"}
    assert "ValueError: boom" in probe.log()

    slow = httpx.get(probe.url("/probe/sleep"), timeout=30)
    assert slow.status_code == 502 and slow.json() == {"message": "Internal server error"}
    assert "Task timed out" in probe.log()
    # The timed-out worker was replaced: the function still answers.
    assert httpx.get(probe.url("/probe/echo")).status_code == 200


def test_function_environment(probe: DevStack) -> None:
    env = httpx.get(probe.url("/probe/echo")).json()["env"]
    assert env["SLUICE_PROBE_SETTING"] == "overridden"  # devstack's SLUICE_* beat the template
    assert env["SLUICE_EXTRA"] == "extra"
    assert env["SLUICE_REDIS_URL"] == probe.redis_url  # always the stack's own Redis
    assert env["SLUICE_REDIS_CLUSTER"] == "false"
    assert env["SLUICE_RUN_QUEUE_URL"] == probe.queue_url("WorkQueue")
    endpoints = {service: probe.aws_endpoint(service.lower()) for service in ("SQS", "S3", "DYNAMODB")}
    for service, url in endpoints.items():  # per service, as LocalStack hybrids need
        assert env[f"AWS_ENDPOINT_URL_{service}"] == url
    # The general variable only when one endpoint serves every service.
    assert env["AWS_ENDPOINT_URL"] == (probe.aws_endpoint_url if len(set(endpoints.values())) == 1 else None)
    assert env["PROBE_FUNCTION_ONLY"] == "only-here"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "HttpProbeFunction"


def test_concurrent_requests_use_several_workers(probe: DevStack) -> None:
    def nap(_: int) -> httpx.Response:
        return httpx.get(probe.url("/probe/nap"), timeout=60)

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(nap, range(4)))
    assert all(r.status_code == 200 for r in responses)
    assert len({r.json()["pid"] for r in responses}) > 1


def test_devstack_serves_the_openapi_document(devstack: DevStack) -> None:
    res = httpx.get(f"{devstack.api_url}/api/openapi.json", timeout=30)
    assert res.status_code == 200
    committed = json.loads((Path(__file__).resolve().parents[2] / "openapi.json").read_text(encoding="utf-8"))
    assert res.json() == committed and res.json()["openapi"].startswith("3.1")


def test_devstack_serves_swagger_ui_from_the_venv_reading_the_document(devstack: DevStack) -> None:
    page = httpx.get(f"{devstack.api_url}/docs", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'url: "/api/openapi.json"' in page.text
    assets = re.findall(r'(?:src|href)="(/docs/[^"]+)"', page.text)
    assert "/docs/swagger-ui-bundle.js" in assets
    assert "http" not in page.text  # nothing from another host: the assets are the venv's
    for asset in assets:
        res = httpx.get(f"{devstack.api_url}{asset}", timeout=30)
        assert res.status_code == 200 and res.content, asset
    assert httpx.get(f"{devstack.api_url}/docs/../pyproject.toml", timeout=30).status_code == 404
