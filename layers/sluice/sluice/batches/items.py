"""One phase-2 item: validate it, offload its payload, queue it once.

The order is what makes a retry repair a half-done item: the index is marked enqueued only after
its message is durably on BatchItemQueue. A crash or a dependency failure before the mark leaves
the index unmarked, and the next phase 2 sends it again; a duplicate message is harmless because
batch_runs creates the item's run under a run id derived from (batch, index).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import ValidationError

from sluice import aws, strict_json
from sluice.batches import keys, state
from sluice.batches.errors import InvalidItem
from sluice.batches.models import PAYLOAD_TOO_LARGE, STORE_PAYLOAD_TYPE, Batch, BatchItem
from sluice.batches.ndjson import OversizedItem, Parsed
from sluice.config import get_settings
from sluice.engine import TriggerBody, payloads
from sluice.engine.models import check_trigger
from sluice.errors import PayloadTooLarge, Unprocessable, issues_from_pydantic

Outcome = Literal["accepted", "deduplicated"]

# SQS's classic message limit. Queues now take 1 MiB, but staying under 256 KiB keeps the
# message cheap (one 64 KiB billing chunk per 64 KiB) and works on every emulator.
SQS_MAX_MESSAGE_BYTES = 256 * 1024


def process(batch: Batch, parsed: Parsed) -> Outcome:
    """Queue one parsed line of ``batch``.

    Raises:
        InvalidItem: the line is not a valid item, or its index is outside [0, runCount).
        ServiceUnavailable: Redis, S3 or SQS failed; nothing was marked, a retry repeats it.
    """
    if isinstance(parsed.value, OversizedItem):
        return _oversized(batch, parsed.value)
    item = _validate(batch, parsed)
    if state.is_enqueued(batch.id, item.index):
        return "deduplicated"
    return _enqueue(batch, item.index, _message(batch, item))


def _validate(batch: Batch, parsed: Parsed) -> BatchItem:
    raw = parsed.value
    index = raw.get("index") if isinstance(raw, dict) else None
    where = f"index {index}" if isinstance(index, int) else f"unknown index (line {parsed.line})"
    try:
        item = BatchItem.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first.get("loc", ())) or "item"
        raise InvalidItem(
            f"Invalid item at {where}: {path}: {first.get('msg')}",
            index=index if isinstance(index, int) else None,
            issues=issues_from_pydantic(exc.errors()),
        ) from exc
    _check_index(batch, item.index)
    try:
        check_trigger(TriggerBody(payload=item.payload, options=item.options.trigger_options()))
    except (Unprocessable, PayloadTooLarge) as exc:
        # One answer for every item a trigger would refuse: a 422 naming the index, the trigger's
        # own code in the issues.
        raise InvalidItem(
            f"Invalid item at index {item.index}: {exc.message}",
            index=item.index,
            issues=[{"index": item.index, "code": exc.code, "message": exc.message}],
        ) from exc
    return item


def _check_index(batch: Batch, index: int) -> None:
    if index >= batch.runCount:
        raise InvalidItem(f"Item index {index} exceeds batch runCount {batch.runCount}", index=index)


def _oversized(batch: Batch, marker: OversizedItem) -> Outcome:
    _check_index(batch, marker.index)
    if state.is_enqueued(batch.id, marker.index):
        return "deduplicated"
    message = (
        f"Batch item payload is too large ({marker.actual_size / 1024:.1f} KB). Maximum allowed size is "
        f"{marker.max_size / 1024:.1f} KB. Reduce the payload size or offload large data to external storage."
    )
    envelope = _envelope(batch, marker.index, marker.task, {})
    envelope["error"] = {"code": PAYLOAD_TOO_LARGE, "message": message}
    return _enqueue(batch, marker.index, envelope)


def _envelope(batch: Batch, index: int, task: str, options: dict[str, Any]) -> dict[str, Any]:
    if batch.parentRunId and "parentRunId" not in options:
        options = {**options, "parentRunId": batch.parentRunId}
    return {
        "batchId": batch.id,
        "orgId": batch.orgId,
        "envId": batch.envId,
        "runCount": batch.runCount,
        "index": index,
        "task": task,
        "options": options,
    }


def _message(batch: Batch, item: BatchItem) -> dict[str, Any]:
    options = item.options.trigger_options().model_dump(mode="json", exclude_defaults=True)
    envelope = _envelope(batch, item.index, item.task, options)
    key = keys.item_payload(batch.envId, batch.id, item.index)
    if item.options.payloadType == STORE_PAYLOAD_TYPE:
        _require_uploaded(key, item.index)
        envelope["payloadRef"] = key
        return envelope
    encoded = payloads.encode(item.payload)
    room = SQS_MAX_MESSAGE_BYTES - len(_encode(envelope)) - len(',"payload":')
    if room <= 0:
        raise InvalidItem(f"Invalid item at index {item.index}: its options are too large", index=item.index)
    if item.payload is not None and len(encoded) > min(get_settings().payload_offload_bytes, room):
        payloads.store(key, encoded)
        envelope["payloadRef"] = key
    else:
        envelope["payload"] = item.payload
    return envelope


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _require_uploaded(key: str, index: int) -> None:
    """The item's uploaded payload exists, fits the payload limit and is JSON.

    A presigned PUT takes any bytes, and batch_runs only passes the key on: checked here, a bad
    upload is a 422 naming its index, instead of a run whose payload can never be read.
    """
    limit = get_settings().max_payload_bytes
    with aws.unavailable_as_503("payload store"):
        try:
            obj = aws.s3().get_object(Bucket=get_settings().payload_bucket, Key=key)
            size = int(obj.get("ContentLength", 0))
            data = obj["Body"].read() if size <= limit else b""
        except ClientError as exc:
            if aws.error_code(exc) in aws.S3_MISSING_OBJECT_CODES:
                message = f"its payload is {STORE_PAYLOAD_TYPE} but was not uploaded"
                raise InvalidItem(f"Invalid item at index {index}: {message}", index=index) from exc
            raise
    if size > limit:
        raise InvalidItem(
            f"Invalid item at index {index}: its uploaded payload is {size} bytes; the limit is {limit}",
            index=index,
        )
    try:
        strict_json.loads(data)
    except ValueError as exc:
        raise InvalidItem(
            f"Invalid item at index {index}: its uploaded payload is not JSON ({exc})", index=index
        ) from exc


def _enqueue(batch: Batch, index: int, message: dict[str, Any]) -> Outcome:
    with aws.unavailable_as_503("batch item queue"):
        aws.sqs().send_message(
            QueueUrl=get_settings().batch_item_queue_url,
            MessageBody=_encode(message).decode("utf-8"),
            # Fair queues: one organization's 100 000-item batch does not hold up the others'.
            MessageGroupId=batch.orgId,
        )
    return "accepted" if state.mark_enqueued(batch.id, index) else "deduplicated"
