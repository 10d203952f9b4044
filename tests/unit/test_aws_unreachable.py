"""AWS unreachable: every route answers 503 with Retry-After after a bounded number of attempts.

The endpoint is a local socket (``bench.aws_unreachable``, which also measures the times) that
accepts connections and either closes them at once or never answers (a hung dependency): the
tests count the attempts botocore makes, and the bound on how long one 503 can take follows from
the client's configuration.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from bench.aws_unreachable import DeadEndpoint, dead_endpoint
from sluice import aws as sluice_aws
from sluice.config import get_settings, reload_settings
from sluice.errors import ServiceUnavailable
from tests.conftest import AwsStack, Tenant

# API Gateway gives an integration 30 s; a 503 must come long before, so that a client retries.
WORST_503_BUDGET_S = 3.0
# botocore's standard mode backs off up to base * 2 ** (attempt - 1) seconds, base 1.
STANDARD_BACKOFF_BASE_S = 1.0


@pytest.fixture(params=["closes", "hangs"])
def dead(request: pytest.FixtureRequest) -> Iterator[DeadEndpoint]:
    with dead_endpoint(request.param) as endpoint:
        yield endpoint


@pytest.fixture
def outage(
    aws: AwsStack, tenant: Tenant, call_api: Any, dead: DeadEndpoint, monkeypatch: pytest.MonkeyPatch
) -> DeadEndpoint:
    """Auth is warmed against moto, then every AWS client points at the dead endpoint."""
    assert call_api("POST", "/api/v1/tasks/t/trigger", json_body={}, headers=tenant.headers).status == 200
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead.url)
    monkeypatch.setenv("SLUICE_AWS_READ_TIMEOUT_S", "0.2")  # the hung case, kept short for the test
    monkeypatch.setenv("SLUICE_AWS_CONNECT_TIMEOUT_S", "0.2")
    reload_settings()
    sluice_aws.reset_clients()
    return dead


def test_default_client_bounds_keep_a_503_under_three_seconds() -> None:
    settings = reload_settings()
    attempts = settings.aws_max_attempts
    backoff = sum(STANDARD_BACKOFF_BASE_S * 2 ** (n - 1) for n in range(1, attempts))
    # A hung endpoint accepts the connection and never answers, so each attempt costs at most
    # its read timeout after a connect; an unreachable one costs at most the connect timeout.
    assert attempts * settings.aws_read_timeout_s + backoff <= WORST_503_BUDGET_S
    assert attempts * settings.aws_connect_timeout_s + backoff < WORST_503_BUDGET_S


def test_trigger_is_503_with_retry_after_after_bounded_attempts(
    outage: DeadEndpoint, tenant: Tenant, call_api: Any
) -> None:
    res = call_api("POST", "/api/v1/tasks/t/trigger", json_body={"payload": 1}, headers=tenant.headers)
    assert res.status == 503, res.body
    assert json.loads(res.body)["code"] == "service_unavailable"
    assert int(res.headers["Retry-After"]) >= 1


def test_one_aws_call_gives_up_after_the_configured_attempts(outage: DeadEndpoint) -> None:
    with pytest.raises((BotoCoreError, ClientError)):
        sluice_aws.dynamodb().get_item(TableName="t", Key={"pk": {"S": "x"}})
    assert outage.connections == get_settings().aws_max_attempts


def test_batch_routes_are_503_with_retry_after(
    outage: DeadEndpoint, redis_client: Any, tenant: Tenant, call_api: Any
) -> None:
    for method, path, body in [
        ("POST", "/api/v3/batches", {"runCount": 1}),
        ("GET", "/api/v3/batches/batch_0123456789abcdefghijklmn", None),
        ("GET", "/api/v1/runs/run_0123456789abcdefghijklmn", None),
    ]:
        res = call_api(method, path, json_body=body, headers=tenant.headers)
        assert res.status == 503, (path, res.body)
        assert int(res.headers["Retry-After"]) >= 1, path


def test_every_service_unavailable_carries_retry_after() -> None:
    assert ServiceUnavailable("down").headers["Retry-After"] == "1"
    assert ServiceUnavailable("down", headers={"Retry-After": "5"}).headers["Retry-After"] == "5"
