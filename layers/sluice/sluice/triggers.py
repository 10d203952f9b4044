"""The trigger use case: ``POST /api/v1/tasks/{taskId}/trigger``, and the run read that also sees
buffered runs. It sits above the engine and the burst buffer and applies no rule of either.

A trigger is validated and prepared once (``engine.parse_trigger_body``, ``engine.prepare``: what
the engine would refuse is refused now, while the caller is listening), and that one prepared run
goes to the engine (pass-through, ``engine.create``) or to the buffer (mollify).

- Kill switch off (``SLUICE_MOLLIFIER_ENABLED``): straight to the engine; no mollifier code runs
  and Redis is never touched.
- On: engine idempotency -> buffer idempotency -> pre-gate claim -> gate -> mollify (accept + drain
  signal) | shadow_log | pass_through. A rejected or cached trigger never reaches the gate; every
  Redis failure passes through (fail open).

The run id is minted when the run is prepared and used on both paths, so a buffer write that timed
out but landed, followed by the fail-open pass-through, still makes one run: the drainer's create
with the same id finds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from sluice import engine
from sluice.auth import Environment
from sluice.config import Settings, get_settings
from sluice.engine import PreparedRun
from sluice.errors import NotFound
from sluice.mollifier import idempotency
from sluice.mollifier.buffer import MollifierBuffer, get_buffer
from sluice.mollifier.gate import GateInput, evaluate_gate, org_enrolled, record_decision, waits_on_parent
from sluice.mollifier.intake import NOTICE, buffered_entry, buffered_run, mollify
from sluice.mollifier.models import Decision, Outcome, Reason
from sluice.mollifier.trip import trip_evaluator
from sluice.redis import UNAVAILABLE_ERRORS, unavailable_as_503

logger = Logger(service="sluice", child=True)


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
    prepared = engine.prepare(env, task_id, engine.parse_trigger_body(raw_body))
    settings = get_settings()
    if not settings.mollifier_enabled:
        return _pass_through(prepared)
    if engine.bound_run_id(prepared) is not None:
        return _pass_through(prepared)  # the engine answers with the key's run
    try:
        # A cluster client connects when it is built, so getting the buffer can fail too.
        buffer = get_buffer()
    except UNAVAILABLE_ERRORS:
        logger.warning("mollifier.buffer_unreachable", extra={"runId": prepared.run.id})
        return _pass_through(prepared)
    return _smoothed(buffer, settings, env, prepared)


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
                return _pass_through(prepared)
            if accepted.kind == "duplicate_idempotency":
                return TriggerAnswer(accepted.run_id, is_cached=True)
            return TriggerAnswer(prepared.run.id, is_cached=False, notice=NOTICE)
    record_decision(decision, gate_input)
    return _pass_through(prepared)


def _pass_through(prepared: PreparedRun) -> TriggerAnswer:
    result = engine.create(prepared)
    return TriggerAnswer(result.id, result.is_cached)


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
    with unavailable_as_503("burst buffer"):
        entry = buffered_entry(get_buffer(), env, run_id)
    if entry is None:
        raise NotFound(f"Run {run_id} not found")
    return buffered_run(entry).to_api()
