"""Phase-2 items, a group at a time: validate them, offload their payloads, queue each once.

A group is one SendMessageBatch's worth of items (10): one Redis call finds the indexes already
enqueued, one SendMessageBatch (more where the messages outweigh its 256 KiB) queues the rest, one
Redis call marks them. Per item that was a SISMEMBER, a SendMessage and a mark: three round trips.

The order is what makes a retry repair a half-done item: an index is marked enqueued only after
its message is durably on BatchItemQueue. A crash or a dependency failure before the mark leaves
the index unmarked, and the next phase 2 sends it again; a duplicate message is harmless because
batch_runs creates the item's run under a run id derived from (batch, index).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import ValidationError

from sluice import aws, strict_json
from sluice.batches import keys, state
from sluice.batches.concurrency import bounded_map
from sluice.batches.errors import InvalidItem
from sluice.batches.models import PAYLOAD_TOO_LARGE, STORE_PAYLOAD_TYPE, Batch, BatchItem
from sluice.batches.ndjson import OversizedItem, Parsed
from sluice.config import get_settings
from sluice.engine import TriggerBody, payloads
from sluice.engine.models import check_trigger
from sluice.errors import PayloadTooLarge, Unprocessable, issues_from_pydantic
from sluice.sqs_send import SEND_BATCH, send_all

Outcome = Literal["accepted", "deduplicated"]

# SQS's classic message limit. Queues now take 1 MiB, but staying under 256 KiB keeps the
# message cheap (one 64 KiB billing chunk per 64 KiB) and works on every emulator.
SQS_MAX_MESSAGE_BYTES = 256 * 1024
# A group's messages go out together: one SendMessageBatch's worth.
GROUP = SEND_BATCH
ITEM_QUEUE = "batch item queue"  # what a 503 names


def process(batch: Batch, lines: Sequence[Parsed], pool: Executor | None = None) -> Counter[Outcome]:
    """Queue a group of ``batch``'s parsed lines (at most ``GROUP``), up to the first invalid one;
    ``pool`` runs the group's S3 calls side by side (the caller's, shared by its groups).

    Raises:
        InvalidItem: a line is not a valid item, or its index is outside [0, runCount); the lines
            before it are queued.
        ServiceUnavailable: Redis, S3 or SQS failed; what was queued is marked, a retry repeats the rest.
    """
    todo: list[BatchItem | OversizedItem] = []
    invalid: InvalidItem | None = None
    for parsed in lines:
        try:
            todo.append(_checked(batch, parsed))
        except InvalidItem as exc:
            invalid = exc
            break
    outcomes: Counter[Outcome] = Counter()
    already = state.enqueued_among(batch.id, [entry.index for entry in todo])
    outcomes["deduplicated"] += len(already)
    messages: list[_Message] = []
    for entry in todo:
        if entry.index in already:
            continue
        try:
            messages.append(_message(batch, entry))
        except InvalidItem as exc:
            invalid = exc
            break
    messages, failure = _stored(messages, pool)
    sent, refused = _send(batch, messages)
    if sent:
        added = state.mark_enqueued(batch.id, sent)
        outcomes["accepted"] += added
        outcomes["deduplicated"] += len(sent) - added
    for error in (refused, failure, invalid):
        if error is not None:
            raise error
    return outcomes


def _checked(batch: Batch, parsed: Parsed) -> BatchItem | OversizedItem:
    if isinstance(parsed.value, OversizedItem):
        _check_index(batch, parsed.value.index)
        return parsed.value
    return _validate(batch, parsed)


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
        if not _uploaded_per_index(item):
            item = _decoded(batch, item)
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


def _uploaded_per_index(item: BatchItem) -> bool:
    """Sluice's SDK uploads a large payload to its index's key (``/payloads``) and sends none; the
    trigger.dev SDK uploads a packet and sends its path (``engine.packets``)."""
    return item.options.payloadType == STORE_PAYLOAD_TYPE and item.payload is None


def _decoded(batch: Batch, item: BatchItem) -> BatchItem:
    body = TriggerBody(payload=item.payload, options=item.options.trigger_options())
    decoded = body.decoded(batch.tenant)
    if decoded is body:
        return item
    options = item.options.model_copy(update={"payloadType": decoded.options.payloadType})
    return item.model_copy(update={"payload": decoded.payload, "options": options})


def _check_index(batch: Batch, index: int) -> None:
    if index >= batch.runCount:
        raise InvalidItem(f"Item index {index} exceeds batch runCount {batch.runCount}", index=index)


def _oversized(batch: Batch, marker: OversizedItem) -> dict[str, Any]:
    message = (
        f"Batch item payload is too large ({marker.actual_size / 1024:.1f} KB). Maximum allowed size is "
        f"{marker.max_size / 1024:.1f} KB. Reduce the payload size or offload large data to external storage."
    )
    envelope = _envelope(batch, marker.index, marker.task, {})
    envelope["error"] = {"code": PAYLOAD_TOO_LARGE, "message": message}
    return envelope


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


@dataclass(frozen=True)
class _Message:
    index: int
    envelope: dict[str, Any]
    # The S3 call to make before the message is sent: its payload stored, or its upload checked.
    s3: Callable[[], None] | None = None


def _message(batch: Batch, entry: BatchItem | OversizedItem) -> _Message:
    if isinstance(entry, OversizedItem):
        return _Message(entry.index, _oversized(batch, entry))
    options = entry.options.trigger_options().model_dump(mode="json", exclude_defaults=True)
    envelope = _envelope(batch, entry.index, entry.task, options)
    key = keys.item_payload(batch.tenant, batch.id, entry.index)
    if _uploaded_per_index(entry):
        envelope["payloadRef"] = key
        return _Message(entry.index, envelope, partial(_require_uploaded, key, entry.index))
    encoded = payloads.encode(entry.payload)
    room = SQS_MAX_MESSAGE_BYTES - len(_encode(envelope)) - len(',"payload":')
    if room <= 0:
        message = f"Invalid item at index {entry.index}: its options are too large"
        raise InvalidItem(message, index=entry.index)
    if entry.payload is not None and len(encoded) > min(get_settings().payload_offload_bytes, room):
        envelope["payloadRef"] = key
        return _Message(entry.index, envelope, partial(payloads.store, key, encoded))
    envelope["payload"] = entry.payload
    return _Message(entry.index, envelope)


def _stored(messages: list[_Message], pool: Executor | None) -> tuple[list[_Message], Exception | None]:
    """The messages whose S3 call succeeded (the group's calls side by side), and the first
    failure in item order."""
    calls = [m for m in messages if m.s3 is not None]
    failures = dict(bounded_map(calls, _attempt, len(calls), pool))
    kept = [m for m in messages if failures.get(m.index) is None]
    first = next((failures[m.index] for m in messages if failures.get(m.index) is not None), None)
    return kept, first


def _attempt(message: _Message) -> tuple[int, Exception | None]:
    assert message.s3 is not None
    try:
        message.s3()
    except Exception as exc:  # re-raised by ``process`` once the group's other items are queued
        return message.index, exc
    return message.index, None


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


def _send(batch: Batch, messages: list[_Message]) -> tuple[list[int], Exception | None]:
    """Send ``messages``; the indexes sent, and the first reason another was not."""
    bodies = [_encode(m.envelope).decode("utf-8") for m in messages]
    # Fair queues: one organization's 100 000-item batch does not hold up the others'.
    groups = [batch.orgId] * len(messages)
    answers = send_all(get_settings().batch_item_queue_url, bodies, groups, ITEM_QUEUE)
    sent = [m.index for m, answer in zip(messages, answers, strict=True) if answer is None]
    return sent, next((answer for answer in answers if answer is not None), None)
