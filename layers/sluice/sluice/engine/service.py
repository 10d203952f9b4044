"""Create runs idempotently with one DynamoDB write; the dispatcher puts them on RunQueue.

Every trigger (pass-through, drained, batch item, session run) takes the same two steps:
``prepare`` turns it into the run it makes (the engine's rules: payload limit, delay, idempotency
key expiry, the run record) without writing anything, and ``create`` writes that run. The trigger
use case (``sluice.triggers``) holds the prepared run in between, to hand it to the engine or to
the burst buffer; everyone else calls ``trigger``, the two in one.

A create is one call: a conditional ``PutItem`` of the run, or, with an idempotency key, one
``TransactWriteItems`` that binds the key and inserts the run together. A conflict (the run id
exists: a redelivered drain signal or batch item; the key is bound: a cached trigger) is answered
from the item the failed condition returns, not from a second read. Because the binding and the
run commit together, a trigger that finds the key bound never creates the run itself, and the
trigger that bound it is the only one answered ``isCached: false``.

Nothing is sent to SQS on the request path: RunsTable's stream is the outbox (see
``engine.store`` for the rule), and the ``dispatcher`` function sends each new run to RunQueue.
A run that was accepted is therefore on RunQueue eventually, even when the client never retries.

A large payload goes to S3 first, under a key derived from the run id, so a retry overwrites it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ParamSpec

from sluice import observability
from sluice.auth import Environment, owns, tenant_key
from sluice.aws import ConditionFailed
from sluice.config import get_settings
from sluice.engine import payloads, store
from sluice.engine.durations import parse_duration, resolve_instant
from sluice.engine.ids import new_run_id
from sluice.engine.models import (
    QueueOption,
    Run,
    RunError,
    TriggerBody,
    TriggerOptions,
    check_metadata,
    option_fields,
)
from sluice.errors import NotFound, Unprocessable

P = ParamSpec("P")


@dataclass(frozen=True)
class TriggerResult:
    """``failed``: the run is FAILED (known when this call created or found it)."""

    id: str
    is_cached: bool
    failed: bool = False


@dataclass(frozen=True)
class PreparedRun:
    """A validated trigger as the run it makes, before anything is written: what the trigger use
    case hands to ``create`` (pass-through) or to the burst buffer (mollify).

    ``body`` is the trigger as it applies (a replay whose idempotency key expired has none);
    ``payload`` the payload as stored (empty when it already lives in the bucket under
    ``run.payloadRef``); ``key`` the idempotency binding (record key, expiry in epoch seconds).
    """

    body: TriggerBody
    run: Run
    payload: bytes
    key: tuple[str, int] | None


def _now() -> datetime:
    return datetime.now(UTC)


def prepare(
    env: Environment,
    task_id: str,
    body: TriggerBody,
    *,
    run_id: str | None = None,
    batch: tuple[str, int] | None = None,
    error: RunError | None = None,
    payload_ref: str | None = None,
    created_at: datetime | None = None,
) -> PreparedRun:
    """The run a validated trigger makes, with nothing written yet. A pure function of its
    arguments and the time, so a buffered trigger replayed with its run id and creation time
    prepares the same run it would have been created as.

    Args:
        env: the caller's environment.
        task_id: the task to run.
        body: the validated trigger body.
        run_id: a run id chosen by the caller (a buffered or batch run); new when omitted.
        batch: (batch id, index) of a batch item.
        error: the run is FAILED with this error, and is never enqueued.
        payload_ref: the payload already lives in the payload bucket under this key.
        created_at: when the trigger was accepted (a replayed one keeps its original time); now
            when omitted.

    Raises:
        PayloadTooLarge: the payload is over SLUICE_MAX_PAYLOAD_BYTES (``payload_too_large``), or
            the metadata over SLUICE_MAX_METADATA_BYTES (``metadata_too_large``): checked here, for
            every path to a run, so that nothing accepted can fail to fit its item later.
        Unprocessable: an option that cannot be applied (an invalid delay).
    """
    settings = get_settings()
    now = _now()
    created = created_at or now
    encoded = b""
    if payload_ref is None:
        encoded = payloads.encode_within(
            body.payload, settings.max_payload_bytes, what="The payload", code="payload_too_large"
        )
    check_metadata(body.options)
    delay = body.options.delay
    try:
        delay_until = resolve_instant(delay, created) if delay is not None else None
    except ValueError as exc:
        raise Unprocessable(str(exc), code="invalid_delay") from exc

    key: tuple[str, int] | None = None
    key_expires: datetime | None = None
    if idempotency_key := body.options.idempotencyKey:
        ttl = body.options.idempotencyKeyTTL or settings.idempotency_default_ttl
        key_expires = created + parse_duration(ttl)
        if key_expires < now:
            # A replay whose key expired while it waited: bound now, the key would name this run
            # to the key's newer owner (or its newer owner would keep this run from being made).
            options = body.options.model_copy(update={"idempotencyKey": None, "idempotencyKeyTTL": None})
            body = body.model_copy(update={"options": options})
            key_expires = None
        else:
            pk = store.idempotency_pk(env.tenant, task_id, idempotency_key)
            key = (pk, math.ceil(key_expires.timestamp()))
    status = "FAILED" if error else ("DELAYED" if delay_until and delay_until > created else "QUEUED")
    # A buffered trigger replayed after its ttl passed never reaches the queue: it is made EXPIRED.
    expired = (
        status != "FAILED"
        and body.options.ttl is not None
        and created + parse_duration(body.options.ttl) <= now
    )
    run = Run(
        id=run_id or new_run_id(),
        taskId=task_id,
        orgId=env.org_id,
        envId=env.env_id,
        status=status,
        payload=body.payload,
        payloadRef=payload_ref,
        createdAt=created,
        idempotencyKeyExpiresAt=key_expires,
        delayUntil=delay_until,
        **option_fields(body.options),
        batchId=batch[0] if batch else None,
        batchIndex=batch[1] if batch else None,
        error=error,
    )
    if expired:
        run = run.model_copy(update={"status": "EXPIRED", "expiredAt": now, "completedAt": now})
    return PreparedRun(body=body, run=run, payload=encoded, key=key)


def create(prepared: PreparedRun) -> TriggerResult:
    """Create the prepared run with one write, or return the run its idempotency key names (or
    the run that has its id already). A payload over SLUICE_PAYLOAD_OFFLOAD_BYTES goes to S3
    first, under a key derived from the run id, so a retry overwrites it.

    Raises:
        NotFound: the run id names a run of another environment.
        ServiceUnavailable: DynamoDB or S3 could not be reached.
    """
    run = prepared.run
    if run.payloadRef is None and len(prepared.payload) > get_settings().payload_offload_bytes:
        ref = payloads.payload_key(tenant_key(run.orgId, run.envId), run.id)
        payloads.store(ref, prepared.payload)
        run = run.model_copy(update={"payload": None, "payloadRef": ref})
    created = store.create_run(run, prepared.key, now=int(_now().timestamp()))
    if created.created:
        observability.run_transition(
            "RunTriggered", run.id, run.orgId, run.envId, taskId=run.taskId, status=run.status
        )
        return TriggerResult(run.id, is_cached=False, failed=run.status == "FAILED")
    if created.run is not None:
        if (created.run.orgId, created.run.envId) != (run.orgId, run.envId):
            raise NotFound(f"Run {run.id} not found")
        return TriggerResult(created.run.id, is_cached=True, failed=created.run.status == "FAILED")
    assert created.bound_run_id is not None
    return TriggerResult(created.bound_run_id, is_cached=True)


def _then_create(prepare: Callable[P, PreparedRun]) -> Callable[P, TriggerResult]:
    def trigger(*args: P.args, **kwargs: P.kwargs) -> TriggerResult:
        return create(prepare(*args, **kwargs))

    return trigger


# ``create(prepare(...))``, taking ``prepare``'s arguments: for the callers that have nothing to do
# between the two (batch items, drained entries, session runs). Raises what either raises.
trigger = _then_create(prepare)


def bound_run_id(prepared: PreparedRun) -> str | None:
    """The run the prepared run's idempotency key is bound to while the binding lives; None
    without a key or a live binding.

    Raises:
        ServiceUnavailable: DynamoDB could not be reached.
    """
    if prepared.key is None:
        return None
    return store.lookup_idempotency(prepared.key[0], int(_now().timestamp()))


def replay(env: Environment, run_id: str) -> TriggerResult:
    """A new run of the same task with the run's payload and options (tags, queue,
    concurrencyKey, maxAttempts, metadata, ttl), as the reference platform's replay makes; not its
    idempotency key, delay, batch or parent. Any run may be replayed, finished or not.

    Raises:
        NotFound: no such run in the caller's tenant.
        ServiceUnavailable: DynamoDB or S3 could not be reached.
    """
    run = get_run(env, run_id)
    if run.orgId != env.org_id:
        raise NotFound(f"Run {run_id} not found")
    options = TriggerOptions(
        tags=run.tags or None,
        queue=QueueOption(name=run.queue, concurrencyLimit=run.queueLimit) if run.queue else None,
        concurrencyKey=run.concurrencyKey,
        maxAttempts=run.maxAttempts,
        metadata=run.metadata,
        ttl=run.ttl,
    )
    return trigger(env, run.taskId, TriggerBody(payload=run.payload, options=options))


def request_dispatch(run_id: str, delay_until: datetime | None = None) -> None:
    """Have the dispatcher (re)send the run to RunQueue, at ``delay_until`` when given (the run
    lifecycle's retry with backoff). Other writes to a run never re-send it.

    Raises:
        NotFound: no such run.
        ServiceUnavailable: DynamoDB could not be reached.
    """
    try:
        store.request_dispatch(run_id, delay_until)
    except ConditionFailed:
        raise NotFound(f"Run {run_id} not found") from None


def get_run(env: Environment, run_id: str) -> Run:
    """The run with its payload, loaded from S3 when it was offloaded.

    Raises:
        NotFound: no such run in the caller's environment.
    """
    run = store.get_run_item(run_id)
    if run is None or not owns(env, run.orgId, run.envId):
        raise NotFound(f"Run {run_id} not found")
    return payloads.load_offloaded(run)
