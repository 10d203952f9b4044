"""The one rule for what is retryable, and the one converter per backend to a 503: for AWS
(``sluice.aws``), for Redis (``sluice.redis``), and both together (``sluice.retryable``)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from devstack.services import free_port
from sluice import aws as sluice_aws
from sluice import redis as sluice_redis
from sluice import retryable
from sluice.config import reload_settings
from sluice.errors import ServiceUnavailable, Unprocessable
from sluice.mollifier.errors import ClaimTimedOut
from sluice.streams.tokens import signing_secret
from tests.conftest import AwsStack


def client_error(code: str, status: int = 400, operation: str = "PutItem") -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


RUN_STORE_DOWN = r"^The run store is unavailable; retry shortly$"
RETRYABLE_AWS = [
    client_error("ThrottlingException"),
    client_error("ProvisionedThroughputExceededException"),
    client_error("SlowDown", 503, "PutObject"),
    client_error("RequestLimitExceeded"),
    client_error("InternalServerError", 500),
    client_error("ServiceUnavailable", 503),
    client_error("RequestTimeout"),
    client_error("ResourceNotFoundException"),
    client_error("AWS.SimpleQueueService.NonExistentQueue", operation="SendMessage"),
    client_error("NoSuchBucket", 404, "PutObject"),
    EndpointConnectionError(endpoint_url="https://dynamodb"),
    ConnectTimeoutError(endpoint_url="https://dynamodb"),
    ReadTimeoutError(endpoint_url="https://dynamodb"),
    ConnectionClosedError(endpoint_url="https://s3"),
    IncompleteReadError(actual_bytes=1, expected_bytes=2),
]
REFUSED_AWS = [
    client_error("ConditionalCheckFailedException"),
    client_error("ValidationException"),
    client_error("AccessDeniedException"),
    client_error("NoSuchKey", 404, "GetObject"),
    client_error("InvalidParameterValue", operation="SendMessage"),
    ParamValidationError(report="missing TableName"),
    NoCredentialsError(),
]


# --- AWS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", RETRYABLE_AWS, ids=repr)
def test_aws_throttling_5xx_connection_errors_and_missing_resources_are_retryable(exc: Exception) -> None:
    assert sluice_aws.is_retryable(exc)


@pytest.mark.parametrize("exc", REFUSED_AWS, ids=repr)
def test_an_aws_refusal_is_not_retryable(exc: Exception) -> None:
    assert not sluice_aws.is_retryable(exc)


@pytest.mark.parametrize("exc", RETRYABLE_AWS[:3] + RETRYABLE_AWS[-5:], ids=repr)
def test_a_retryable_aws_failure_is_a_503_naming_the_store(exc: Exception) -> None:
    with pytest.raises(ServiceUnavailable) as raised, sluice_aws.unavailable_as_503("payload store"):
        raise exc
    assert raised.value.message == "The payload store is unavailable; retry shortly"
    assert (raised.value.status, raised.value.code) == (503, "service_unavailable")
    assert raised.value.headers["Retry-After"] == "1"
    assert raised.value.__cause__ is exc


@pytest.mark.parametrize("exc", REFUSED_AWS, ids=repr)
def test_an_aws_refusal_propagates_unchanged(exc: Exception) -> None:
    with pytest.raises(type(exc)) as raised, sluice_aws.unavailable_as_503("payload store"):
        raise exc
    assert raised.value is exc


def test_errors_that_are_not_aws_pass_through_the_converter() -> None:
    with pytest.raises(Unprocessable), sluice_aws.unavailable_as_503("payload store"):
        raise Unprocessable("bad", code="invalid_request")


def test_dynamodb_errors_names_the_store_and_turns_a_lost_condition_into_condition_failed() -> None:
    lost = client_error("ConditionalCheckFailedException")
    with pytest.raises(sluice_aws.ConditionFailed) as failed, sluice_aws.dynamodb_errors("run"):
        raise lost
    assert failed.value.__cause__ is lost, "the caller reads the old item from the cause"
    throttled = client_error("ProvisionedThroughputExceededException")
    with pytest.raises(ServiceUnavailable, match=RUN_STORE_DOWN), sluice_aws.dynamodb_errors("run"):
        raise throttled
    invalid = client_error("ValidationException")
    with pytest.raises(ClientError) as raised, sluice_aws.dynamodb_errors("run"):
        raise invalid
    assert raised.value is invalid


def test_real_dynamodb_answers_are_classified_by_the_rule(aws: AwsStack) -> None:
    """moto's real error responses (status and code as DynamoDB sends them), not hand-built ones."""
    table = aws.stack.physical_name("RunsTable")
    with pytest.raises(ServiceUnavailable, match=RUN_STORE_DOWN), sluice_aws.dynamodb_errors("run"):
        aws.dynamodb.get_item(TableName="no-such-table", Key={"runId": {"S": "r"}})
    aws.dynamodb.put_item(TableName=table, Item={"runId": {"S": "r"}})
    with pytest.raises(sluice_aws.ConditionFailed), sluice_aws.dynamodb_errors("run"):
        aws.dynamodb.put_item(
            TableName=table, Item={"runId": {"S": "r"}}, ConditionExpression="attribute_not_exists(runId)"
        )
    with pytest.raises(ClientError) as invalid, sluice_aws.dynamodb_errors("run"):
        aws.dynamodb.put_item(TableName=table, Item={"runId": {"S": ""}})
    assert sluice_aws.error_code(invalid.value) == "ValidationException"


def test_a_missing_stream_token_secret_is_a_503(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Powertools wraps the SDK's error; the rule judges the SDK's error inside it."""
    monkeypatch.setenv("SLUICE_STREAM_TOKEN_SECRET_ID", "no-such-secret")
    reload_settings()
    with pytest.raises(ServiceUnavailable, match=r"^The stream token secret is unavailable; retry shortly$"):
        signing_secret()


# --- Redis -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ConnectionError("down"),
        redis.exceptions.TimeoutError("slow"),
        redis.exceptions.BusyLoadingError("loading"),
        redis.exceptions.ClusterDownError("failover"),
        redis.exceptions.TryAgainError("resharding"),
        redis.exceptions.ClusterError("TTL exhausted."),
    ],
    ids=repr,
)
def test_redis_down_is_retryable_and_a_503_naming_the_store(exc: Exception) -> None:
    assert sluice_redis.is_retryable(exc)
    with pytest.raises(ServiceUnavailable) as raised, sluice_redis.unavailable_as_503("burst buffer"):
        raise exc
    assert raised.value.message == "The burst buffer is unavailable; retry shortly"
    assert raised.value.__cause__ is exc


def test_a_redis_refusal_is_not_retryable_and_propagates(redis_client: redis.Redis) -> None:
    redis_client.set("k", "text")
    converter = sluice_redis.unavailable_as_503("burst buffer")
    with pytest.raises(redis.exceptions.ResponseError) as raised, converter:
        redis_client.incr("k")
    assert not sluice_redis.is_retryable(raised.value)


def test_a_real_unreachable_redis_is_a_503() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    down = r"^The batch state store is unavailable; retry shortly$"
    with pytest.raises(ServiceUnavailable, match=down), sluice_redis.unavailable_as_503("batch state store"):
        client.ping()


# --- the rule the workers use ----------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        ServiceUnavailable("down"),
        ClaimTimedOut("held"),
        client_error("ThrottlingException"),
        EndpointConnectionError(endpoint_url="https://sqs"),
        redis.exceptions.ConnectionError("down"),
    ],
    ids=repr,
)
def test_workers_retry_a_dependency_that_is_down(exc: Exception) -> None:
    assert retryable.is_retryable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        Unprocessable("bad", code="invalid_request"),
        client_error("ValidationException"),
        client_error("ConditionalCheckFailedException"),
        redis.exceptions.ResponseError("WRONGTYPE"),
        ValueError("bad option"),
    ],
    ids=repr,
)
def test_workers_fail_what_a_retry_cannot_fix(exc: Exception) -> None:
    assert not retryable.is_retryable(exc)
