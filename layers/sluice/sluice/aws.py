"""AWS clients (botocore's) from one place: endpoint, timeouts and retries are decided here only; and the one
place where an AWS failure becomes a 503.

``AWS_ENDPOINT_URL_<SERVICE>`` (``_SQS``, ``_S3``, ``_DYNAMODB``) points one service's client at
moto's server or LocalStack, ``AWS_ENDPOINT_URL`` every other one; unset, clients talk to AWS.
Clients are cached per process because creating one costs milliseconds on a cold start.

What is retryable (``is_retryable``), for the 503 that tells a client to retry and for the workers
that requeue or redeliver: a connection that failed or timed out, a throttled request, a 5xx, and a
table, queue, bucket or secret that is not there (a deploy or an emulator restart in progress: the
service cannot be reached as configured). A refused request is not: a lost condition, invalid
input, denied access. Those are the caller's to handle (``ConditionFailed``, a 404) or a bug, and
they propagate, so that a request that cannot succeed is never answered "retry shortly".
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, IncompleteReadError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker, TransientRetryableChecker

from sluice.config import get_settings
from sluice.errors import ServiceUnavailable

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


class _ClientOptions(NamedTuple):
    endpoint: str | None
    region: str | None
    connect_timeout: float
    read_timeout: float
    attempts: int


def client(service: str, *, region: str | None = None, endpoint: str | None = None) -> Any:
    """The process's client for ``service``, one for each endpoint, region and settings it is
    asked with: a test or devstack that changes them gets a new client, a warm function keeps its
    own. Every client comes from one botocore Session: botocore parses its models and endpoint rules
    once per session, and a cold start's DynamoDB, SQS and S3 clients took 235 ms of CPU with a
    session each, 128 ms from one (``bench/aws_clients.py``). botocore's own session, not boto3's:
    boto3 adds only S3's transfer manager, which Sluice does not use, and importing it (with
    s3transfer) cost a cold start ~30 ms (``bench/cold_start.py``).

    ``region`` and ``endpoint`` override the environment's (a command line's ``--region``)."""
    settings = get_settings()
    options = _ClientOptions(
        endpoint or endpoint_url(service),
        region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        settings.aws_connect_timeout_s,
        settings.aws_read_timeout_s,
        settings.aws_max_attempts,
    )
    key = (service, options)
    if (made := _CLIENTS.get(key)) is None:
        # botocore sessions are not thread-safe, and the threads of a batch's cold start each made
        # the same client at once without the lock.
        with _LOCK:
            if (made := _CLIENTS.get(key)) is None:
                made = _CLIENTS[key] = _make(service, options)
    return made


_LOCK = threading.Lock()
_CLIENTS: dict[tuple[str, _ClientOptions], Any] = {}


def _make(service: str, options: _ClientOptions) -> Any:
    config = Config(
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        # total_max_attempts counts the first request; botocore's max_attempts counts only retries.
        retries={"mode": "standard", "total_max_attempts": options.attempts},
        # Presigned S3 URLs must name the regional virtual host so that browsers and httpx can
        # PUT to them without a redirect.
        s3={"addressing_style": "path" if options.endpoint else "auto"},
        signature_version="s3v4" if service == "s3" else None,
    )
    return _session().create_client(
        service, region_name=options.region, endpoint_url=options.endpoint, config=config
    )


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


def dynamodb() -> DynamoDBClient:
    return client("dynamodb")  # type: ignore[no-any-return]


def sqs() -> SQSClient:
    return client("sqs")  # type: ignore[no-any-return]


def s3() -> S3Client:
    return client("s3")  # type: ignore[no-any-return]


def reset_clients() -> None:
    """Forget every client made so far (their event handlers and connections with them) and the
    session they came from (the credentials it resolved)."""
    with _LOCK:
        _CLIENTS.clear()
        _session.cache_clear()


# --- failures ------------------------------------------------------------------------------------

# botocore's own classification (the one its standard retry mode applies before we see an error):
# throttling codes, and transient ones (timeouts, connection errors), so that the list is kept by
# the library that knows every service's spelling.
_THROTTLED = ThrottledRetryableChecker()
_TRANSIENT = TransientRetryableChecker()
# Codes of a resource that is not there (DynamoDB and Secrets Manager spell it alike).
MISSING_RESOURCE_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NoSuchBucket",
    }
)
# S3's codes for an object that is not there (GetObject says NoSuchKey, HeadObject a bare 404).
S3_MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
AWS_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError)


# DynamoDB refuses a partition key over 2048 bytes with a ValidationException, on a read as on a
# write (moto checks only writes). An id from a request path that long names nothing we stored.
PARTITION_KEY_MAX_BYTES = 2048


def fits_partition_key(value: str) -> bool:
    """Whether DynamoDB takes ``value`` as a partition key; a store answers "no such item" for
    one it would not take, instead of a request that fails."""
    try:
        return 0 < len(value.encode("utf-8")) <= PARTITION_KEY_MAX_BYTES
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 form at all
        return False


class ConditionFailed(Exception):
    """A conditional write lost: the item already exists (or no longer matches)."""


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_code_in(exc: BaseException) -> str | None:
    """The AWS error code of ``exc``, or of the AWS error behind it; None when AWS said nothing."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ClientError):
            return error_code(cause)
        cause = cause.__cause__ or cause.__context__
    return None


def is_retryable(exc: BaseException) -> bool:
    """Whether an AWS failure may succeed when retried (see the module docstring)."""
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        context = RetryContext(attempt_number=1, parsed_response=dict(exc.response))
        return (
            status >= 500
            or error_code(exc) in MISSING_RESOURCE_CODES
            or _THROTTLED.is_retryable(context)
            or _TRANSIENT.is_retryable(context)
        )
    if isinstance(exc, IncompleteReadError):  # a response body cut short: the connection dropped
        return True
    return isinstance(exc, BotoCoreError) and _TRANSIENT.is_retryable(
        RetryContext(attempt_number=1, caught_exception=exc)
    )


@contextmanager
def unavailable_as_503(what: str) -> Iterator[None]:
    """A retryable AWS failure becomes a 503 naming ``what`` ("The payload store is unavailable;
    retry shortly"); any other error propagates unchanged."""
    try:
        yield
    except AWS_ERRORS as exc:
        if is_retryable(exc):
            raise ServiceUnavailable(f"The {what} is unavailable; retry shortly") from exc
        raise


@contextmanager
def dynamodb_errors(what: str) -> Iterator[None]:
    """``unavailable_as_503`` for the ``what`` store, and a lost condition as ``ConditionFailed``
    (the caller reads the old item, if it asked for one, from ``__cause__``)."""
    with unavailable_as_503(f"{what} store"):
        try:
            yield
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise ConditionFailed(what) from exc
            raise
