"""The trigger use case's buffer path (``sluice.triggers`` decides to come here only while the
kill switch is on): buffer idempotency, the pre-gate claim, the gate, and mollify or pass through.
Every Redis failure passes through (fail open). A module of its own so that a function whose
kill switch is off never imports the mollifier or redis-py.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from sluice import engine, observability
from sluice.auth import Environment
from sluice.config import Settings, get_settings
from sluice.engine import PreparedRun
from sluice.engine.models import Run
from sluice.errors import NotFound
from sluice.mollifier import idempotency
from sluice.mollifier.buffer import MollifierBuffer, get_buffer
from sluice.mollifier.gate import GateInput, evaluate_gate, org_enrolled, record_decision, waits_on_parent
from sluice.mollifier.intake import NOTICE, buffered_entry, buffered_run, mollify
from sluice.mollifier.models import Decision, Outcome, Reason
from sluice.mollifier.trip import trip_evaluator
from sluice.redis import UNAVAILABLE_ERRORS, unavailable_as_503
from sluice.triggers import TriggerAnswer, pass_through

logger = Logger(service="sluice", child=True)


def trigger(env: Environment, prepared: PreparedRun) -> TriggerAnswer:
    try:
        # A cluster client connects when it is built, so getting the buffer can fail too.
        buffer = get_buffer()
    except UNAVAILABLE_ERRORS:
        logger.warning("mollifier.buffer_unreachable", extra={"runId": prepared.run.id})
        return pass_through(prepared)
    return _smoothed(buffer, get_settings(), env, prepared)


def _smoothed(
    buffer: MollifierBuffer, settings: Settings, env: Environment, prepared: PreparedRun
) -> TriggerAnswer:
    """The mollifier's path: buffer idempotency and the pre-gate claim, then the gate."""
    run, options = prepared.run, prepared.body.options
    key, key_expires = options.idempotencyKey, run.idempotencyKeyExpiresAt
    claim: idempotency.HeldClaim | None = None
    if key is not None and key_expires is not None and not waits_on_parent(options):
        owner = idempotency.buffered_owner(
            buffer, org_id=env.org_id, env_id=env.env_id, task_id=run.taskId, key=key, now=run.createdAt
        )
        if owner is not None:
            return TriggerAnswer(owner.runId, is_cached=True)
        if org_enrolled(env.org_flags):
            claimed = idempotency.claim_or_await(
                buffer,
                settings,
                org_id=env.org_id,
                env_id=env.env_id,
                task_id=run.taskId,
                key=key,
                ttl_s=idempotency.claim_ttl(settings, key_expires, run.createdAt),
            )
            if isinstance(claimed, str):
                if _run_exists(buffer, env, claimed):
                    return TriggerAnswer(claimed, is_cached=True)
            else:
                claim = claimed
    try:
        answer = _decide_and_trigger(buffer, settings, env, prepared)
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    if claim is not None:
        claim.publish(answer.id)
    return answer


def _decide_and_trigger(
    buffer: MollifierBuffer, settings: Settings, env: Environment, prepared: PreparedRun
) -> TriggerAnswer:
    gate_input = GateInput(env, prepared.run.taskId, prepared.body.options, len(prepared.payload))
    decision = evaluate_gate(
        gate_input,
        shadow_mode=settings.mollifier_shadow_mode,
        max_entry_bytes=settings.mollifier_max_entry_bytes,
        evaluate_trip=trip_evaluator(buffer, settings),
    )
    if decision.outcome is Outcome.MOLLIFY:
        try:
            accepted = mollify(buffer, env, prepared)
        except UNAVAILABLE_ERRORS:
            logger.warning("mollifier.accept_failed", extra={"runId": prepared.run.id})
            decision = Decision(Outcome.PASS_THROUGH, Reason.BUFFER_FAILED, decision.enrolled, decision.trip)
        else:
            record_decision(decision, gate_input)
            if accepted is None:  # no signal carried it (withdrawn): create the run now
                return pass_through(prepared)
            if accepted.kind == "duplicate_idempotency":
                return TriggerAnswer(accepted.run_id, is_cached=True)
            run = prepared.run
            observability.run_transition("RunBuffered", run.id, run.orgId, run.envId, taskId=run.taskId)
            return TriggerAnswer(run.id, is_cached=False, notice=NOTICE)
    record_decision(decision, gate_input)
    return pass_through(prepared)


def _run_exists(buffer: MollifierBuffer, env: Environment, run_id: str) -> bool:
    try:
        engine.get_run(env, run_id)
        return True
    except NotFound:
        pass
    try:
        return buffered_entry(buffer, env, run_id) is not None
    except UNAVAILABLE_ERRORS:
        return False


def read_buffered(env: Environment, run_id: str) -> Run:
    """A run the engine does not have yet, from the buffer (``"buffered": true``).

    Raises:
        NotFound: the buffer has no such run in the caller's environment.
        ServiceUnavailable: the buffer cannot be read.
    """
    with unavailable_as_503("burst buffer"):
        entry = buffered_entry(get_buffer(), env, run_id)
    if entry is None:
        raise NotFound(f"Run {run_id} not found")
    return buffered_run(entry)
