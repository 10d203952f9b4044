"""Batch fixtures: the HTTP API through the real handlers, and batch_runs fed from BatchItemQueue."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from devstack.handlers import context_for, load_handler
from devstack.pollers import sqs_record
from sluice.config import reload_settings
from tests.conftest import AwsStack, HttpResult, Tenant

NDJSON = {"content-type": "application/x-ndjson"}


def ndjson(items: Iterable[Any]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def item(index: int, task: str = "hello", payload: Any = None, **options: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "index": index,
        "task": task,
        "payload": {"n": index} if payload is None else payload,
    }
    if options:
        line["options"] = options
    return line


@dataclass
class BatchApi:
    aws: AwsStack
    call: Callable[..., HttpResult]
    tenant: Tenant

    def create(self, run_count: int, tenant: Tenant | None = None, **body: Any) -> HttpResult:
        headers = (tenant or self.tenant).headers
        return self.call(
            "POST", "/api/v3/batches", json_body={"runCount": run_count, **body}, headers=headers
        )

    def create_id(self, run_count: int, **body: Any) -> str:
        res = self.create(run_count, **body)
        assert res.status == 202, res.body
        return str(res.json()["id"])

    def items(self, batch_id: str, body: bytes | Iterable[Any], tenant: Tenant | None = None) -> HttpResult:
        data = body if isinstance(body, bytes) else ndjson(body)
        headers = {**(tenant or self.tenant).headers, **NDJSON}
        return self.call("POST", f"/api/v3/batches/{batch_id}/items", body=data, headers=headers)

    def get(self, batch_id: str, tenant: Tenant | None = None, query: str = "") -> HttpResult:
        path = f"/api/v3/batches/{batch_id}" + (f"?{query}" if query else "")
        return self.call("GET", path, headers=(tenant or self.tenant).headers)

    def queued_items(self) -> list[dict[str, Any]]:
        return self.aws.receive_all("BatchItemQueue")

    def run_items(self, messages: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Feed BatchItemQueue's messages to batch_runs (10 a batch, as the event source does);
        returns the batchItemFailures."""
        messages = self.queued_items() if messages is None else messages
        spec = self.aws.stack.function("batch_runs")
        arn = self.aws.stack.arn("BatchItemQueue")
        failures: list[dict[str, Any]] = []
        for start in range(0, len(messages), 10):
            event = {"Records": [sqs_record(m, arn) for m in messages[start : start + 10]]}
            failures += load_handler(spec)(event, context_for(spec))["batchItemFailures"]
        return failures


@pytest.fixture
def api(aws: AwsStack, redis_client: redis.Redis, tenant: Tenant, call_api: Any) -> BatchApi:
    return BatchApi(aws, call_api, tenant)


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set ``SLUICE_<NAME>`` settings for this test (after the aws fixture applied the template's)."""

    def set_settings(**values: Any) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"SLUICE_{name.upper()}", str(value))
        reload_settings()

    return set_settings


def run_ids_on_run_queue(aws: AwsStack) -> list[str]:
    return [m["runId"] for m in aws.bodies("RunQueue")]


def fake_batch_routes(
    seen: list[dict[str, Any]], sealed: bool = True
) -> Callable[[httpx.Request], httpx.Response]:
    """An httpx responder for the batch routes and a presigned S3 PUT that records, in order, each
    create body, each items request's lines (``{"ndjson": [...]}``) and each staged upload
    (``{"staged": text}``); items requests answer ``sealed``."""

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v3/batches":
            body = json.loads(request.content)
            seen.append(body)
            upload = {"url": "https://bucket.s3.amazonaws.com/staged", "method": "PUT"}
            return httpx.Response(202, json={"id": "batch_1", "runCount": body["runCount"], "upload": upload})
        if request.url.path.endswith("/items"):
            seen.append({"ndjson": [json.loads(line) for line in request.content.splitlines()]})
            return httpx.Response(200, json={"sealed": sealed, "enqueuedCount": 0, "runCount": 0})
        assert request.url.host.endswith("amazonaws.com"), request.url
        seen.append({"staged": request.content.decode()})
        return httpx.Response(200)

    return respond
