"""boto3 clients from one place: endpoint, timeouts and retries are decided here only.

``AWS_ENDPOINT_URL_<SERVICE>`` (``_SQS``, ``_S3``, ``_DYNAMODB``) points one service's client at
moto's server or LocalStack, ``AWS_ENDPOINT_URL`` every other one; unset, clients talk to AWS.
Clients are cached per process because creating one costs milliseconds on a cold start.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from sluice.config import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


# botocore names a service's endpoint variable after its service id, not its client name.
_SERVICE_IDS = {"secretsmanager": "SECRETS_MANAGER", "dynamodbstreams": "DYNAMODB_STREAMS"}


def endpoint_variable(service: str) -> str:
    """The per-service endpoint variable botocore reads, e.g. ``AWS_ENDPOINT_URL_SECRETS_MANAGER``."""
    return f"AWS_ENDPOINT_URL_{_SERVICE_IDS.get(service, service.upper())}"


def endpoint_url(service: str) -> str | None:
    """The service's own endpoint variable first, as botocore ranks them: passing the general one
    explicitly would override the per-service one."""
    return os.environ.get(endpoint_variable(service)) or os.environ.get("AWS_ENDPOINT_URL") or None


@cache
def client(service: str) -> Any:
    settings = get_settings()
    config = Config(
        connect_timeout=settings.aws_connect_timeout_s,
        read_timeout=settings.aws_read_timeout_s,
        # total_max_attempts counts the first request; botocore's max_attempts counts only retries.
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
        # Presigned S3 URLs must name the regional virtual host so that browsers and httpx can
        # PUT to them without a redirect.
        s3={"addressing_style": "path" if endpoint_url("s3") else "auto"},
        signature_version="s3v4" if service == "s3" else None,
    )
    session = boto3.session.Session()
    return session.client(service, endpoint_url=endpoint_url(service), config=config)  # type: ignore[call-overload]


def dynamodb() -> DynamoDBClient:
    return client("dynamodb")  # type: ignore[no-any-return]


def sqs() -> SQSClient:
    return client("sqs")  # type: ignore[no-any-return]


def s3() -> S3Client:
    return client("s3")  # type: ignore[no-any-return]


def reset_clients() -> None:
    """Forget cached clients, for tests and devstack after the endpoint changes."""
    client.cache_clear()
