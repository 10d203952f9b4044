"""Streams on the run record: which keys a run has, and closing them when the run finishes.

The keys are a DynamoDB string set (``streamKeys``) updated with ``ADD``, so a key is recorded
once however many mints race for it (the reference platform's read-then-push could record it
twice). This is its own small update rather than a change to the engine's store, which owns the
rest of the record.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from sluice import aws
from sluice.config import get_settings
from sluice.errors import Conflict, NotFound
from sluice.streams.models import StreamAddress
from sluice.streams.store import get_store

STREAM_KEYS_ATTRIBUTE = "streamKeys"

# The statuses after which a run produces no more output. Today the engine only makes FAILED
# runs final; the others are the reference platform's and arrive with the run lifecycle.
FINAL_STATUSES = frozenset(
    {"COMPLETED", "FAILED", "CANCELED", "CRASHED", "SYSTEM_FAILURE", "EXPIRED", "TIMED_OUT"}
)


def is_final(status: str) -> bool:
    return status in FINAL_STATUSES


def record_stream_key(run_id: str, key: str) -> None:
    """Add ``key`` to the run's stream keys (a no-op when it is there already). A run holds at
    most SLUICE_MAX_STREAMS_PER_RUN: the set lives in the run's item, which must stay within
    DynamoDB's 400 KB; the condition counts it in the same write, so racing mints cannot pass it.

    Raises:
        NotFound: the run does not exist.
        Conflict: ``too_many_streams``: ``key`` would be one more than the limit.
        ServiceUnavailable: DynamoDB cannot be reached.
    """
    limit = get_settings().max_streams_per_run
    try:
        with aws.dynamodb_errors("run"):
            aws.dynamodb().update_item(
                TableName=get_settings().runs_table,
                Key={"runId": {"S": run_id}},
                UpdateExpression="ADD #keys :keys",
                ConditionExpression="attribute_exists(runId) AND"
                " (attribute_not_exists(#keys) OR size(#keys) < :limit OR contains(#keys, :key))",
                ExpressionAttributeNames={"#keys": STREAM_KEYS_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":keys": {"SS": [key]},
                    ":key": {"S": key},
                    ":limit": {"N": str(limit)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
    except aws.ConditionFailed as exc:
        cause = exc.__cause__
        if isinstance(cause, ClientError) and "Item" in cause.response:
            raise Conflict(
                f"Run {run_id} has {limit} streams, the most a run may have", code="too_many_streams"
            ) from None
        raise NotFound(f"Run {run_id} not found") from None


def leased_attempt(run_id: str, lease_token: str) -> int | None:
    """The attempt that ``lease_token`` holds, if it is the run's executing attempt; else None."""
    with aws.dynamodb_errors("run"):
        item = (
            aws.dynamodb()
            .get_item(
                TableName=get_settings().runs_table,
                Key={"runId": {"S": run_id}},
                ProjectionExpression="#status, leaseToken, attempt",
                ExpressionAttributeNames={"#status": "status"},
                ConsistentRead=True,
            )
            .get("Item")
        )
    if (
        not item
        or item.get("status", {}).get("S") != "EXECUTING"
        or item.get("leaseToken", {}).get("S") != lease_token
    ):
        return None
    return int(item["attempt"]["N"])


def fence_run_streams(run_id: str, attempt: int) -> None:
    """Refuse the appends of every attempt before ``attempt`` on all the run's streams (the run
    lifecycle calls this when an attempt is retried, so a worker presumed dead cannot write)."""
    store = get_store()
    for key in sorted(stream_keys(run_id)):
        store.raise_fence(StreamAddress.run(run_id, key), attempt)


def stream_keys(run_id: str) -> set[str]:
    """The keys of every stream minted on the run."""
    with aws.dynamodb_errors("run"):
        item = (
            aws.dynamodb()
            .get_item(
                TableName=get_settings().runs_table,
                Key={"runId": {"S": run_id}},
                ProjectionExpression="#keys",
                ExpressionAttributeNames={"#keys": STREAM_KEYS_ATTRIBUTE},
                ConsistentRead=True,
            )
            .get("Item")
        )
    return set((item or {}).get(STREAM_KEYS_ATTRIBUTE, {}).get("SS", []))


def close_run_streams(run_id: str) -> int:
    """Close every stream of a run that finished (readers get ``event: end``); the run lifecycle
    calls this. Returns how many were open. Idempotent: a stream closed already stays so."""
    store = get_store()
    closed = 0
    for key in sorted(stream_keys(run_id)):
        if store.close(StreamAddress.run(run_id, key)) is not None:
            closed += 1
    return closed
