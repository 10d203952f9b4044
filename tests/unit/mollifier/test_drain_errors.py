"""Which failures the drainer retries: the one rule (``sluice.retryable``), on raw AWS errors too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from sluice import triggers
from sluice.auth import Environment
from sluice.engine import get_run
from sluice.mollifier import drain as drain_module
from sluice.mollifier import get_buffer
from sluice.redis import RedisClient
from tests.conftest import AwsStack
from tests.unit.mollifier.conftest import pop_one


def client_error(code: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    return ClientError(response, "PutItem")


@pytest.fixture
def tripped(aws: AwsStack, buffer_redis: RedisClient, configure: Callable[..., None]) -> Environment:
    configure(mollifier_enabled=True, mollifier_trip_threshold=0, mollifier_retry_delay_s=0)
    return Environment(org_id="org_a", env_id="env_a", org_flags={"mollifierEnabled": True})


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (client_error("ProvisionedThroughputExceededException"), "requeued"),
        (EndpointConnectionError(endpoint_url="https://dynamodb"), "requeued"),
        (client_error("ValidationException"), "failed"),
        (client_error("AccessDeniedException"), "failed"),
    ],
    ids=["throttled", "unreachable", "invalid", "denied"],
)
def test_the_drainer_requeues_what_is_retryable_and_fails_what_is_refused(
    tripped: Environment, monkeypatch: pytest.MonkeyPatch, error: Exception, outcome: str
) -> None:
    run_id = triggers.trigger(tripped, "hello", {"payload": 1}).id
    real_trigger = drain_module.engine.trigger

    def refuse_the_run(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("error") is None:
            raise error
        return real_trigger(*args, **kwargs)  # recording the FAILED run works

    monkeypatch.setattr(drain_module.engine, "trigger", refuse_the_run)
    buffer = get_buffer()
    entry = pop_one(buffer)
    assert entry is not None and entry.runId == run_id
    assert drain_module.process_entries(buffer, [entry], drain_module.get_settings()) == [outcome]
    if outcome == "failed":
        run = get_run(tripped, run_id)
        assert run.status == "FAILED" and run.error is not None and "non_retryable" in run.error.message
    else:
        stored = buffer.get_entry("org_a", run_id)
        assert stored is not None and (stored.status, stored.attempts) == ("QUEUED", 1)
