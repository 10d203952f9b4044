"""The trigger route with burst smoothing, and the run read that also sees buffered runs.

Order: validate (``engine.parse_trigger_body``: what the drainer's create would refuse is refused
now, while the caller is listening) -> (switch off: the engine, no Redis work at all) -> engine
idempotency -> buffer idempotency -> pre-gate claim -> gate -> mollify (accept + drain signal) |
shadow_log | pass_through. A rejected or cached trigger never reaches the gate.

The run id is minted before the gate and used on both paths, so a buffer write that timed out
but landed, followed by the fail-open pass-through, still makes one run: the drainer's create with
the same id finds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from sluice import engine
from sluice.auth import Environment
from sluice.config import Settings, get_settings
from sluice.engine import Run, TriggerBody, parse_duration
from sluice.engine.durations import resolve_instant
from sluice.engine.models import option_fields
from sluice.engine.payloads import encode
from sluice.errors import NotFound, ServiceUnavailable
from sluice.mollifier import idempotency
from sluice.mollifier.buffer import MollifierBuffer, get_buffer
from sluice.mollifier.errors import MalformedEntry
from sluice.mollifier.gate import GateInput, evaluate_gate, org_enrolled, record_decision, waits_on_parent
from sluice.mollifier.models import BufferEntry, Decision, Outcome, Reason, Snapshot
from sluice.mollifier.signals import carry, send_signal
from sluice.mollifier.trip import trip_evaluator
from sluice.redis import UNAVAILABLE_ERRORS

logger = Logger(service="sluice", child=True)
UNREADABLE: tuple[type[Exception], ...] = (*UNAVAILABLE_ERRORS, MalformedEntry)

NOTICE = {
    "code": "mollifier.queued",
    "message": "Trigger accepted into the burst buffer; the run is created shortly. "
    "Consider a batch trigger for fan-outs of 100+.",
    "docs": "https://trigger.dev/docs/triggering#batch-trigger",
}


@dataclass(frozen=True)
class TriggerAnswer:
    id: str
    is_cached: bool
    notice: dict[str, str] | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "isCached": self.is_cached}
        if self.notice is not None:
            body["notice"] = self.notice
        return body


def trigger(env: Environment, task_id: str, raw_body: Any) -> TriggerAnswer:
    """Validate and trigger a task: buffered during a burst, otherwise straight into the engine.

    Raises:
        BadRequest, Unprocessable, PayloadTooLarge: an invalid trigger.
        ClaimTimedOut: a trigger with the same idempotency key held it past the wait.
        ServiceUnavailable: the engine is down on the pass-through path.
    """
    body = engine.parse_trigger_body(raw_body)
    settings = get_settings()
    if not settings.mollifier_enabled:
        return _pass_through(env, task_id, body, run_id=None)
    now = datetime.now(UTC)
    options = body.options
    key = options.idempotencyKey
    if key is not None and idempotency.engine_binding(env.env_id, task_id, key, now) is not None:
        return _pass_through(env, task_id, body, run_id=None)
    buffer = get_buffer()
    key_expires = _key_expires(body, settings, now)
    claim: idempotency.HeldClaim | None = None
    if key is not None and key_expires is not None and not waits_on_parent(options):
        owner = idempotency.buffered_owner(
            buffer, org_id=env.org_id, env_id=env.env_id, task_id=task_id, key=key, now=now
        )
        if owner is not None:
            return TriggerAnswer(owner.runId, is_cached=True)
        if org_enrolled(env.org_flags):
            claimed = idempotency.claim_or_await(
                buffer,
                settings,
                org_id=env.org_id,
                env_id=env.env_id,
                task_id=task_id,
                key=key,
                ttl_s=idempotency.claim_ttl(settings, key_expires, now),
            )
            if isinstance(claimed, str):
                if _run_exists(buffer, env, claimed):
                    return TriggerAnswer(claimed, is_cached=True)
            else:
                claim = claimed
    try:
        answer = _decide_and_trigger(
            buffer, settings=settings, env=env, task_id=task_id, body=body, now=now, key_expires=key_expires
        )
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    if claim is not None:
        claim.publish(answer.id)
    return answer


def _decide_and_trigger(
    buffer: MollifierBuffer,
    *,
    settings: Settings,
    env: Environment,
    task_id: str,
    body: TriggerBody,
    now: datetime,
    key_expires: datetime | None,
) -> TriggerAnswer:
    gate_input = GateInput(env, task_id, body.options, len(encode(body.payload)))
    decision = evaluate_gate(
        gate_input,
        shadow_mode=settings.mollifier_shadow_mode,
        max_entry_bytes=settings.mollifier_max_entry_bytes,
        evaluate_trip=trip_evaluator(buffer, settings),
    )
    run_id = engine.new_run_id()
    if decision.outcome is Outcome.MOLLIFY:
        snapshot = Snapshot(
            taskId=task_id, envType=env.env_type, body=body, idempotencyKeyExpiresAt=key_expires
        )
        try:
            answer = _mollify(buffer, env, snapshot, run_id, now)
        except UNAVAILABLE_ERRORS:
            logger.warning("mollifier.accept_failed", extra={"runId": run_id})
            decision = Decision(Outcome.PASS_THROUGH, Reason.BUFFER_FAILED, decision.enrolled, decision.trip)
        else:
            record_decision(decision, gate_input)
            return answer
    record_decision(decision, gate_input)
    return _pass_through(env, task_id, body, run_id=run_id)


def _mollify(
    buffer: MollifierBuffer, env: Environment, snapshot: Snapshot, run_id: str, now: datetime
) -> TriggerAnswer:
    result = buffer.accept(
        run_id=run_id, org_id=env.org_id, env_id=env.env_id, snapshot=snapshot, created_at=now
    )
    if result.kind == "duplicate_idempotency":
        return TriggerAnswer(result.run_id, is_cached=True)
    if result.kind == "accepted":
        try:
            entry = carry(env.env_id, run_id, snapshot.taskId, now, snapshot.model_dump_json())
            send_signal(run_id, env.org_id, env.env_id, entry=entry)
        except (BotoCoreError, ClientError, ServiceUnavailable):
            # Redis alone is no durable copy: without a signal carrying the entry, create the run
            # now with the same id (the drainer's later create of the entry finds it).
            logger.warning("mollifier.signal_failed", extra={"runId": run_id})
            return _pass_through(env, snapshot.taskId, snapshot.body, run_id=run_id, created_at=now)
    return TriggerAnswer(run_id, is_cached=False, notice=NOTICE)


def _pass_through(
    env: Environment,
    task_id: str,
    body: TriggerBody,
    *,
    run_id: str | None,
    created_at: datetime | None = None,
) -> TriggerAnswer:
    result = engine.trigger(env, task_id, body, run_id=run_id, created_at=created_at)
    return TriggerAnswer(result.id, result.is_cached)


def _key_expires(body: TriggerBody, settings: Settings, now: datetime) -> datetime | None:
    """When the idempotency key expires, computed as the engine will compute it for the same run."""
    if body.options.idempotencyKey is None:
        return None
    return now + parse_duration(body.options.idempotencyKeyTTL or settings.idempotency_default_ttl)


def _run_exists(buffer: MollifierBuffer, env: Environment, run_id: str) -> bool:
    try:
        engine.get_run(env, run_id)
        return True
    except NotFound:
        pass
    try:
        entry = buffer.get_entry(env.org_id, run_id)
    except UNREADABLE:
        return False
    return entry is not None and entry.envId == env.env_id


def read_run(env: Environment, run_id: str) -> dict[str, Any]:
    """``GET /api/v1/runs/{id}``: the engine's run, or the buffered one (``"buffered": true``).

    Raises:
        NotFound: neither the engine nor the buffer has the run in the caller's environment.
        ServiceUnavailable: the engine has no such run and the buffer cannot be read.
    """
    try:
        return engine.get_run(env, run_id).to_api()
    except NotFound:
        if not get_settings().mollifier_enabled:
            raise
    try:
        entry = get_buffer().get_entry(env.org_id, run_id)
    except UNAVAILABLE_ERRORS as exc:
        raise ServiceUnavailable("The burst buffer is unavailable; retry shortly") from exc
    except MalformedEntry:
        logger.exception("mollifier.malformed_entry", extra={"runId": run_id})
        entry = None
    if entry is None or entry.envId != env.env_id:
        raise NotFound(f"Run {run_id} not found")
    return buffered_run(entry).to_api()


def buffered_run(entry: BufferEntry) -> Run:
    """The run as the engine will show it, built from the snapshot: QUEUED, or FAILED when the
    engine could not record it (then possibly because the snapshot does not parse)."""
    try:
        snapshot = entry.parsed_snapshot()
    except MalformedEntry:
        snapshot = Snapshot(taskId=entry.taskId, envType="", body=TriggerBody())
    options = snapshot.body.options
    return Run(
        id=entry.runId,
        taskId=entry.taskId,
        orgId=entry.orgId,
        envId=entry.envId,
        status="FAILED" if entry.status == "FAILED" else "QUEUED",
        payload=snapshot.body.payload,
        createdAt=entry.createdAt,
        idempotencyKeyExpiresAt=snapshot.idempotencyKeyExpiresAt,
        delayUntil=resolve_instant(options.delay, entry.createdAt) if options.delay is not None else None,
        **option_fields(options),
        error=entry.lastError,
        buffered=True,
    )
