"""AWS endpoints per service: what ``--aws`` and the ``AWS_ENDPOINT_URL_*`` variables choose, what
the functions get, and that sluice's clients honour the per-service variable."""

from __future__ import annotations

import pytest

from devstack import endpoints, environment
from devstack.template import Stack
from sluice import aws


def test_moto_serves_every_service_unless_told_otherwise() -> None:
    assert endpoints.plan(None, {}) == {"sqs": "moto", "s3": "moto", "dynamodb": "moto"}
    assert endpoints.plan("moto", {"AWS_ENDPOINT_URL": "http://elsewhere:1"})["sqs"] == "moto"


def test_localstack_takes_sqs_and_s3_and_leaves_dynamodb_on_moto() -> None:
    chosen = endpoints.plan("localstack", {})
    assert chosen == {"sqs": "http://localhost:4566", "s3": "http://localhost:4566", "dynamodb": "moto"}
    resolved = endpoints.resolve(chosen, "http://127.0.0.1:5000")
    assert resolved["dynamodb"] == "http://127.0.0.1:5000" and resolved["sqs"] == "http://localhost:4566"


def test_per_service_variables_win_and_the_rest_stays_on_moto() -> None:
    chosen = endpoints.plan(
        None, {"AWS_ENDPOINT_URL_SQS": "http://ls:4566/", "AWS_ENDPOINT_URL_S3": "http://ls:4566"}
    )
    assert chosen == {"sqs": "http://ls:4566", "s3": "http://ls:4566", "dynamodb": "moto"}
    url = endpoints.plan("http://one:1", {"AWS_ENDPOINT_URL_DYNAMODB": "http://ddb:2"})
    assert url == {"sqs": "http://one:1", "s3": "http://one:1", "dynamodb": "http://ddb:2"}
    # Without --aws, a plain AWS_ENDPOINT_URL still sends everything there.
    assert set(endpoints.plan(None, {"AWS_ENDPOINT_URL": "http://all:3"}).values()) == {"http://all:3"}


def test_a_bad_aws_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="moto, localstack or an http"):
        endpoints.plan("docker", {})


def test_functions_get_one_variable_per_service() -> None:
    mixed = {"sqs": "http://ls:4566", "s3": "http://ls:4566", "dynamodb": "http://127.0.0.1:5000"}
    env = environment.aws_client_environment({"AWS_ENDPOINT_URL": "http://stale:9"}, mixed)
    assert env["AWS_ENDPOINT_URL_SQS"] == "http://ls:4566"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:5000"
    assert "AWS_ENDPOINT_URL" not in env  # it would send other services to one of them
    same = environment.aws_client_environment({}, dict.fromkeys(endpoints.SERVICES, "http://m:1"))
    assert same["AWS_ENDPOINT_URL"] == "http://m:1"


def test_the_account_comes_from_the_queue_urls() -> None:
    assert endpoints.account_of_queue_url("http://localhost:4566/000000000000/q") == "000000000000"
    real = "https://sqs.us-east-1.amazonaws.com/123456789012/q"
    assert endpoints.account_of_queue_url(real) == "123456789012"
    assert endpoints.account_of_queue_url("http://localhost:4566/queue/q") is None
    stack = Stack(stage="test")
    stack.account = "000000000000"
    assert stack.arn("RunQueue") == "arn:aws:sqs:us-east-1:000000000000:sluice-test-RunQueue"
    assert stack.queue_url("RunQueue", "http://h:1") == "http://h:1/000000000000/sluice-test-RunQueue"


def test_sluice_clients_prefer_the_per_service_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://general:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://sqs-only:2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws.reset_clients()
    try:
        assert aws.sqs().meta.endpoint_url == "http://sqs-only:2"
        assert aws.s3().meta.endpoint_url == "http://general:1"
    finally:
        aws.reset_clients()
