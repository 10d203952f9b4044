"""DynamoDB storage for runs and idempotency records.

A run item is ``runId`` (key), ``envId``, ``enqueuedAt`` (set once the run is on RunQueue) and
``doc``, the run as JSON, so that any payload shape round-trips without DynamoDB's number rules.

An idempotency item's key is a hash of (environment, task, key): the raw key may be 2048
characters, more than a partition key may hold once the other parts are added.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sluice import aws
from sluice.config import get_settings
from sluice.engine.models import Run
from sluice.errors import ServiceUnavailable


class ConditionFailed(Exception):
    """A conditional write lost: the item already exists (or no longer matches)."""


@contextmanager
def dynamodb_errors(what: str) -> Iterator[None]:
    """Map DynamoDB failures: a lost condition is ``ConditionFailed``, anything else a 503."""
    try:
        yield
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise ConditionFailed(what) from exc
        raise ServiceUnavailable(f"The {what} store is unavailable; retry shortly") from exc
    except BotoCoreError as exc:
        raise ServiceUnavailable(f"The {what} store is unavailable; retry shortly") from exc


def _run_from_item(item: Mapping[str, Any]) -> Run:
    run = Run.model_validate_json(item["doc"]["S"])
    if "enqueuedAt" in item:
        run.enqueuedAt = datetime.fromisoformat(item["enqueuedAt"]["S"])
    return run


def put_run(run: Run) -> None:
    """Insert ``run`` unless its id exists. Raises ConditionFailed when it does."""
    with dynamodb_errors("run"):
        aws.dynamodb().put_item(
            TableName=get_settings().runs_table,
            Item={
                "runId": {"S": run.id},
                "envId": {"S": run.envId},
                "doc": {"S": run.model_dump_json(exclude={"enqueuedAt", "buffered"})},
            },
            ConditionExpression="attribute_not_exists(runId)",
        )


def get_run_item(run_id: str) -> Run | None:
    with dynamodb_errors("run"):
        item = (
            aws.dynamodb()
            .get_item(TableName=get_settings().runs_table, Key={"runId": {"S": run_id}}, ConsistentRead=True)
            .get("Item")
        )
    return _run_from_item(item) if item else None


def mark_enqueued(run_id: str, at: datetime) -> None:
    """Record that the run's RunQueue message was sent (first writer wins; later ones are no-ops)."""
    try:
        with dynamodb_errors("run"):
            aws.dynamodb().update_item(
                TableName=get_settings().runs_table,
                Key={"runId": {"S": run_id}},
                UpdateExpression="SET enqueuedAt = :at",
                ConditionExpression="attribute_exists(runId) AND attribute_not_exists(enqueuedAt)",
                ExpressionAttributeValues={":at": {"S": at.isoformat()}},
            )
    except ConditionFailed:
        pass


def claim_send(run_id: str, now: float, lease_s: float) -> bool:
    """Take the right to send the run's RunQueue message: only one of several concurrent
    attempts (cached triggers, redelivered signals) sends. A claim older than ``lease_s`` is
    treated as abandoned by a crashed sender, so a later attempt repairs the run."""
    try:
        with dynamodb_errors("run"):
            aws.dynamodb().update_item(
                TableName=get_settings().runs_table,
                Key={"runId": {"S": run_id}},
                UpdateExpression="SET sendClaimedAt = :now",
                ConditionExpression=(
                    "attribute_exists(runId) AND attribute_not_exists(enqueuedAt) "
                    "AND (attribute_not_exists(sendClaimedAt) OR sendClaimedAt < :stale)"
                ),
                ExpressionAttributeValues={":now": {"N": repr(now)}, ":stale": {"N": repr(now - lease_s)}},
            )
        return True
    except ConditionFailed:
        return False


def release_send(run_id: str, claimed_at: float) -> None:
    """Give the claim back after a failed send, so that the client's retry sends at once."""
    try:
        with dynamodb_errors("run"):
            aws.dynamodb().update_item(
                TableName=get_settings().runs_table,
                Key={"runId": {"S": run_id}},
                UpdateExpression="REMOVE sendClaimedAt",
                ConditionExpression="sendClaimedAt = :mine",
                ExpressionAttributeValues={":mine": {"N": repr(claimed_at)}},
            )
    except ConditionFailed:
        pass


def update_run(run_id: str, change: Callable[[Run], Run]) -> Run | None:
    """Apply ``change`` to the stored run with optimistic concurrency on its document."""
    for _ in range(5):
        with dynamodb_errors("run"):
            item = (
                aws.dynamodb()
                .get_item(
                    TableName=get_settings().runs_table, Key={"runId": {"S": run_id}}, ConsistentRead=True
                )
                .get("Item")
            )
        if item is None:
            return None
        updated = change(_run_from_item(item))
        try:
            with dynamodb_errors("run"):
                aws.dynamodb().update_item(
                    TableName=get_settings().runs_table,
                    Key={"runId": {"S": run_id}},
                    UpdateExpression="SET doc = :new",
                    ConditionExpression="doc = :old",
                    ExpressionAttributeValues={
                        ":new": {"S": updated.model_dump_json(exclude={"enqueuedAt", "buffered"})},
                        ":old": item["doc"],
                    },
                )
            return updated
        except ConditionFailed:
            continue
    raise ServiceUnavailable("The run is being changed concurrently; retry shortly")


def idempotency_pk(env_id: str, task_id: str, key: str) -> str:
    return hashlib.sha256(json.dumps([env_id, task_id, key]).encode("utf-8")).hexdigest()


def claim_idempotency(pk: str, run_id: str, expires_at: int, now: int) -> str:
    """Bind the key to ``run_id`` unless a live binding exists; return the bound run id."""
    table = get_settings().idempotency_table
    try:
        with dynamodb_errors("idempotency"):
            aws.dynamodb().put_item(
                TableName=table,
                Item={"pk": {"S": pk}, "runId": {"S": run_id}, "expiresAt": {"N": str(expires_at)}},
                # DynamoDB deletes expired items lazily (up to days later), so an expired record
                # still present must count as absent.
                ConditionExpression="attribute_not_exists(pk) OR expiresAt <= :now",
                ExpressionAttributeValues={":now": {"N": str(now)}},
            )
        return run_id
    except ConditionFailed:
        bound = lookup_idempotency(pk, now)
        # The binding expired between our write and this read: claim again.
        return bound if bound is not None else claim_idempotency(pk, run_id, expires_at, now)


def lookup_idempotency(pk: str, now: int) -> str | None:
    with dynamodb_errors("idempotency"):
        item = (
            aws.dynamodb()
            .get_item(TableName=get_settings().idempotency_table, Key={"pk": {"S": pk}}, ConsistentRead=True)
            .get("Item")
        )
    if item is None or int(item["expiresAt"]["N"]) <= now:
        return None
    return item["runId"]["S"]
