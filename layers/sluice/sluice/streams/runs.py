"""Streams on the run record: which keys a run has, and closing them when the run finishes.

The keys are a DynamoDB string set (``streamKeys``) updated with ``ADD``, so a key is recorded
once however many mints race for it (the reference platform's read-then-push could record it
twice). This is its own small update rather than a change to the engine's store, which owns the
rest of the record.
"""

from __future__ import annotations

from sluice import aws
from sluice.config import get_settings
from sluice.errors import NotFound
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
    """Add ``key`` to the run's stream keys (a no-op when it is there already).

    Raises:
        NotFound: the run does not exist.
        ServiceUnavailable: DynamoDB cannot be reached.
    """
    try:
        with aws.dynamodb_errors("run"):
            aws.dynamodb().update_item(
                TableName=get_settings().runs_table,
                Key={"runId": {"S": run_id}},
                UpdateExpression="ADD #keys :key",
                ConditionExpression="attribute_exists(runId)",
                ExpressionAttributeNames={"#keys": STREAM_KEYS_ATTRIBUTE},
                ExpressionAttributeValues={":key": {"SS": [key]}},
            )
    except aws.ConditionFailed:
        raise NotFound(f"Run {run_id} not found") from None


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
