"""Fixtures shared by every test layer: a real redis-server and moto (in-process for unit tests).

Integration and e2e tests get a running devstack from their own conftest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import redis
from moto import mock_aws

from devstack.apigw import Route, http_event
from devstack.handlers import context_for, load_handler
from devstack.provision import create_all
from devstack.services import start_redis
from devstack.template import REGION, Stack
from devstack.testing.queues import decode_bodies, receive_all
from sluice import aws as sluice_aws
from sluice.auth import Environment, clear_auth_cache, provision_key
from sluice.config import reload_settings
from sluice.redis import reset_redis

MOTO_ENDPOINT = f"https://sqs.{REGION}.amazonaws.com"
# Set by the redis fixtures, never from the template: tests always talk to their own Redis.
_REDIS_SETTINGS = ("SLUICE_REDIS_URL", "SLUICE_REDIS_CLUSTER")


def _reset_process_state() -> None:
    reload_settings()
    sluice_aws.reset_clients()
    reset_redis()
    clear_auth_cache()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server this test session started, or the one ``REDIS_URL`` names."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    server = start_redis()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """An empty Redis, with ``SLUICE_REDIS_URL`` pointing at it."""
    monkeypatch.setenv("SLUICE_REDIS_URL", redis_url)
    monkeypatch.setenv("SLUICE_REDIS_CLUSTER", "false")
    _reset_process_state()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    yield client
    client.close()
    reset_redis()


@dataclass
class AwsStack:
    stack: Stack
    queue_urls: dict[str, str]
    sqs: Any
    dynamodb: Any
    s3: Any

    def receive_all(self, queue: str, wait: int = 0) -> list[dict[str, Any]]:
        """A queue's currently visible messages, left on it."""
        return receive_all(self.sqs, self.queue_urls[queue], wait)

    def bodies(self, queue: str) -> list[Any]:
        return decode_bodies(self.receive_all(queue))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsStack]:
    """moto in-process with every queue, table and bucket of template.yaml, and the functions'
    ``SLUICE_*`` settings taken from the template."""
    per_service = ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB")
    for name in ("AWS_ENDPOINT_URL", *per_service, "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        stack = Stack()
        clients = {name: boto3.client(name, region_name=REGION) for name in ("sqs", "dynamodb", "s3")}
        urls = create_all(stack, clients, MOTO_ENDPOINT)
        for spec in stack.functions(MOTO_ENDPOINT):
            for key, value in spec.environment.items():
                if key.startswith("SLUICE_") and key not in _REDIS_SETTINGS:
                    monkeypatch.setenv(key, value)
        _reset_process_state()
        yield AwsStack(stack, urls, clients["sqs"], clients["dynamodb"], clients["s3"])
    _reset_process_state()


@dataclass
class Tenant:
    api_key: str
    env: Environment

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"}


def make_tenant(org_id: str = "org_a", env_id: str = "env_a_dev", **flags: Any) -> Tenant:
    key = provision_key(org_id, env_id, flags=flags or None)
    return Tenant(key, Environment(org_id=org_id, env_id=env_id, org_flags=flags))


@pytest.fixture
def tenant(aws: AwsStack) -> Tenant:
    return make_tenant()


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture
def call_api(aws: AwsStack) -> Any:
    """Call a route's real handler in-process with an API Gateway v2 event, as devstack does."""
    routes = [
        (Route(ev.properties["Method"].upper(), ev.properties["Path"], spec.name), spec)
        for spec in aws.stack.functions(MOTO_ENDPOINT)
        for ev in spec.events
        if ev.type == "HttpApi"
    ]

    def call(
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        raw_path, _, query = path.partition("?")
        data = body.encode() if isinstance(body, str) else body
        hdrs = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            hdrs.setdefault("content-type", "application/json")
        for route, spec in routes:
            params = route.match(method, raw_path)
            if params is not None:
                event = http_event(route, raw_path, params, hdrs, body=data or b"", raw_query=query)
                response = load_handler(spec)(event, context_for(spec))
                return HttpResult(
                    response["statusCode"], response.get("headers", {}), response.get("body", "")
                )
        raise AssertionError(f"no route for {method} {raw_path}")

    return call
