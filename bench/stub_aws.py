"""AWS answered without a server: botocore's ``before-send`` hands back a canned HTTP response, so
a bench measures the caller's CPU and botocore's whole client pipeline (validation,
serialization, signing, parsing) but neither moto's work nor a network.

Every request of the JSON protocol services Sluice calls on a request path (DynamoDB, SQS) gets
the smallest valid answer for its operation; SendMessageBatch answers each entry as sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse
from moto.core.models import botocore_stubber as _moto_stubber

from sluice import aws as sluice_aws


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body

    def read(self, *_: Any, **__: Any) -> bytes:
        return self._body


def _answer(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    if operation == "SendMessageBatch":
        return {
            "Successful": [
                {"Id": e["Id"], "MessageId": f"m-{e['Id']}", "MD5OfMessageBody": "0" * 32}
                for e in body.get("Entries", [])
            ],
            "Failed": [],
        }
    if operation == "SendMessage":
        return {"MessageId": "m", "MD5OfMessageBody": "0" * 32}
    return {}


def _respond(request: Any, **_: Any) -> AWSResponse:
    operation = request.headers.get("X-Amz-Target", b"").decode().rsplit(".", 1)[-1]
    body = json.loads(request.body or b"{}")
    payload = json.dumps(_answer(operation, body)).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "stub"}
    return AWSResponse(request.url, 200, headers, _Raw(payload))  # type: ignore[arg-type]


@contextmanager
def stubbed(services: tuple[str, ...] = ("dynamodb", "sqs")) -> Iterator[None]:
    """Sluice's own clients of ``services`` answer every call from here while inside."""
    clients = [sluice_aws.client(name) for name in services]
    for client in clients:
        client.meta.events.register_first("before-send", _respond, unique_id="bench-stub")
    # botocore calls every before-send handler; moto's in-process mock (when one is active)
    # answers from there too, and its answer would win: it stands aside meanwhile.
    moto_was = _moto_stubber.enabled
    _moto_stubber.enabled = False
    try:
        yield
    finally:
        _moto_stubber.enabled = moto_was
        for client in clients:
            client.meta.events.unregister("before-send", unique_id="bench-stub")
