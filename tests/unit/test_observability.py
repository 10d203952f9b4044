"""What a handler wearing ``observability.lambda_handler`` writes: log lines with the API Gateway
request id as correlation id and the run's keys, one INFO line per run transition, and its metrics
in one EMF line when it returns. Tracing is off here, as under devstack: nothing is patched."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.apigw import Route, http_event
from devstack.handlers import LambdaContext
from sluice import observability


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What the Logger writes (its handler holds the stdout of import time, not capsys's)."""
    handler = observability.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def lines(*outputs: str) -> list[dict[str, Any]]:
    return [json.loads(line) for out in outputs for line in out.splitlines() if line.startswith("{")]


def invoke(handler: Any, event: dict[str, Any]) -> Any:
    context = LambdaContext(function_name="RunLifecycleFunction", memory_limit_in_mb=512, timeout_s=29)
    return handler(event, context)


def test_an_http_invocation_logs_its_request_id_its_run_and_its_transitions(
    capsys: pytest.CaptureFixture[str], logged: io.StringIO
) -> None:
    @observability.lambda_handler(http=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        observability.tenant_keys("org_a", "env_a")
        observability.run_transition("RunCompleted", "run_1", "org_a", "env_a", attempt=2)
        return {"statusCode": 200}

    route = Route("POST", "/api/v1/runs/{runId}/complete", "RunLifecycleFunction")
    event = http_event(route, "/api/v1/runs/run_1/complete", {"runId": "run_1"}, {})
    assert invoke(handler, event) == {"statusCode": 200}
    out = lines(capsys.readouterr().out, logged.getvalue())
    [line] = [o for o in out if o.get("message") == "run.completed"]
    assert line["level"] == "INFO"
    assert line["correlation_id"] == event["requestContext"]["requestId"]
    assert (line["runId"], line["orgId"], line["envId"], line["attempt"]) == ("run_1", "org_a", "env_a", 2)
    [emf] = [o for o in out if "_aws" in o]
    assert emf["RunCompleted"] == [1.0]
    assert emf["service"] == "sluice"


def test_run_keys_do_not_leak_into_the_next_invocation(logged: io.StringIO) -> None:
    @observability.lambda_handler(http=True)
    def handler(event: dict[str, Any], context: Any) -> None:
        observability.logger.info("probe")

    run_route = Route("GET", "/api/v1/runs/{runId}", "TriggerIntakeFunction")
    invoke(handler, http_event(run_route, "/api/v1/runs/run_9", {"runId": "run_9"}, {}))
    other = Route("GET", "/api/v1/sessions", "SessionsFunction")
    invoke(handler, http_event(other, "/api/v1/sessions", {}, {}))
    first, second = [o for o in lines(logged.getvalue()) if o.get("message") == "probe"]
    assert first["runId"] == "run_9"
    assert "runId" not in second and "orgId" not in second


def test_a_non_http_handler_flushes_lag_metrics_in_milliseconds(capsys: pytest.CaptureFixture[str]) -> None:
    @observability.lambda_handler()
    def handler(event: dict[str, Any], context: Any) -> None:
        observability.lag_ms("DispatchLag", datetime.now(UTC) - timedelta(seconds=2))
        observability.lag_ms("DrainLag", datetime.now() - timedelta(seconds=1))  # naive: taken as UTC

    invoke(handler, {"Records": []})
    [emf] = [o for o in lines(capsys.readouterr().out) if "_aws" in o]
    assert 1900 <= emf["DispatchLag"][0] < 10_000
    units = {m["Name"]: m["Unit"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {"DispatchLag": "Milliseconds", "DrainLag": "Milliseconds"}


def test_redis_is_left_alone_while_tracing_is_off() -> None:
    assert observability.tracer.disabled
    client = object()
    assert observability.trace_redis(client) is client
