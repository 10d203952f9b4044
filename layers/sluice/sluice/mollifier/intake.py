"""The buffer's side of a trigger: accept a prepared run with the drain signal that carries it,
and show a buffered run as the engine will.

The trigger use case (``sluice.triggers``) decides; this module only buffers. Nothing here builds
a run or applies an engine rule: the entry is the prepared run's trigger, and the drainer replays
it through ``engine.trigger`` with the same run id and time, so it becomes the run that
``engine.create`` would have made of the prepared run.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from sluice import engine
from sluice.auth import Environment, owns, tenant_key
from sluice.engine import PreparedRun, Run, TriggerBody
from sluice.errors import ServiceUnavailable, SluiceError
from sluice.mollifier.buffer import MollifierBuffer
from sluice.mollifier.errors import MalformedEntry
from sluice.mollifier.models import AcceptResult, BufferEntry, Snapshot
from sluice.mollifier.signals import carry, send_signal
from sluice.redis import UNAVAILABLE_ERRORS

logger = Logger(service="sluice", child=True)

NOTICE = {
    "code": "mollifier.queued",
    "message": "Trigger accepted into the burst buffer; the run is created shortly. "
    "Consider a batch trigger for fan-outs of 100+.",
    "docs": "https://trigger.dev/docs/triggering#batch-trigger",
}


def mollify(buffer: MollifierBuffer, env: Environment, prepared: PreparedRun) -> AcceptResult | None:
    """Buffer the prepared run and send the drain signal that carries it.

    Returns:
        the buffer's answer (``duplicate_idempotency`` names the run that owns the key); None when
        no signal could carry the entry: Redis alone is no durable copy, so the entry is withdrawn
        and the caller creates the run now, from the same prepared run. Should that fail too, the
        caller's 503 leaves nothing behind that could become a run later. An entry a drainer
        popped meanwhile cannot be withdrawn: it becomes the run, and the answer is its id.

    Raises:
        ``sluice.redis.UNAVAILABLE_ERRORS``: the buffer could not be written.
    """
    run = prepared.run
    snapshot = Snapshot(
        taskId=run.taskId,
        envType=env.env_type,
        body=prepared.body,
        idempotencyKeyExpiresAt=run.idempotencyKeyExpiresAt,
    )
    result = buffer.accept(
        run_id=run.id, org_id=run.orgId, env_id=run.envId, snapshot=snapshot, created_at=run.createdAt
    )
    # duplicate_run_id: the run id is minted per trigger, so only this accept's own retry (redis-py
    # retries a command whose reply timed out) finds it buffered; the signal is still owed.
    if result.kind == "duplicate_idempotency":
        return result
    try:
        entry = carry(
            tenant_key(run.orgId, run.envId), run.id, run.taskId, run.createdAt, snapshot.model_dump_json()
        )
        send_signal(run.id, run.orgId, run.envId, entry=entry)
    except (BotoCoreError, ClientError, ServiceUnavailable):
        logger.warning("mollifier.signal_failed", extra={"runId": run.id})
        return None if _withdrawn(buffer, prepared, snapshot) else result
    return result


def _withdrawn(buffer: MollifierBuffer, prepared: PreparedRun, snapshot: Snapshot) -> bool:
    run = prepared.run
    try:
        return buffer.withdraw(run_id=run.id, org_id=run.orgId, env_id=run.envId, snapshot=snapshot)
    except UNAVAILABLE_ERRORS:
        # Redis went away right after the accept: if it kept the entry and the engine is down
        # too, the caller's 503 leaves it behind (the stale sweep re-signals it). Nothing
        # reachable can record the withdrawal; the window is one round trip.
        logger.warning("mollifier.withdraw_failed", extra={"runId": run.id})
        return True


def buffered_entry(buffer: MollifierBuffer, env: Environment, run_id: str) -> BufferEntry | None:
    """The caller's tenant's buffered entry of ``run_id``; None when there is none, or it is
    another tenant's, or it does not parse (logged: it can never be drained either).

    Raises:
        ``sluice.redis.UNAVAILABLE_ERRORS``: the buffer could not be read.
    """
    try:
        entry = buffer.get_entry(env.org_id, run_id)
    except MalformedEntry:
        logger.exception("mollifier.malformed_entry", extra={"runId": run_id})
        return None
    return entry if entry is not None and owns(env, entry.orgId, entry.envId) else None


def buffered_run(entry: BufferEntry) -> Run:
    """The run as the engine will show it, prepared from the entry's trigger: QUEUED, or FAILED
    when the engine could not record it (then possibly because the snapshot does not parse or the
    engine refuses it: the run shows what the entry itself knows)."""
    try:
        run = prepared_entry(entry, entry.parsed_snapshot().body).run
    except (MalformedEntry, SluiceError):
        run = prepared_entry(entry, TriggerBody()).run
    status = "FAILED" if entry.status == "FAILED" else ("EXPIRED" if run.status == "EXPIRED" else "QUEUED")
    return run.model_copy(update={"status": status, "error": entry.lastError, "buffered": True})


def prepared_entry(entry: BufferEntry, body: TriggerBody) -> PreparedRun:
    """The run the drainer will make of the entry (``body`` its trigger), prepared, not written."""
    env = Environment(org_id=entry.orgId, env_id=entry.envId)
    return engine.prepare(env, entry.taskId, body, run_id=entry.runId, created_at=entry.createdAt)
