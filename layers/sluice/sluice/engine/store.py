"""DynamoDB storage for runs and idempotency records, and the outbox rule for RunQueue.

A run item is ``runId`` (key) and, as top-level attributes that conditions and index keys can
use: ``envId``, ``orgId``, ``taskId``, ``status``, ``dispatchSeq`` (N), ``dispatchPending``
(BOOL), ``delayUntil`` (ISO instant, when delayed); and
``doc``, the run as JSON, so that any payload shape round-trips without DynamoDB's number rules.
The top-level ``status`` wins over the one inside ``doc``, so a status change writes one attribute.

The outbox rule (RunsTable's stream, NEW_AND_OLD_IMAGES, feeds the ``dispatcher`` function):

- A run is sent to RunQueue when, and only when, a write raises its ``dispatchSeq``: an INSERT
  with ``dispatchSeq >= 1``, or a MODIFY whose new ``dispatchSeq`` is greater than the old one.
  Every other change to a run item (status, heartbeats, ``streamKeys``) leaves
  ``dispatchSeq`` alone and therefore never re-sends it.
- A writer that wants a run (re)sent calls ``request_dispatch`` (``ADD dispatchSeq 1``, with a
  new ``delayUntil`` for a backoff) and never writes ``dispatchSeq`` itself. A run created FAILED
  has ``dispatchSeq = 0`` and is never sent.
- ``dispatchPending`` is true from such a write until a worker starts the run (the start's own
  write removes it; the dispatcher writes nothing, so a send costs no write); the event source
  mapping filters on it, so the MODIFY events of a started run (heartbeats, completion, stream
  keys) do not even invoke the dispatcher. The sequence comparison above is the rule; the flag
  only saves invocations.
- ``DelaySeconds`` is computed at send time from ``delayUntil`` (at most SQS's 15 minutes).
- A run due later than that is parked instead: created with ``dispatchSeq = 0`` (and no
  ``dispatchPending``) and the sparse ``DueIndex`` keys ``dueShard``/``dueAt`` (15 minutes before
  ``delayUntil``). The run reaper (``lifecycle.release_due``, every minute) raises ``dispatchSeq``
  once ``dueAt`` passes, and the dispatcher sends it then, with the rest of the delay as
  ``DelaySeconds``: a delay of any length costs one send and one receive, never a receive that is
  too early.

The worker lifecycle (``engine.lifecycle``) adds top-level ``attempt`` (N), ``leaseToken``,
``leaseExpiresAt`` (N, epoch ms), ``leaseShard`` (only while EXECUTING: the sparse ``LeaseIndex``
the run reaper queries), ``ttlShard`` and ``ttlAt`` (a run with a ttl, until it starts: the
sparse ``TtlIndex`` the expiry sweep queries), ``startedAt``, ``completedAt``, ``canceledAt``,
``expiredAt``, ``output`` (JSON) or ``outputRef`` (S3 key) and ``error`` (JSON); like ``status``,
each wins over ``doc``.

The list indexes' attributes (``tenant``, ``tenantTask``, ``createdKey``, ``listDoc``, ...) are
written with the run and never changed: ``engine.listing``.

An idempotency item's key is a hash of (environment, task, key): the raw key may be 2048
characters, more than a partition key may hold once the other parts are added.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from sluice import aws
from sluice.aws import dynamodb_errors
from sluice.config import get_settings
from sluice.engine.durations import parse_duration
from sluice.engine.listing import index_attributes
from sluice.engine.models import Run, RunError
from sluice.errors import ServiceUnavailable

# Concurrent transactions on one idempotency key cancel each other (TransactionConflict) until one
# commits; the retries after that find its binding. A few short jittered retries ride it out.
TRANSACTION_ATTEMPTS = 8
TRANSACTION_BACKOFF_S = 0.01


TTL_SHARD, DUE_SHARD = "ttl", "due"
SQS_MAX_DELAY_S = 900
# The hash keys of each sparse index (LeaseIndex, TtlIndex): a constant, not a setting, since a
# run in a shard the sweeps no longer query would never be swept.
INDEX_SHARDS = 16


def shard_number(run_id: str, shards: int) -> int:
    """A run's shard of a sparse index: spread so that no index partition takes every write."""
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16) % shards


def ttl_shard(run_id: str) -> str:
    """The hash key of the sparse ``TtlIndex`` (sorted by ``ttlAt``): a run with a ttl carries
    it from its create until it starts, expires or is canceled; the run reaper queries each
    shard."""
    return f"{TTL_SHARD}#{shard_number(run_id, INDEX_SHARDS)}"


def due_shard(run_id: str) -> str:
    """The hash key of the sparse ``DueIndex`` (sorted by ``dueAt``) of a parked run."""
    return f"{DUE_SHARD}#{shard_number(run_id, INDEX_SHARDS)}"


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def run_from_item(item: Mapping[str, Any]) -> Run:
    run = Run.model_validate_json(item["doc"]["S"])
    if "status" in item:
        run.status = item["status"]["S"]
    # The worker lifecycle's attributes (sluice.engine.lifecycle writes them, one at a time).
    if "attempt" in item:
        run.attempt = int(item["attempt"]["N"])
    for name in ("startedAt", "completedAt", "canceledAt", "expiredAt"):
        if name in item:
            setattr(run, name, datetime.fromisoformat(item[name]["S"]))
    if "output" in item:
        run.output = json.loads(item["output"]["S"])
    if "outputRef" in item:
        run.outputRef = item["outputRef"]["S"]
    if "error" in item:
        run.error = RunError.model_validate_json(item["error"]["S"])
    if "streamKeys" in item:
        run.streamKeys = sorted(item["streamKeys"]["SS"])
    return run


def run_item(run: Run) -> dict[str, Any]:
    """The item of a new run; see the module docstring for the attributes."""
    send = run.status not in ("FAILED", "CANCELED", "EXPIRED")  # a run created final is never sent
    ceiling = datetime.now(UTC) + timedelta(seconds=SQS_MAX_DELAY_S)
    parked = send and run.delayUntil is not None and run.delayUntil > ceiling
    item: dict[str, Any] = {
        "runId": {"S": run.id},
        "envId": {"S": run.envId},
        "orgId": {"S": run.orgId},
        "taskId": {"S": run.taskId},
        "status": {"S": run.status},
        "dispatchSeq": {"N": "1" if send and not parked else "0"},
        "doc": {"S": run.model_dump_json(exclude={"buffered", "streamKeys"})},
        **index_attributes(run),
    }
    if send and not parked:
        item["dispatchPending"] = {"BOOL": True}
    if parked and run.delayUntil is not None:
        item["dueShard"] = {"S": due_shard(run.id)}
        item["dueAt"] = {"S": _instant(run.delayUntil - timedelta(seconds=SQS_MAX_DELAY_S))}
    if run.delayUntil is not None:
        # In UTC: the lifecycle's start compares it with the time as strings, inside its condition.
        item["delayUntil"] = {"S": run.delayUntil.astimezone(UTC).isoformat()}
    if run.ttl is not None and run.status in ("QUEUED", "DELAYED"):
        ttl_at = run.createdAt + parse_duration(run.ttl)
        item["ttlShard"] = {"S": ttl_shard(run.id)}
        item["ttlAt"] = {"S": _instant(ttl_at)}
    return item


@dataclass(frozen=True)
class Created:
    """What one create call found: ``run`` is the stored run (ours or the one that was there);
    ``bound_run_id`` is set when the idempotency key named another run."""

    run: Run | None
    created: bool
    bound_run_id: str | None = None


def _put_run(item: dict[str, Any]) -> Created:
    try:
        aws.dynamodb().put_item(
            TableName=get_settings().runs_table,
            Item=item,
            ConditionExpression="attribute_not_exists(runId)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        old: Mapping[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
        if old is None:
            raise
        return Created(run_from_item(old), created=False)
    return Created(None, created=True)


def _put_run_with_key(item: dict[str, Any], binding: dict[str, Any], now: int) -> Created | None:
    """One transaction: bind the key and insert the run. None after a TransactionConflict."""
    settings = get_settings()
    try:
        aws.dynamodb().transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": settings.idempotency_table,
                        "Item": binding,
                        # DynamoDB deletes expired items lazily (up to days later), so an expired
                        # record still present must count as absent.
                        "ConditionExpression": "attribute_not_exists(pk) OR expiresAt <= :now",
                        "ExpressionAttributeValues": {":now": {"N": str(now)}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "Put": {
                        "TableName": settings.runs_table,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(runId)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ]
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
            raise
        reasons = exc.response.get("CancellationReasons") or []  # type: ignore[typeddict-item]
        if len(reasons) == 2:
            key_reason, run_reason = reasons
            if run_reason.get("Code") == "ConditionalCheckFailed" and "Item" in run_reason:
                # The run exists (a redelivery of this very trigger): it is the answer either way.
                return Created(run_from_item(run_reason["Item"]), created=False)  # type: ignore[arg-type]
            if key_reason.get("Code") == "ConditionalCheckFailed" and "Item" in key_reason:
                bound = key_reason["Item"]["runId"]["S"]  # type: ignore[typeddict-item]
                return Created(None, created=False, bound_run_id=bound)
        return None  # a TransactionConflict: another trigger with the key is committing
    return Created(None, created=True)


def create_run(run: Run, key: tuple[str, int] | None = None, *, now: int = 0) -> Created:
    """Insert ``run`` with one write; with ``key`` = (idempotency pk, expiry), bind it in the same
    transaction. Conflicts are answered from the condition failure's returned item, not a read.

    Raises:
        ServiceUnavailable: DynamoDB could not be reached, or the key stayed contended.
    """
    item = run_item(run)
    with dynamodb_errors("run"):
        if key is None:
            return _put_run(item)
        pk, expires_at = key
        binding = {"pk": {"S": pk}, "runId": {"S": run.id}, "expiresAt": {"N": str(expires_at)}}
        for attempt in range(TRANSACTION_ATTEMPTS):
            created = _put_run_with_key(item, binding, now)
            if created is not None:
                return created
            time.sleep(random.uniform(0, TRANSACTION_BACKOFF_S * (2**attempt)))
    raise ServiceUnavailable("The idempotency key is contended; retry shortly")


def get_run_item(run_id: str) -> Run | None:
    if not aws.fits_partition_key(run_id):
        return None
    with dynamodb_errors("run"):
        item = (
            aws.dynamodb()
            .get_item(TableName=get_settings().runs_table, Key={"runId": {"S": run_id}}, ConsistentRead=True)
            .get("Item")
        )
    return run_from_item(item) if item else None


def request_dispatch(run_id: str, delay_until: datetime | None) -> None:
    """Ask the dispatcher to (re)send the run to RunQueue (see the outbox rule).

    Raises:
        ConditionFailed: no such run.
    """
    names = {"#d": "delayUntil"}
    values: dict[str, Any] = {":one": {"N": "1"}, ":yes": {"BOOL": True}}
    update = "ADD dispatchSeq :one SET dispatchPending = :yes"
    if delay_until is None:
        update += " REMOVE #d"
    else:
        update += ", #d = :d"
        values[":d"] = {"S": delay_until.isoformat()}
    with dynamodb_errors("run"):
        aws.dynamodb().update_item(
            TableName=get_settings().runs_table,
            Key={"runId": {"S": run_id}},
            UpdateExpression=update,
            ConditionExpression="attribute_exists(runId)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )


def idempotency_pk(tenant: str, task_id: str, key: str) -> str:
    """The binding of an idempotency key, per tenant (``sluice.auth.tenant_key``) and task."""
    return hashlib.sha256(json.dumps([tenant, task_id, key]).encode("utf-8")).hexdigest()


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
