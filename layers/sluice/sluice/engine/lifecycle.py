"""A run's life after RunQueue: a worker starts it with a lease, heartbeats, completes or fails it;
the run reaper treats a lease that lapsed as a crashed attempt.

    QUEUED | DELAYED --start--> EXECUTING --complete--> COMPLETED
                                    |--fail, or lease lapsed--> QUEUED (retry, re-sent) | FAILED
    QUEUED | DELAYED | EXECUTING --cancel--> CANCELED
    QUEUED | DELAYED (never started) --ttl passed--> EXPIRED

Every transition is one conditional ``UpdateItem`` on the run item, so two workers (or a worker
and the reaper) can never both win. A lost condition is explained from the item the failure
returns (``ALL_OLD``), not from a second read. Ending an attempt (fail, reaper) first reads the
run for its attempt and ``maxAttempts`` (the retry's backoff and the retry-or-FAILED decision
need both), and its write is guarded by that attempt's lease token: nothing read can have changed
unnoticed.

A retry is re-sent to RunQueue by the same write: it raises ``dispatchSeq`` and sets
``dispatchPending`` and ``delayUntil`` (the backoff) exactly as ``store.request_dispatch`` does,
so the outbox rule of ``engine.store`` sends it, and a run is never left retrying but unsent.

While a run is EXECUTING its item carries ``leaseShard``: the hash key of the sparse
``LeaseIndex`` (sorted by ``leaseExpiresAt``) that the reaper queries. Every transition out of
EXECUTING removes it, so the index holds only runs that may still need reaping.

A run whose queue has a ``concurrencyLimit`` takes a slot of its queue's counter in its start's
write (one ``TransactWriteItems``; ``engine.queues``), and every write that moves it out of
EXECUTING gives it back in the same transaction (``_leave_executing``), the reaper's included.

A run that reaches a final status is passed to ``on_final``, the one place that tells the rest
of Sluice (its streams end then).
"""

from __future__ import annotations

import contextlib
import random
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sluice import aws, observability
from sluice.auth import Environment, owns
from sluice.config import RUN_ERROR_CODE_MAX_CHARS, RUN_ERROR_MESSAGE_MAX_CHARS, get_settings
from sluice.engine import payloads, queues, store
from sluice.engine.models import Run, RunError
from sluice.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable, issues_from_pydantic

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef, UpdateTypeDef

logger = Logger(service="sluice", child=True)

QUEUED, DELAYED, EXECUTING, COMPLETED, FAILED = "QUEUED", "DELAYED", "EXECUTING", "COMPLETED", "FAILED"
CANCELED, EXPIRED = "CANCELED", "EXPIRED"
FINAL_STATUSES = frozenset({COMPLETED, FAILED, CANCELED, EXPIRED})
TTL_INDEX, DUE_INDEX = "TtlIndex", "DueIndex"
LEASE_INDEX = "LeaseIndex"
# What a start refused by its queue's limit tells the worker to wait: a slot frees when a run of
# the queue ends, which nothing announces, so the worker polls.
CONCURRENCY_RETRY_AFTER_S = 5
# Heartbeats rewrite the index entry every third of a lease; spreading executing runs over a few
# hash keys keeps that off a single index partition. The reaper queries each. A constant, not a
# setting: a run in a shard the reaper no longer queries would never be reaped.
LEASE_SHARDS = store.INDEX_SHARDS
WORKER_LOST = "WORKER_LOST"

# What a listener returns is ignored (fence_run_streams answers its fence's count, for instance).
FinalListener = Callable[[Run], object]
# Called with each run that reached a final status (COMPLETED or FAILED) through this module.
final_listeners: list[FinalListener] = []
# Called with each run whose attempt ended in a retry (a fail, or a lapsed lease): the attempt's
# worker may still be running, and its stream writes are fenced off there.
retry_listeners: list[FinalListener] = []

# DynamoDB reserves words such as STATUS and OUTPUT: every attribute goes through a name.
_NAMES = {
    f"#{name}": name
    for name in (
        "orgId", "envId", "status", "attempt", "leaseToken", "leaseExpiresAt", "leaseShard", "startedAt",
        "completedAt", "output", "outputRef", "error", "delayUntil", "dispatchSeq", "dispatchPending",
        "orgId", "canceledAt", "ttlShard", "ttlAt", "expiredAt", "dueShard", "dueAt", "queueSlot",
    )
}  # fmt: skip
_NAME_REF = re.compile(r"#\w+")
_OWNED = "#orgId = :org AND #envId = :env AND #status = :executing AND #leaseToken = :token"


def on_final(run: Run) -> None:
    """Tell every listener that ``run`` reached a final status. A listener that fails is logged
    and does not undo the transition, which is already committed."""
    _tell(final_listeners, run)


def _tell(listeners: list[FinalListener], run: Run) -> None:
    for listener in list(listeners):
        try:
            listener(run)
        except Exception:
            logger.exception("lifecycle.listener_failed", extra={"runId": run.id})


# --- request bodies ------------------------------------------------------------------------------
# Tokens go into S3 keys (an offloaded output), so they are restricted to URL-safe characters.
LeaseToken = Annotated[str, Field(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


class StartBody(BaseModel):
    """``leaseToken``: the worker's own token, so that a retried start (same token) gets its lease
    back instead of a 409. Minted by the server when absent."""

    model_config = ConfigDict(extra="forbid")
    leaseToken: LeaseToken | None = None


class HeartbeatBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    leaseToken: LeaseToken


class CompleteBody(HeartbeatBody):
    output: Any = None


class FailError(BaseModel):
    code: Annotated[str, Field(min_length=1, max_length=RUN_ERROR_CODE_MAX_CHARS)] = "TASK_ERROR"
    message: Annotated[str, Field(max_length=RUN_ERROR_MESSAGE_MAX_CHARS)] = ""


class FailBody(HeartbeatBody):
    error: FailError
    # False: the failure is final whatever attempts are left (the task said so).
    retry: bool = True

    @field_validator("error", mode="before")
    @classmethod
    def _message_only(cls, value: Any) -> Any:
        return {"message": value} if isinstance(value, str) else value


Body = TypeVar("Body", bound=BaseModel)


def parse_body(model: type[Body], raw: Any) -> Body:
    """Validate a decoded request body.

    Raises:
        Unprocessable: not an object, or an invalid field (with the issues).
    """
    if not isinstance(raw, dict):
        raise Unprocessable("The request body must be a JSON object", code="invalid_body")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise Unprocessable("Invalid request", issues=issues_from_pydantic(exc.errors())) from exc


# --- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lease:
    run: Run
    token: str
    expires_at: datetime

    def to_api(self) -> dict[str, Any]:
        return {
            "attempt": self.run.attempt,
            "leaseToken": self.token,
            "leaseExpiresAt": self.expires_at.isoformat(),
            "run": self.run.to_api(),
        }


@dataclass(frozen=True)
class Ended:
    """Where an attempt left the run: COMPLETED, FAILED, or QUEUED for a retry at ``retry_at``."""

    run: Run
    retry_at: datetime | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.run.id, "status": self.run.status, "attempt": self.run.attempt}
        if self.retry_at is not None:
            body["retryAt"] = self.retry_at.isoformat()
        return body


# --- writes --------------------------------------------------------------------------------------
class _Lost(Exception):
    """A transition's condition failed; ``old`` is the item as it was (None: no such run)."""

    def __init__(self, old: Mapping[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.old = old


def _now() -> datetime:
    return datetime.now(UTC)


def _ms(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


def _update(run_id: str, update: str, condition: str, values: dict[str, Any]) -> Mapping[str, Any]:
    """One conditional UpdateItem; returns the new item.

    Raises:
        _Lost: the condition failed.
        ServiceUnavailable: DynamoDB could not be reached.
    """
    if not aws.fits_partition_key(run_id):
        raise _Lost(None)
    used = {k: _NAMES[k] for k in set(_NAME_REF.findall(update + " " + condition))}
    try:
        with aws.dynamodb_errors("run"):
            return aws.dynamodb().update_item(
                TableName=get_settings().runs_table,
                Key={"runId": {"S": run_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=used,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )["Attributes"]
    except aws.ConditionFailed as exc:
        cause = exc.__cause__
        old: Mapping[str, Any] | None = (
            cause.response.get("Item") if isinstance(cause, ClientError) else None  # type: ignore[assignment]
        )
        raise _Lost(old) from None


# Concurrent transactions on one counter item cancel each other (TransactionConflict); each is
# tried again a few times before the caller gets a 503 to retry.
_CONTENDED_ATTEMPTS = 5


class _Limited(Exception):
    """A start's slot could not be taken: its queue (or concurrency key) is at its limit."""


def _transact(
    run_id: str, update: str, condition: str, values: dict[str, Any], counters: list[TransactWriteItemTypeDef]
) -> Mapping[str, Any]:
    """``_update`` and the queue counter updates ``counters`` in one TransactWriteItems: all or
    none. Returns the run's new item (read back: a transaction returns none).

    Raises:
        _Lost: the run's condition failed.
        _Limited: a counter's condition failed (the run is unchanged).
        ServiceUnavailable: DynamoDB could not be reached.
    """
    if not aws.fits_partition_key(run_id):
        raise _Lost(None)
    used = {k: _NAMES[k] for k in set(_NAME_REF.findall(update + " " + condition))}
    run_update: UpdateTypeDef = {
        "TableName": get_settings().runs_table,
        "Key": {"runId": {"S": run_id}},
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": used,
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    for attempt in range(_CONTENDED_ATTEMPTS):
        try:
            with aws.dynamodb_errors("run"):
                aws.dynamodb().transact_write_items(TransactItems=[{"Update": run_update}, *counters])
            break
        except ClientError as exc:
            if aws.error_code(exc) != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons", [])
            codes = [reason.get("Code") for reason in reasons]
            if codes and codes[0] == "ConditionalCheckFailed":
                raise _Lost(reasons[0].get("Item") or _read(run_id)) from None
            if "ConditionalCheckFailed" in codes:
                raise _Limited() from None
            if "TransactionConflict" not in codes:
                raise
            # Another start or end of the queue was writing its counter: nothing was written.
            time.sleep(random.uniform(0, 0.02 * 2**attempt))
    else:
        raise ServiceUnavailable("The queue's counter is busy; retry shortly")
    item = _read(run_id)
    if item is None:  # pragma: no cover - the transaction just wrote it
        raise _Lost(None)
    return item


def _leave_executing(
    run_id: str, update: str, condition: str, values: dict[str, Any], item: Mapping[str, Any] | None = None
) -> Mapping[str, Any]:
    """A write that may move the run out of EXECUTING (``update`` removes ``leaseShard``): when
    the run holds a queue slot, the same transaction gives it back. ``item``: the run as the
    caller read it, if it did; else the plain write is tried first, and its lost condition
    shows whether the run holds a slot (a run without one costs no more than before).

    Raises:
        _Lost: ``condition`` failed; ``old`` is the run as it is.
    """
    for _ in range(3):  # the run took or gave back its slot between two tries: at most twice
        if item is None or queues.SLOT not in item:
            try:
                return _update(run_id, update, condition + " AND attribute_not_exists(#queueSlot)", values)
            except _Lost as lost:
                if lost.old is None or queues.SLOT not in lost.old:
                    raise
                item = lost.old
        try:
            return _transact(
                run_id,
                update.replace("REMOVE #leaseShard", "REMOVE #queueSlot, #leaseShard"),
                condition + " AND attribute_exists(#queueSlot)",
                values,
                queues.give_back(store.run_from_item(item)),
            )
        except _Lost as lost:
            if lost.old is None or queues.SLOT in lost.old:
                raise
            item = lost.old
    raise _Lost(item)


def _s(item: Mapping[str, Any] | None, name: str) -> str | None:
    value = (item or {}).get(name, {})
    return value.get("S") if isinstance(value, Mapping) else None


def _tenant(org_id: str, env_id: str) -> dict[str, Any]:
    """The values of the ownership half of a condition (``#orgId = :org AND #envId = :env``)."""
    return {":org": {"S": org_id}, ":env": {"S": env_id}}


def _owned(env: Environment, item: Mapping[str, Any] | None) -> bool:
    return item is not None and owns(env, _s(item, "orgId"), _s(item, "envId"))


def _conflict(env: Environment, run_id: str, old: Mapping[str, Any] | None) -> Exception:
    """What a lost heartbeat, complete or fail tells its worker."""
    if not _owned(env, old):
        return NotFound(f"Run {run_id} not found")
    status = _s(old, "status")
    if status == CANCELED:
        # Checked before the final statuses: the worker must learn why, to stop its handler.
        return Conflict(f"Run {run_id} was canceled: stop the attempt", code="run_canceled")
    if status in FINAL_STATUSES:
        return Conflict(f"Run {run_id} is already {status}", code="run_finished")
    return Conflict(
        f"The lease token is not the current lease of run {run_id} (its status is {status}): "
        "the lease lapsed and the run was retried or started by another worker",
        code="stale_lease",
    )


def lease_shard(run_id: str) -> str:
    return f"lease#{store.shard_number(run_id, LEASE_SHARDS)}"


def start(env: Environment, run_id: str, body: StartBody) -> Lease:
    """QUEUED | DELAYED (and due) -> EXECUTING, as attempt + 1, with a lease.

    Raises:
        NotFound: no such run in the caller's environment.
        Conflict: ``run_already_started`` (another worker's attempt executes), ``run_finished``,
            ``run_not_due`` (delayed until later; ``Retry-After`` says when).
        ServiceUnavailable: DynamoDB or S3 could not be reached.
    """
    now = _now()
    expires = now + timedelta(seconds=get_settings().run_lease_s)
    token = body.leaseToken or secrets.token_urlsafe(24)
    values = {
        **_tenant(env.org_id, env.env_id),
        ":queued": {"S": QUEUED},
        ":delayed": {"S": DELAYED},
        ":executing": {"S": EXECUTING},
        ":token": {"S": token},
        ":exp": {"N": _ms(expires)},
        ":shard": {"S": lease_shard(run_id)},
        ":now": {"S": now.isoformat()},
        ":one": {"N": "1"},
    }
    update = (
        "SET #status = :executing, #leaseToken = :token, #leaseExpiresAt = :exp, #leaseShard = :shard,"
        " #startedAt = if_not_exists(#startedAt, :now) ADD #attempt :one"
        # The run reached a worker: the outbox's flag goes in this write (engine.store); a
        # started run's ttl no longer applies.
        " REMOVE #dispatchPending, #ttlShard"
    )
    condition = (
        "#orgId = :org AND #envId = :env AND #status IN (:queued, :delayed)"
        " AND (attribute_not_exists(#delayUntil) OR #delayUntil <= :now)"
        # A run never started whose ttl passed expires instead (the ttl holds until a start).
        " AND (attribute_not_exists(#ttlShard) OR #ttlAt > :now)"
    )
    try:
        slot = _slot_to_take(env, run_id)
        if slot is None:
            item = _update(run_id, update, condition, values)
        elif slot[0].limit == 0:
            raise _Limited()  # a queue paused (limit 0): its counter item may not exist yet
        else:
            # The slot is taken by the same transaction, and marked on the run for its end.
            values[":yes"] = {"BOOL": True}
            item = _transact(
                run_id, update.replace(" ADD ", ", #queueSlot = :yes ADD "), condition, values, slot[1]
            )
    except _Limited:
        _redispatch_later(env, run_id, now + timedelta(seconds=CONCURRENCY_RETRY_AFTER_S))
        raise Conflict(
            f"Run {run_id}'s queue is at its concurrency limit: it stays queued",
            code="concurrency_limited",
            headers={"Retry-After": str(CONCURRENCY_RETRY_AFTER_S)},
        ) from None
    except _Lost as lost:
        old = lost.old
        if _s(old, "status") == EXECUTING and _s(old, "leaseToken") == token and _owned(env, old):
            # The same worker retrying a start whose answer it never saw: its lease, extended.
            lease = heartbeat(env, run_id, token)
            return Lease(payloads.load_offloaded(lease.run), token, lease.expires_at)
        if _ttl_passed(old, now):
            _expire(run_id, now)
            message = f"Run {run_id} expired: its ttl passed before it started"
            raise Conflict(message, code="run_expired") from None
        raise _start_conflict(env, run_id, old, now) from None
    run = store.run_from_item(item)
    observability.run_transition("RunStarted", run_id, run.orgId, run.envId, attempt=run.attempt)
    return Lease(payloads.load_offloaded(run), token, expires)


def _redispatch_later(env: Environment, run_id: str, at: datetime) -> None:
    """Have the outbox send the refused run again at ``at`` (one conditional write), so its
    worker may drop the message it holds: a run refused again and again is re-sent each time,
    never received until RunQueue's ``maxReceiveCount`` moves it to the dead-letter queue. A run
    that left QUEUED meanwhile is not re-sent."""
    values = {**_tenant(env.org_id, env.env_id), ":queued": {"S": QUEUED}, ":at": {"S": at.isoformat()}}
    values.update({":one": {"N": "1"}, ":yes": {"BOOL": True}})
    with contextlib.suppress(_Lost):
        _update(
            run_id,
            "SET #dispatchPending = :yes, #delayUntil = :at ADD #dispatchSeq :one",
            "#orgId = :org AND #envId = :env AND #status = :queued",
            values,
        )


def _slot_to_take(env: Environment, run_id: str) -> tuple[queues.Slot, list[TransactWriteItemTypeDef]] | None:
    """The queue slot a start of the run takes, with its transaction items; None when the run
    has no limited queue, or is not the caller's to start (the start's own write says why)."""
    item = _read(run_id)
    if item is None or not _owned(env, item) or "doc" not in item:
        return None
    run = store.run_from_item(item)
    slot = queues.slot_for(run)
    return None if slot is None else (slot, slot.take(run))


def _start_conflict(env: Environment, run_id: str, old: Mapping[str, Any] | None, now: datetime) -> Exception:
    if not _owned(env, old):
        return NotFound(f"Run {run_id} not found")
    status = _s(old, "status")
    if status == EXECUTING:
        return Conflict(f"Run {run_id} is already executing under another lease", code="run_already_started")
    if status in FINAL_STATUSES:
        return Conflict(f"Run {run_id} is already {status}", code="run_finished")
    due = _s(old, "delayUntil")
    if status in (QUEUED, DELAYED) and due is not None:
        wait = max(1, int((datetime.fromisoformat(due) - now).total_seconds() + 0.999))
        return Conflict(
            f"Run {run_id} is delayed until {due}", code="run_not_due", headers={"Retry-After": str(wait)}
        )
    return Conflict(f"Run {run_id} cannot be started from status {status}", code="run_not_startable")


def heartbeat(env: Environment, run_id: str, token: str) -> Lease:
    """Extend the lease of the attempt ``token`` holds by SLUICE_RUN_LEASE_S from now.

    Raises:
        NotFound: no such run in the caller's environment.
        Conflict: ``stale_lease`` or ``run_finished``; nothing changed.
    """
    expires = _now() + timedelta(seconds=get_settings().run_lease_s)
    try:
        item = _update(
            run_id,
            "SET #leaseExpiresAt = :exp",
            _OWNED,
            {
                **_tenant(env.org_id, env.env_id),
                ":executing": {"S": EXECUTING},
                ":token": {"S": token},
                ":exp": {"N": _ms(expires)},
            },
        )
    except _Lost as lost:
        raise _conflict(env, run_id, lost.old) from None
    return Lease(store.run_from_item(item), token, expires)


def complete(env: Environment, run_id: str, body: CompleteBody) -> Ended:
    """EXECUTING under ``body.leaseToken`` -> COMPLETED with the output (to S3 when large).

    A repeated complete of the same attempt with the same output answers as the first did; with
    another output it lost (one complete wins): ``run_finished``.

    Raises:
        PayloadTooLarge: the output is over SLUICE_RUN_MAX_OUTPUT_BYTES.
        NotFound: no such run in the caller's environment.
        Conflict: ``stale_lease`` or ``run_finished`` (by another attempt); nothing changed.
        ServiceUnavailable: DynamoDB or S3 could not be reached.
    """
    settings = get_settings()
    encoded = payloads.encode_within(
        body.output, settings.run_max_output_bytes, what="The output", code="output_too_large"
    )
    values: dict[str, Any] = {
        **_tenant(env.org_id, env.env_id),
        ":executing": {"S": EXECUTING},
        ":token": {"S": body.leaseToken},
        ":completed": {"S": COMPLETED},
        ":now": {"S": _now().isoformat()},
    }
    if len(encoded) > settings.run_output_offload_bytes:
        # Keyed by lease and content: no other complete overwrites the winner's output.
        key = payloads.output_key(env.tenant, run_id, body.leaseToken, encoded)
        payloads.store(key, encoded)
        output_field, values[":out"] = "outputRef", {"S": key}
    else:
        output_field, values[":out"] = "output", {"S": encoded.decode("utf-8")}
    try:
        item = _leave_executing(
            run_id,
            f"SET #status = :completed, #completedAt = :now, #{output_field} = :out"
            " REMOVE #leaseShard, #error",
            _OWNED,
            values,
        )
    except _Lost as lost:
        if (
            _owned(env, lost.old)
            and _s(lost.old, "status") == COMPLETED
            and _s(lost.old, "leaseToken") == body.leaseToken
            and _s(lost.old, output_field) == values[":out"]["S"]
        ):
            return Ended(store.run_from_item(lost.old or {}))
        raise _conflict(env, run_id, lost.old) from None
    run = store.run_from_item(item)
    observability.run_transition("RunCompleted", run_id, run.orgId, run.envId, attempt=run.attempt)
    on_final(run)
    return Ended(run)


def fail(env: Environment, run_id: str, body: FailBody) -> Ended:
    """End the attempt ``body.leaseToken`` holds with an error: a retry (re-sent to RunQueue after
    a backoff) while attempts remain and ``retry`` allows it, else FAILED.

    Raises:
        NotFound: no such run in the caller's environment.
        Conflict: ``stale_lease`` or ``run_finished``; nothing changed.
        ServiceUnavailable: DynamoDB could not be reached.
    """
    item = _read(run_id)
    if (
        item is None
        or not _owned(env, item)
        or _s(item, "status") != EXECUTING
        or _s(item, "leaseToken") != body.leaseToken
    ):
        raise _conflict(env, run_id, item)
    error = RunError(code=body.error.code, message=body.error.message)
    try:
        return _end_attempt(item, error, retry=body.retry)
    except _Lost as lost:
        raise _conflict(env, run_id, lost.old) from None


def _read(run_id: str) -> Mapping[str, Any] | None:
    if not aws.fits_partition_key(run_id):
        return None
    with aws.dynamodb_errors("run"):
        item: Mapping[str, Any] | None = (
            aws.dynamodb()
            .get_item(TableName=get_settings().runs_table, Key={"runId": {"S": run_id}}, ConsistentRead=True)
            .get("Item")
        )
    return item


def retry_delay(attempt: int) -> timedelta:
    """The backoff before attempt ``attempt + 1``: min x 2^(attempt-1), capped, times 1-2."""
    settings = get_settings()
    base = settings.run_retry_min_delay_ms * 2 ** max(0, attempt - 1) * (1 + random.random())
    return timedelta(milliseconds=min(settings.run_retry_max_delay_ms, base))


def _end_attempt(
    item: Mapping[str, Any], error: RunError, *, retry: bool, lapsed_before: datetime | None = None
) -> Ended:
    """One guarded write that ends the attempt ``item`` shows executing: a retry or FAILED.

    ``lapsed_before``: the reaper's guard, the lease must still have lapsed at that instant (a
    heartbeat that came in since wins).

    Raises:
        _Lost: the attempt is no longer the one ``item`` showed (or its lease was extended).
    """
    run = store.run_from_item(item)
    now = _now()
    max_attempts = run.maxAttempts or get_settings().run_default_max_attempts
    condition = _OWNED + " AND #attempt = :attempt"
    values: dict[str, Any] = {
        **_tenant(run.orgId, run.envId),
        ":executing": {"S": EXECUTING},
        ":token": item["leaseToken"],
        ":attempt": {"N": str(run.attempt)},
        ":error": {"S": error.model_dump_json()},
    }
    if lapsed_before is not None:
        condition += " AND #leaseExpiresAt <= :lapsed"
        values[":lapsed"] = {"N": _ms(lapsed_before)}
    if retry and run.attempt < max_attempts:
        retry_at = now + retry_delay(run.attempt)
        values.update({":queued": {"S": QUEUED}, ":at": {"S": retry_at.isoformat()}})
        values.update({":one": {"N": "1"}, ":yes": {"BOOL": True}})
        new = _leave_executing(
            run.id,
            # The dispatch request of the outbox rule (engine.store), in the same write.
            "SET #status = :queued, #error = :error, #delayUntil = :at, #dispatchPending = :yes"
            " ADD #dispatchSeq :one REMOVE #leaseShard",
            condition,
            values,
            item,
        )
        observability.run_transition(
            "RunRetried", run.id, run.orgId, run.envId, attempt=run.attempt, code=error.code
        )
        retried = store.run_from_item(new)
        _tell(retry_listeners, retried)
        return Ended(retried, retry_at=retry_at)
    values.update({":failed": {"S": FAILED}, ":now": {"S": now.isoformat()}})
    new = _leave_executing(
        run.id,
        "SET #status = :failed, #error = :error, #completedAt = :now REMOVE #leaseShard",
        condition,
        values,
        item,
    )
    ended = store.run_from_item(new)
    observability.run_transition(
        "RunFailed", run.id, run.orgId, run.envId, attempt=run.attempt, code=error.code
    )
    on_final(ended)
    return Ended(ended)


# --- cancel --------------------------------------------------------------------------------------
def cancel(env: Environment, run_id: str) -> Run | None:
    """QUEUED | DELAYED | EXECUTING -> CANCELED with one conditional write; the run as it is now.

    Idempotent: a run that is CANCELED already is answered as it is. The write clears
    ``dispatchPending`` (an outbox send still due finds the run CANCELED, and a worker's start
    then answers ``run_finished``) and ``leaseShard``, so the reaper never retries it; an
    executing attempt learns it at its next heartbeat (``run_canceled``).

    Returns:
        None when the engine has no such run at all (it may still be in the burst buffer).

    Raises:
        NotFound: the run is another tenant's.
        Conflict: ``run_finished``: the run is COMPLETED or FAILED.
        ServiceUnavailable: DynamoDB could not be reached.
    """
    now = _now().isoformat()
    values = {
        **_tenant(env.org_id, env.env_id),
        ":queued": {"S": QUEUED},
        ":delayed": {"S": DELAYED},
        ":executing": {"S": EXECUTING},
        ":canceled": {"S": CANCELED},
        ":now": {"S": now},
    }
    try:
        item = _leave_executing(
            run_id,
            "SET #status = :canceled, #canceledAt = :now, #completedAt = :now"
            " REMOVE #leaseShard, #dispatchPending, #ttlShard, #dueShard",
            "#orgId = :org AND #envId = :env AND #status IN (:queued, :delayed, :executing)",
            values,
        )
    except _Lost as lost:
        old = lost.old
        if old is None:
            return None
        if not _owned(env, old):
            raise NotFound(f"Run {run_id} not found") from None
        status = _s(old, "status")
        if status == CANCELED:
            return store.run_from_item(old)
        raise Conflict(f"Run {run_id} is already {status}", code="run_finished") from None
    run = store.run_from_item(item)
    logger.info("run.canceled", extra={"runId": run_id, "attempt": run.attempt})
    on_final(run)
    return run


# --- ttl -----------------------------------------------------------------------------------------
def _ttl_passed(item: Mapping[str, Any] | None, now: datetime) -> bool:
    ttl_at = _s(item, "ttlAt")
    return (
        item is not None
        and "ttlShard" in item
        and _s(item, "status") in (QUEUED, DELAYED)
        and ttl_at is not None
        and ttl_at <= now.isoformat()
    )


def _expire(run_id: str, now: datetime) -> Run | None:
    """QUEUED | DELAYED, never started, ttl passed -> EXPIRED with one conditional write; the run,
    or None when the condition failed (it started, was canceled, or expired already)."""
    values = {":queued": {"S": QUEUED}, ":delayed": {"S": DELAYED}, ":expired": {"S": EXPIRED}}
    values[":now"] = {"S": now.isoformat()}
    try:
        item = _update(
            run_id,
            "SET #status = :expired, #expiredAt = :now, #completedAt = :now"
            " REMOVE #ttlShard, #dispatchPending, #dueShard",
            "#status IN (:queued, :delayed) AND attribute_exists(#ttlShard) AND #ttlAt <= :now",
            values,
        )
    except _Lost:
        return None
    run = store.run_from_item(item)
    logger.info("run.expired", extra={"runId": run_id})
    on_final(run)
    return run


def expire_due(now: datetime | None = None) -> int:
    """Expire every run whose ttl passed before it started (the run reaper calls this); how many.

    Each write is conditional on the run being still unstarted, so a start that races it wins or
    loses whole: the run is EXECUTING or EXPIRED, never both.
    """
    now = now or _now()
    expired = 0
    limit = get_settings().run_reaper_max_runs
    due = _index_due(
        TTL_INDEX,
        shard="ttlShard",
        due="ttlAt",
        prefix=store.TTL_SHARD,
        now={"S": now.isoformat()},
        limit=limit,
    )
    for run_id in due:
        if _expire(run_id, now) is not None:
            expired += 1
    if expired:
        logger.info("run_reaper.expired", extra={"expired": expired})
    return expired


# --- long delays ---------------------------------------------------------------------------------
def release_due(now: datetime | None = None) -> int:
    """Send every parked run whose ``dueAt`` passed (the run reaper calls this); how many.

    One conditional write each raises ``dispatchSeq`` (the outbox rule of ``engine.store``) and
    leaves ``DueIndex``, so a run is released once however many sweeps overlap, and a run
    canceled or expired meanwhile (which left the index) is never sent.
    """
    now = now or _now()
    released = 0
    limit = get_settings().run_reaper_max_runs
    due = _index_due(
        DUE_INDEX,
        shard="dueShard",
        due="dueAt",
        prefix=store.DUE_SHARD,
        now={"S": now.isoformat()},
        limit=limit,
    )
    values: dict[str, Any] = {":queued": {"S": QUEUED}, ":delayed": {"S": DELAYED}, ":one": {"N": "1"}}
    values[":yes"] = {"BOOL": True}
    for run_id in due:
        try:
            _update(
                run_id,
                "SET #dispatchPending = :yes ADD #dispatchSeq :one REMOVE #dueShard",
                "attribute_exists(#dueShard) AND #status IN (:queued, :delayed)",
                values,
            )
        except _Lost:
            continue
        released += 1
    if released:
        logger.info("run_reaper.released", extra={"released": released})
    return released


# --- the reaper ----------------------------------------------------------------------------------
def lapsed_leases(now: datetime, limit: int) -> Iterator[str]:
    """Ids of EXECUTING runs whose lease lapsed before ``now``, at most ``limit``."""
    now_ms = {"N": _ms(now)}
    return _index_due(
        LEASE_INDEX, shard="leaseShard", due="leaseExpiresAt", prefix="lease", now=now_ms, limit=limit
    )


def _index_due(
    index: str, *, shard: str, due: str, prefix: str, now: Mapping[str, str], limit: int
) -> Iterator[str]:
    """Ids in every shard (``<prefix>#<n>``) of a sparse ``index`` (hash ``shard``, range ``due``)
    due at ``now``, at most ``limit``. Both sparse indexes shard as LeaseIndex does."""
    found = 0
    table = get_settings().runs_table
    for number in range(LEASE_SHARDS):
        kwargs: dict[str, Any] = {
            "TableName": table,
            "IndexName": index,
            "KeyConditionExpression": f"{shard} = :shard AND {due} <= :now",
            "ExpressionAttributeValues": {":shard": {"S": f"{prefix}#{number}"}, ":now": now},
        }
        while True:
            with aws.dynamodb_errors("run"):
                page = aws.dynamodb().query(**kwargs)
            for key in page.get("Items", []):
                yield key["runId"]["S"]
                found += 1
                if found >= limit:
                    return
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def reap(now: datetime | None = None) -> dict[str, int]:
    """Treat every lapsed lease as a crashed attempt: retry it, or FAILED with WORKER_LOST.

    Safe against a worker that heartbeats or completes meanwhile, and against a concurrent
    reaper: each write is guarded by the attempt's token and the lapse, so exactly one wins.
    """
    now = now or _now()
    counts = {"retried": 0, "failed": 0}
    for run_id in lapsed_leases(now, get_settings().run_reaper_max_runs):
        item = _read(run_id)
        if item is None or _s(item, "status") != EXECUTING or "leaseToken" not in item:
            continue
        attempt = int(item.get("attempt", {}).get("N", "0"))
        error = RunError(
            code=WORKER_LOST,
            message=f"The worker of attempt {attempt} stopped heartbeating: its lease lapsed",
        )
        try:
            ended = _end_attempt(item, error, retry=True, lapsed_before=now)
        except _Lost:
            continue  # the worker heartbeated or finished, or another reaper got there first
        counts["retried" if ended.retry_at else "failed"] += 1
        # The attempt's own end (retried or failed) is counted above; this counts the losses.
        observability.count("RunWorkerLost")
    if any(counts.values()):
        logger.info("run_reaper.swept", extra=counts)
    return counts
