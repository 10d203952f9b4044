"""Create runs idempotently and put each on RunQueue exactly once.

The steps are ordered so that a crash anywhere is repaired by the next attempt with the same run
id (the same idempotency key, a redelivered drain signal, a retried batch item):

1. bind the idempotency key to a run id (conditional put; a live binding wins);
2. write the payload to S3 when it is large (the key is a function of the run id);
3. put the run (conditional on the id; an existing run is reused, never duplicated);
4. claim the send (conditional update, so concurrent attempts send once), send the RunQueue
   message, then mark the run enqueued. A run found unmarked and unclaimed is sent again.

The only window for a second message is a crash between the send and the mark (the claim's
lease then lets a later attempt send again); RunQueue is an at-least-once queue whose consumers
key on the run id anyway.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from sluice import aws
from sluice.auth import Environment
from sluice.config import get_settings
from sluice.engine import payloads, store
from sluice.engine.durations import parse_duration, resolve_instant
from sluice.engine.ids import new_run_id
from sluice.engine.models import Run, RunError, TriggerBody, option_fields
from sluice.errors import NotFound, PayloadTooLarge, ServiceUnavailable, Unprocessable

SQS_MAX_DELAY_S = 900  # SQS's DelaySeconds ceiling; workers hold longer delays until delayUntil
# How long a sender's claim on a run's RunQueue message holds before another attempt may take
# over: far longer than one SQS send with boto3's retries (about 5 s at worst).
SEND_CLAIM_LEASE_S = 30.0


@dataclass(frozen=True)
class TriggerResult:
    run: Run
    is_cached: bool


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
        ServiceUnavailable: DynamoDB, S3 or SQS could not be reached.
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
    is_cached = False
    key_expires: datetime | None = None
    if options.idempotencyKey:
        ttl = parse_duration(options.idempotencyKeyTTL or settings.idempotency_default_ttl)
        key_expires = now + ttl
        pk = store.idempotency_pk(env.env_id, task_id, options.idempotencyKey)
        bound = store.claim_idempotency(
            pk, run_id, math.ceil(key_expires.timestamp()), int(_now().timestamp())
        )
        is_cached = bound != run_id
        run_id = bound

    existing = store.get_run_item(run_id)
    if existing is not None:
        if existing.envId != env.env_id:
            raise NotFound(f"Run {run_id} not found")
        _ensure_enqueued(existing)
        return TriggerResult(existing, is_cached=True)

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
    try:
        store.put_run(run)
    except store.ConditionFailed:
        # A concurrent attempt with the same run id won the put: use its run.
        winner = store.get_run_item(run_id)
        if winner is None:  # pragma: no cover - a put that lost to a run now gone
            raise ServiceUnavailable("The run store changed underneath the request; retry") from None
        _ensure_enqueued(winner)
        return TriggerResult(winner, is_cached=True)
    _ensure_enqueued(run)
    return TriggerResult(run, is_cached=is_cached)


def _ensure_enqueued(run: Run) -> None:
    if run.enqueuedAt is not None or run.status == "FAILED":
        return
    delay = 0
    if run.delayUntil is not None:
        delay = min(SQS_MAX_DELAY_S, max(0, math.ceil((run.delayUntil - _now()).total_seconds())))
    message = {"runId": run.id, "taskId": run.taskId, "orgId": run.orgId, "envId": run.envId}
    claimed_at = _now().timestamp()
    if not store.claim_send(run.id, claimed_at, SEND_CLAIM_LEASE_S):
        return  # enqueued already, or another attempt is sending it right now
    try:
        aws.sqs().send_message(
            QueueUrl=get_settings().run_queue_url,
            MessageBody=json.dumps(message),
            # SQS fair queues keep one noisy organization from delaying the others' workers.
            MessageGroupId=run.orgId,
            DelaySeconds=delay,
        )
    except (BotoCoreError, ClientError) as exc:
        store.release_send(run.id, claimed_at)
        raise ServiceUnavailable("The run queue is unavailable; retry shortly") from exc
    enqueued_at = _now()
    store.mark_enqueued(run.id, enqueued_at)
    run.enqueuedAt = enqueued_at


def get_run(env: Environment, run_id: str) -> Run:
    """The run with its payload, loaded from S3 when it was offloaded.

    Raises:
        NotFound: no such run in the caller's environment.
    """
    run = store.get_run_item(run_id)
    if run is None or run.envId != env.env_id:
        raise NotFound(f"Run {run_id} not found")
    if run.payloadRef is not None:
        run.payload = payloads.load(run.payloadRef)
    return run
