"""Create runs idempotently with one DynamoDB write; the dispatcher puts them on RunQueue.

A trigger is one call: a conditional ``PutItem`` of the run, or, with an idempotency key, one
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
from dataclasses import dataclass
from datetime import UTC, datetime

from sluice.auth import Environment
from sluice.aws import ConditionFailed
from sluice.config import get_settings
from sluice.engine import payloads, store
from sluice.engine.durations import parse_duration, resolve_instant
from sluice.engine.ids import new_run_id
from sluice.engine.models import Run, RunError, TriggerBody, option_fields
from sluice.errors import NotFound, PayloadTooLarge, Unprocessable


@dataclass(frozen=True)
class TriggerResult:
    """``failed``: the run is FAILED (known when this call created or found it)."""

    id: str
    is_cached: bool
    failed: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


def trigger(
    env: Environment,
    task_id: str,
    body: TriggerBody,
    *,
    run_id: str | None = None,
    batch: tuple[str, int] | None = None,
    error: RunError | None = None,
    payload_ref: str | None = None,
    created_at: datetime | None = None,
) -> TriggerResult:
    """Create the run for a validated trigger, or return the run its idempotency key names.

    Args:
        env: the caller's environment.
        task_id: the task to run.
        body: the validated trigger body.
        run_id: a run id chosen by the caller (a buffered or batch run); new when omitted.
        batch: (batch id, index) of a batch item.
        error: create the run already FAILED with this error, and do not enqueue it.
        payload_ref: the payload already lives in the payload bucket under this key.
        created_at: when the trigger was accepted (a buffered run keeps its original time).

    Raises:
        PayloadTooLarge: the payload is over SLUICE_MAX_PAYLOAD_BYTES.
        Unprocessable: an option that cannot be applied (an invalid delay).
        NotFound: ``run_id`` names a run of another environment.
        ServiceUnavailable: DynamoDB or S3 could not be reached.
    """
    settings = get_settings()
    now = created_at or _now()
    options = body.options
    encoded = payloads.encode(body.payload) if payload_ref is None else b""
    if len(encoded) > settings.max_payload_bytes:
        raise PayloadTooLarge(
            f"The payload is {len(encoded)} bytes; the limit is {settings.max_payload_bytes}",
            code="payload_too_large",
        )
    try:
        delay_until = resolve_instant(options.delay, now) if options.delay is not None else None
    except ValueError as exc:
        raise Unprocessable(str(exc), code="invalid_delay") from exc

    run_id = run_id or new_run_id()
    key: tuple[str, int] | None = None
    key_expires: datetime | None = None
    if options.idempotencyKey:
        key_expires = now + parse_duration(options.idempotencyKeyTTL or settings.idempotency_default_ttl)
        key = (
            store.idempotency_pk(env.env_id, task_id, options.idempotencyKey),
            math.ceil(key_expires.timestamp()),
        )

    ref = payload_ref
    inline = body.payload
    if ref is None and len(encoded) > settings.payload_offload_bytes:
        ref = payloads.payload_key(env.env_id, run_id)
        payloads.store(ref, encoded)
        inline = None
    run = Run(
        id=run_id,
        taskId=task_id,
        orgId=env.org_id,
        envId=env.env_id,
        status="FAILED" if error else ("DELAYED" if delay_until and delay_until > now else "QUEUED"),
        payload=inline,
        payloadRef=ref,
        createdAt=now,
        idempotencyKeyExpiresAt=key_expires,
        delayUntil=delay_until,
        **option_fields(options),
        batchId=batch[0] if batch else None,
        batchIndex=batch[1] if batch else None,
        error=error,
    )
    created = store.create_run(run, key, now=int(_now().timestamp()))
    if created.created:
        return TriggerResult(run.id, is_cached=False, failed=run.status == "FAILED")
    if created.run is not None:
        if created.run.envId != env.env_id:
            raise NotFound(f"Run {run_id} not found")
        return TriggerResult(created.run.id, is_cached=True, failed=created.run.status == "FAILED")
    assert created.bound_run_id is not None
    return TriggerResult(created.bound_run_id, is_cached=True)


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
    if run is None or run.envId != env.env_id:
        raise NotFound(f"Run {run_id} not found")
    return payloads.load_offloaded(run)
