"""Batch records in DynamoDB (BatchesTable): every status change is one conditional write.

A record is ``pk`` (the batch id), ``envId``, ``status``, ``sealed``, ``expiresAt`` (TTL) and
``doc``, the batch as JSON (status and seal are top-level too, for the conditions). While a batch
is PENDING and unsealed it also carries ``pendingShard`` and ``sealDeadline``, the keys of the
sparse ``PendingIndex`` the reaper queries; sealing or aborting removes them, so the index holds
only batches that may still need reaping.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from sluice import aws
from sluice.aws import ConditionFailed, dynamodb_errors
from sluice.batches.models import Batch, BatchStatus
from sluice.config import get_settings

PENDING_INDEX = "PendingIndex"
PENDING_SHARD = "PENDING"
_STILL_PENDING = "#status = :pending AND sealed = :false"


class IdempotencyKeyTaken(Exception):
    """Another batch holds the idempotency key."""


def _table() -> str:
    return get_settings().batches_table


def _epoch(at: datetime) -> str:
    return str(int(at.timestamp()))


def _item(batch: Batch) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": batch.id},
        "envId": {"S": batch.envId},
        "status": {"S": batch.status.value},
        "sealed": {"BOOL": batch.sealed},
        "expiresAt": {"N": str(int(batch.createdAt.timestamp()) + get_settings().batch_retention_s)},
        "doc": {"S": batch.model_dump_json()},
    }
    if batch.status == BatchStatus.PENDING and not batch.sealed:
        item["pendingShard"] = {"S": PENDING_SHARD}
        item["sealDeadline"] = {"N": _epoch(batch.sealDeadline)}
    return item


def _batch(item: Mapping[str, Any]) -> Batch:
    return Batch.model_validate_json(item["doc"]["S"])


def create(batch: Batch, idempotency: tuple[str, int] | None, now: datetime) -> None:
    """Put a new batch and, atomically with it, bind its idempotency key ``(pk, expires at)``.

    Raises:
        IdempotencyKeyTaken: a live binding exists; nothing was written.
    """
    writes: list[dict[str, Any]] = [
        {
            "Put": {
                "TableName": _table(),
                "Item": _item(batch),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
    ]
    if idempotency is not None:
        pk, expires_at = idempotency
        writes.append(
            {
                "Put": {
                    "TableName": _table(),
                    "Item": {
                        "pk": {"S": pk},
                        "batchId": {"S": batch.id},
                        "expiresAt": {"N": str(expires_at)},
                    },
                    # TTL deletes lazily, so an expired binding still present counts as absent.
                    "ConditionExpression": "attribute_not_exists(pk) OR expiresAt <= :now",
                    "ExpressionAttributeValues": {":now": {"N": _epoch(now)}},
                }
            }
        )
    with dynamodb_errors("batch"):
        try:
            aws.dynamodb().transact_write_items(TransactItems=writes)  # type: ignore[arg-type]
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons", [])  # type: ignore[typeddict-item]
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons[1:]):
                raise IdempotencyKeyTaken(batch.id) from exc
            raise


def lookup_idempotency(pk: str, now: datetime) -> str | None:
    with dynamodb_errors("batch"):
        item = (
            aws.dynamodb()
            .get_item(TableName=_table(), Key={"pk": {"S": pk}}, ConsistentRead=True)
            .get("Item")
        )
    if item is None or int(item["expiresAt"]["N"]) <= int(now.timestamp()):
        return None
    return item["batchId"]["S"]


def get(batch_id: str) -> Batch | None:
    with dynamodb_errors("batch"):
        item = (
            aws.dynamodb()
            .get_item(TableName=_table(), Key={"pk": {"S": batch_id}}, ConsistentRead=True)
            .get("Item")
        )
    return _batch(item) if item and "doc" in item else None


def _transition(batch: Batch, condition: str, values: Mapping[str, Any]) -> bool:
    """Write ``batch`` over its record if ``condition`` holds; False when it did not."""
    item = _item(batch)
    names = {"#status": "status", "#doc": "doc"}
    removes = "" if "pendingShard" in item else " REMOVE pendingShard, sealDeadline"
    try:
        with dynamodb_errors("batch"):
            aws.dynamodb().update_item(
                TableName=_table(),
                Key={"pk": {"S": batch.id}},
                UpdateExpression="SET #status = :status, sealed = :sealed, #doc = :doc" + removes,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":status": item["status"],
                    ":sealed": item["sealed"],
                    ":doc": item["doc"],
                    **values,
                },
            )
    except ConditionFailed:
        return False
    return True


def seal(batch: Batch, now: datetime) -> bool:
    """PENDING and unsealed -> PROCESSING and sealed; False when the batch was not in that state."""
    sealed = batch.model_copy(update={"status": BatchStatus.PROCESSING, "sealed": True, "sealedAt": now})
    return _transition(sealed, _STILL_PENDING, {":pending": {"S": "PENDING"}, ":false": {"BOOL": False}})


def abort(batch: Batch, now: datetime, reason: str) -> bool:
    """PENDING and unsealed -> ABORTED; False when a seal (or another abort) got there first."""
    aborted = batch.model_copy(update={"status": BatchStatus.ABORTED, "completedAt": now, "error": reason})
    return _transition(aborted, _STILL_PENDING, {":pending": {"S": "PENDING"}, ":false": {"BOOL": False}})


def complete(batch: Batch, processed: int, failed: int, now: datetime) -> bool:
    """PROCESSING -> COMPLETED (or PARTIAL_FAILED when any run failed), exactly once."""
    done = batch.model_copy(
        update={
            "status": BatchStatus.PARTIAL_FAILED if failed else BatchStatus.COMPLETED,
            "completedAt": now,
            "processedCount": processed,
            "failedCount": failed,
        }
    )
    return _transition(done, "#status = :processing", {":processing": {"S": "PROCESSING"}})


def due_for_abort(now: datetime) -> Iterator[str]:
    """Ids of batches still PENDING and unsealed whose seal deadline has passed."""
    paginator = aws.dynamodb().get_paginator("query")
    with dynamodb_errors("batch"):
        pages = paginator.paginate(
            TableName=_table(),
            IndexName=PENDING_INDEX,
            KeyConditionExpression="pendingShard = :shard AND sealDeadline <= :now",
            ExpressionAttributeValues={":shard": {"S": PENDING_SHARD}, ":now": {"N": _epoch(now)}},
        )
        for page in pages:
            for item in page.get("Items", []):
                yield item["pk"]["S"]
