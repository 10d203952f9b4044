"""Keeping a run alive for a session (spec section 4.2): the first run at create, and a
continuation run when a user writes to ``in`` while the session has no live run.

Every run of a session has a run id derived from (session id, version): all the appenders that
saw the same dead run at version ``v`` trigger the *same* run (the engine creates a run id once),
and the atomic claim on ``currentRunVersion`` makes it current once. So concurrent appends start
exactly one run, and, unlike the reference, a lost claim leaves no extra run to cancel.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from sluice import engine
from sluice.auth import Environment
from sluice.engine import store as run_store
from sluice.engine.ids import derived_run_id
from sluice.sessions import table
from sluice.sessions.records import Session
from sluice.streams.runs import is_final

logger = Logger(service="sluice", child=True)

# Claims lost in a row before giving up (the reference's ENSURE_RUN_FOR_SESSION_MAX_ATTEMPTS).
CLAIM_ATTEMPTS = 3
FIRST_VERSION = 1
# First-run fields of a base payload that a continuation must not inherit: it waits for ``in``.
_STICKY_FIELDS = ("message", "messages", "trigger")


def run_id_for(session_id: str, version: int) -> str:
    return derived_run_id("session", session_id, str(version))


def environment_of(session: Session) -> Environment:
    return Environment(org_id=session.orgId, env_id=session.envId)


def first_payload(session: Session) -> dict[str, Any]:
    return {**session.triggerConfig.basePayload, "sessionId": session.id}


def continuation_payload(session: Session, previous_run_id: str | None) -> dict[str, Any]:
    base = {k: v for k, v in session.triggerConfig.basePayload.items() if k not in _STICKY_FIELDS}
    return {**base, "sessionId": session.id, "continuation": True, "previousRunId": previous_run_id}


def trigger_run(session: Session, run_id: str, payload: dict[str, Any]) -> None:
    """Create and enqueue the run (idempotent on ``run_id``)."""
    body = engine.TriggerBody(payload=payload, options=session.triggerConfig.options())
    engine.trigger(environment_of(session), session.taskId, body, run_id=run_id)


def live_run(session: Session) -> str | None:
    """The session's current run if its status is not final."""
    if session.currentRunId is None:
        return None
    run = run_store.get_run_item(session.currentRunId)
    return run.id if run is not None and not is_final(run.status) else None


def ensure_run(session: Session) -> str | None:
    """The session's live run, starting a continuation run when there is none; None when the
    session is closed (or the claim kept moving, which only a storm of closes and reaps could do).

    Raises:
        ServiceUnavailable: DynamoDB or SQS cannot be reached.
    """
    for _ in range(CLAIM_ATTEMPTS):
        if session.closed:
            return None
        if (alive := live_run(session)) is not None:
            return alive
        version = session.currentRunVersion
        run_id = run_id_for(session.id, version + 1)
        # Up front, as the reference does: the claim below only ever points at a run that exists.
        trigger_run(session, run_id, continuation_payload(session, session.currentRunId))
        if table.claim_run(session.id, version, run_id):
            logger.info(
                "sessions.continuation_started",
                extra={"sessionId": session.id, "runId": run_id, "previousRunId": session.currentRunId},
            )
            return run_id
        reread = table.get_session_item(session.id)
        if reread is None:  # pragma: no cover - sessions are never deleted
            return None
        session = reread
    logger.warning("sessions.ensure_run_gave_up", extra={"sessionId": session.id})
    return None
