"""Payload packets as the trigger.dev SDK sends them: ``payload`` plus ``options.payloadType``.

The SDK serialises a payload itself and sends the text: ``application/super+json`` (superjson:
``{"json": <plain JSON>, "meta": <how to revive dates, maps, sets, bigints>}``) for any object,
``text/plain`` for a string, ``application/json`` (JSON text) where superjson failed, and
``application/store`` (the path of a packet it uploaded through ``PUT /api/v2/packets/{file}``)
for 128 KiB or more. A run stores the decoded JSON value and its type, so every size, depth and
offload rule applies to the value as it does to a JSON payload, and one run serves both kinds of
reader:

- Sluice's own routes show ``payload`` as the plain JSON (superjson's ``json``) and
  ``payloadMeta`` (its ``meta``), which the Python SDK applies (``sluice_client.superjson``);
- the SDK's routes (``/api/v3/runs``) give back the packet as it was sent.

A payload without ``payloadType`` is Sluice's own: any JSON value, stored as it is.
"""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import unquote

from botocore.exceptions import ClientError

from sluice import aws, strict_json
from sluice.config import get_settings
from sluice.errors import PayloadTooLarge, Unprocessable

JSON_TYPE = "application/json"
SUPERJSON_TYPE = "application/super+json"
TEXT_TYPE = "text/plain"
STORE_TYPE = "application/store"
# A packet path as the SDK builds it ("trigger/packet_<id>/payload.json"): bounded, no "..".
PACKET_PATH_MAX_CHARS = 512


def packet_key(tenant: str, path: str) -> str:
    """Where an uploaded packet lives in the payload bucket: under the tenant, so that a path
    from another tenant can never name it."""
    return f"packets/{tenant}/{path}"


def check_packet_path(path: str) -> str:
    """Raises Unprocessable: ``invalid_packet_path``: empty, too long, absolute, or with ``..``."""
    parts = path.split("/")
    if not path or len(path) > PACKET_PATH_MAX_CHARS or path.startswith("/") or ".." in parts:
        raise Unprocessable(
            f"A packet path is 1-{PACKET_PATH_MAX_CHARS} characters, relative, without '..'",
            code="invalid_packet_path",
        )
    return path


def decode(payload: Any, payload_type: str | None, tenant: str) -> tuple[Any, str | None]:
    """(the JSON value a packet stands for, its type as stored). A superjson packet stays an
    envelope (``{"json", "meta"}``); an ``application/store`` packet is read from the payload
    bucket and stored as the type it holds. Decoding what was decoded changes nothing, so a
    buffered or batched trigger replayed through ``engine.prepare`` is not decoded twice.

    Raises:
        Unprocessable: ``invalid_payload``: the text is not what its type says, or no packet was
            uploaded at the path; ``invalid_packet_path``.
        PayloadTooLarge: ``payload_too_large``: an uploaded packet over SLUICE_MAX_PAYLOAD_BYTES.
        ServiceUnavailable: the payload bucket could not be read.
    """
    if payload_type == STORE_TYPE:
        if not isinstance(payload, str):
            raise Unprocessable("An application/store payload is the packet's path", code="invalid_payload")
        return _stored_packet(payload, tenant)
    if not isinstance(payload, str):
        if payload_type == SUPERJSON_TYPE:
            return _envelope(payload), payload_type
        return payload, payload_type
    if payload_type == JSON_TYPE:
        return _parse(payload, payload_type), payload_type
    if payload_type == SUPERJSON_TYPE:
        return _envelope(_parse(payload, payload_type)), payload_type
    return payload, payload_type  # text, or a type only the sender reads: the text it sent


def _parse(text: str | bytes, payload_type: str) -> Any:
    try:
        return strict_json.loads(text)
    except ValueError as exc:
        message = f"The payload is not valid {payload_type}: {exc}"
        raise Unprocessable(message, code="invalid_payload") from exc


def _envelope(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or "json" not in value or not set(value) <= {"json", "meta"}:
        raise Unprocessable(
            'An application/super+json payload is {"json": ..., "meta"?: {...}}', code="invalid_payload"
        )
    if "meta" in value and not isinstance(value["meta"], dict):
        raise Unprocessable("A superjson payload's meta must be an object", code="invalid_payload")
    return value


def is_envelope(value: Any) -> bool:
    return isinstance(value, dict) and "json" in value and set(value) <= {"json", "meta"}


def _stored_packet(path: str, tenant: str) -> tuple[Any, str]:
    """An uploaded packet's value. The SDK uploads superjson text as ``.json`` (it loses the
    inner type when it says ``application/store``) and a string as ``.txt``."""
    key = packet_key(tenant, check_packet_path(path))
    limit = get_settings().max_payload_bytes
    with aws.unavailable_as_503("payload store"):
        try:
            obj = aws.s3().get_object(Bucket=get_settings().payload_bucket, Key=key)
        except ClientError as exc:
            if aws.error_code(exc) in aws.S3_MISSING_OBJECT_CODES:
                raise Unprocessable(f"No packet was uploaded at {path}", code="invalid_payload") from exc
            raise
        size = int(obj.get("ContentLength", 0))
        if size > limit:
            obj["Body"].close()
            message = f"The payload is {size} bytes; the limit is {limit}"
            raise PayloadTooLarge(message, code="payload_too_large")
        data = obj["Body"].read()
    if not path.endswith(".json"):
        return data.decode("utf-8", errors="replace"), TEXT_TYPE
    value = _parse(data, STORE_TYPE)
    return value, SUPERJSON_TYPE if is_envelope(value) else JSON_TYPE


def for_reader(payload: Any, payload_type: str | None) -> tuple[Any, dict[str, Any] | None]:
    """(plain JSON, superjson meta or None): what Sluice's own routes show of a stored payload."""
    if payload_type == SUPERJSON_TYPE and is_envelope(payload):
        meta = payload.get("meta")
        return payload["json"], meta if isinstance(meta, dict) else None
    return payload, None


def as_sent(payload: Any, payload_type: str | None) -> tuple[str | None, str]:
    """(packet text, type) for the SDK's own routes: what it sent, re-serialised."""
    if payload_type == SUPERJSON_TYPE and is_envelope(payload):
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False), SUPERJSON_TYPE
    if payload_type == TEXT_TYPE and isinstance(payload, str):
        return payload, TEXT_TYPE
    if payload is None:
        return None, JSON_TYPE
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False), JSON_TYPE


def presigned(tenant: str, path: str, method: Literal["put_object", "get_object"]) -> str:
    """A presigned URL for the tenant's packet at ``path``: the trigger.dev SDK uploads a payload
    of 128 KiB or more with it (any Content-Type: none is signed) and reads one back.

    Raises:
        Unprocessable: ``invalid_packet_path``.
        ServiceUnavailable: the URL could not be signed.
    """
    key = packet_key(tenant, check_packet_path(unquote(path)))
    with aws.unavailable_as_503("payload store"):
        return str(
            aws.s3().generate_presigned_url(
                method,
                Params={"Bucket": get_settings().payload_bucket, "Key": key},
                ExpiresIn=get_settings().batch_upload_url_ttl_s,
            )
        )
