"""Run payloads too large for the run record live in the payload bucket; the run keeps the key."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from sluice import aws
from sluice.config import get_settings
from sluice.errors import PayloadTooLarge

if TYPE_CHECKING:
    from sluice.engine.models import Run

CONTENT_TYPE = "application/json"


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_within(value: Any, limit: int, *, what: str, code: str) -> bytes:
    """``value`` as stored (compact JSON), refused when it is over ``limit`` bytes.

    Raises:
        PayloadTooLarge: with ``code``, naming ``what`` and both sizes.
    """
    encoded = encode(value)
    if len(encoded) > limit:
        raise PayloadTooLarge(f"{what} is {len(encoded)} bytes; the limit is {limit}", code=code)
    return encoded


def payload_key(tenant: str, run_id: str) -> str:
    """Under the run's tenant (``sluice.auth.tenant_key``: ``<org>/<env>``)."""
    return f"payloads/{tenant}/{run_id}.json"


def store(key: str, body: bytes) -> None:
    """Write an offloaded payload. The key is a function of the run, so a retry overwrites the
    same object and never leaves a second copy. boto3's standard retry mode retries throttles
    and 5xx; what still fails is a 503 to the client (``aws.unavailable_as_503``)."""
    with aws.unavailable_as_503("payload store"):
        aws.s3().put_object(
            Bucket=get_settings().payload_bucket, Key=key, Body=body, ContentType=CONTENT_TYPE
        )


def load(key: str) -> Any:
    with aws.unavailable_as_503("payload store"):
        obj = aws.s3().get_object(Bucket=get_settings().payload_bucket, Key=key)
        return json.loads(obj["Body"].read())


def output_key(tenant: str, run_id: str, lease_token: str, encoded: bytes) -> str:
    """Per attempt (its lease) and content: a late upload from a worker that lost its lease, or a
    second complete of the same lease with another output, never overwrites the output of the
    complete that won; the same complete repeated writes the same key."""
    digest = hashlib.sha256(encoded).hexdigest()[:32]
    return f"outputs/{tenant}/{run_id}/{lease_token}/{digest}.json"


def load_offloaded(run: Run) -> Run:
    """``run`` with its payload and output loaded from S3 where they were offloaded."""
    if run.payloadRef is not None:
        run.payload = load(run.payloadRef)
    if run.outputRef is not None:
        run.output = load(run.outputRef)
    return run
