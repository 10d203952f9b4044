"""The gate: kill switch -> bypasses -> organization flag / shadow mode -> trip evaluator.

Each step fails open (a failure means pass through). Bypasses pass through without calling the
evaluator, so they are not counted against the rate:

- a trigger that waits on its parent (``parentRunId`` with ``resumeParentOnCompletion``): the
  parent's wait must be registered with the run synchronously; ``parentRunId`` alone is buffered;
- a payload over ``SLUICE_MOLLIFIER_MAX_ENTRY_BYTES``: entries have no TTL and live in ElastiCache
  memory, and the engine offloads such a payload to S3 anyway.

Batch items never reach the gate (``sluice.batches`` calls the engine directly: a batch's items are
already paced by its own ingest). The reference's debounce and one-time-token triggers do not
exist in Sluice's API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import TypeAdapter, ValidationError

from sluice.auth import Environment
from sluice.engine import TriggerOptions
from sluice.mollifier import metrics
from sluice.mollifier.models import Decision, Outcome, Reason
from sluice.mollifier.trip import TripEvaluator

logger = Logger(service="sluice", child=True)
ORG_FLAG = "mollifierEnabled"
_FLAG = TypeAdapter(bool)


@dataclass(frozen=True)
class GateInput:
    env: Environment
    task_id: str
    options: TriggerOptions
    payload_bytes: int


def org_enrolled(flags: dict[str, Any]) -> bool:
    """The organization's ``mollifierEnabled`` flag: absent or unparsable means off."""
    try:
        return _FLAG.validate_python(flags.get(ORG_FLAG, False))
    except (ValidationError, AttributeError):
        return False


def waits_on_parent(options: TriggerOptions) -> bool:
    return options.parentRunId is not None and options.resumeParentOnCompletion


def evaluate_gate(
    gate_input: GateInput,
    *,
    shadow_mode: bool,
    max_entry_bytes: int,
    evaluate_trip: TripEvaluator,
) -> Decision:
    """Decide ``mollify``, ``shadow_log`` or ``pass_through``; the evaluator runs only when no
    bypass applies and the organization is enrolled or shadow mode is on. The caller reaches the
    gate only when the mollifier is switched on (``SLUICE_MOLLIFIER_ENABLED``)."""
    enrolled = org_enrolled(gate_input.env.org_flags)
    if waits_on_parent(gate_input.options):
        return Decision(Outcome.PASS_THROUGH, Reason.WAITS_ON_PARENT, enrolled)
    if gate_input.payload_bytes > max_entry_bytes:
        return Decision(Outcome.PASS_THROUGH, Reason.LARGE_PAYLOAD, enrolled)
    if not enrolled and not shadow_mode:
        return Decision(Outcome.PASS_THROUGH, Reason.NOT_ENROLLED, enrolled)
    try:
        trip = evaluate_trip(gate_input.env)
    except Exception:
        logger.exception("mollifier.evaluator_failed", extra={"envId": gate_input.env.env_id})
        return Decision(Outcome.PASS_THROUGH, Reason.EVALUATOR_FAILED, enrolled)
    if not trip.tripped:
        return Decision(Outcome.PASS_THROUGH, Reason.UNDER_THRESHOLD, enrolled, trip)
    return Decision(Outcome.MOLLIFY if enrolled else Outcome.SHADOW_LOG, Reason.PER_ENV_RATE, enrolled, trip)


def record_decision(decision: Decision, gate_input: GateInput) -> None:
    """The decision metric (outcome and reason only) and, for a diversion, a log with the detail."""
    metrics.count("MollifierDecision", outcome=decision.outcome.value, reason=decision.reason.value)
    if decision.outcome is Outcome.PASS_THROUGH or decision.trip is None:
        return
    detail = {
        "orgId": gate_input.env.org_id,
        "envId": gate_input.env.env_id,
        "taskId": gate_input.task_id,
        "reason": decision.reason.value,
        "count": decision.trip.count,
    }
    if decision.outcome is Outcome.MOLLIFY:
        logger.debug("mollifier.mollified", extra=detail)
    else:
        logger.info("mollifier.would_mollify", extra=detail)
