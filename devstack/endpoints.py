"""Which AWS emulator serves each service: moto, LocalStack, or any URL, service by service.

``--aws`` picks the default (``moto``; ``localstack`` for SQS and S3 on LocalStack, the services
``make localstack`` starts; a URL for every service), and the standard per-service variables
``AWS_ENDPOINT_URL_SQS``, ``_S3``, ``_DYNAMODB`` override it for one service each. Without
``--aws``, a plain ``AWS_ENDPOINT_URL`` still sends every service there. A service nobody names
runs on moto, which devstack then starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from sluice.aws import endpoint_variable

SERVICES = ("sqs", "s3", "dynamodb")
LOCALSTACK_URL = "http://localhost:4566"
# LocalStack's DynamoDB downloads DynamoDB Local on first use, which an offline machine cannot.
LOCALSTACK_SERVICES = ("sqs", "s3")
MOTO = "moto"
# Services that go where another one goes: DynamoDB Streams with its tables, and Secrets Manager
# (the stream token secret) with DynamoDB, which stays on moto even beside LocalStack.
COMPANIONS = {"dynamodbstreams": "dynamodb", "secretsmanager": "dynamodb"}


def url_of(urls: Mapping[str, str], service: str) -> str:
    """A service's endpoint, a companion's being the one of the service it goes with."""
    return urls.get(service) or urls[COMPANIONS[service]]


def variable(service: str) -> str:
    """The per-service variable botocore and sluice.aws read, e.g. ``AWS_ENDPOINT_URL_SQS``."""
    return endpoint_variable(service)


def plan(aws: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    """Each service's endpoint, or ``moto`` for the ones devstack's own moto serves."""
    if aws is None:
        default = environ.get("AWS_ENDPOINT_URL") or MOTO
        chosen = dict.fromkeys(SERVICES, default)
    elif aws == MOTO:
        chosen = dict.fromkeys(SERVICES, MOTO)
    elif aws == "localstack":
        url = environ.get("LOCALSTACK_ENDPOINT") or LOCALSTACK_URL
        chosen = {s: url if s in LOCALSTACK_SERVICES else MOTO for s in SERVICES}
    elif urlsplit(aws).scheme in ("http", "https") and urlsplit(aws).netloc:
        chosen = dict.fromkeys(SERVICES, aws.rstrip("/"))
    else:
        raise ValueError(f"--aws takes moto, localstack or an http(s) URL, not {aws!r}")
    for service in SERVICES:
        if override := environ.get(variable(service)):
            chosen[service] = override.rstrip("/")
    return chosen


def resolve(chosen: Mapping[str, str], moto_url: str | None) -> dict[str, str]:
    """The plan with ``moto`` replaced by the URL of the moto devstack started."""
    if MOTO in chosen.values() and moto_url is None:
        raise ValueError("moto serves some services but was not started")
    return {s: (moto_url or "") if url == MOTO else url for s, url in chosen.items()}


def of(info: Mapping[str, object]) -> dict[str, str]:
    """A stack.json's endpoints (stacks written before per-service endpoints had one for all)."""
    found = info.get("awsEndpoints")
    if isinstance(found, dict):
        return {str(k): str(v) for k, v in found.items()}
    return dict.fromkeys(SERVICES, str(info["awsEndpointUrl"]))


_ACCOUNT_IN_URL = re.compile(r"/(\d{12})/")


def account_of_queue_url(url: str) -> str | None:
    """The account id in a queue URL (``http://host:4566/000000000000/name``)."""
    match = _ACCOUNT_IN_URL.search(urlsplit(url).path + "/")
    return match.group(1) if match else None
