"""The drain step: one drain signal -> pop the next entry in fair order -> create its run -> ack.

The run is created with the entry's run id and original creation time, and the engine is
idempotent on run id: a redelivered signal, or a drainer that dies after the create and before
the ack (the stale sweep requeues its entry), finds the run and creates nothing twice.

Failures: a retryable error (a dependency down) requeues the entry, which pops next, until
``SLUICE_MOLLIFIER_MAX_ATTEMPTS`` handler executions; then, or at once for a non-retryable error,
the entry becomes a FAILED run that the user can GET. If even that cannot be recorded (the
snapshot does not parse, or the engine rejects it), the buffer keeps the entry as FAILED.

Signal accounting: every entry not yet materialised has a live signal carrying it (the entry's
own, or one sent in its place), so SQS, not Redis, is the durable copy of an accepted trigger.
After its pop, a signal settles its own entry when the pop served another one: still buffered ->
a fresh signal carries it on (before this one is deleted); materialised or FAILED -> nothing;
unknown to Redis (FLUSHALL, a failover to an empty replica, an eviction) -> its run is created
from the carried copy (the engine is idempotent on the run id, so a run that exists stays one).
With Redis unreachable, the signal creates its own entry's run straight away. A requeue sends a
fresh (delayed) signal for the entry it returns; any error that escapes ``drain`` fails the SQS
record, so SQS redelivers that signal instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from sluice import engine
from sluice.auth import Environment
from sluice.config import Settings, get_settings
from sluice.engine import RunError
from sluice.mollifier import metrics
from sluice.mollifier.buffer import MollifierBuffer, get_buffer
from sluice.mollifier.errors import MalformedEntry
from sluice.mollifier.models import BufferEntry, DrainSignal, Snapshot
from sluice.mollifier.signals import carried, carried_snapshot, send_signal
from sluice.redis import UNAVAILABLE_ERRORS
from sluice.retryable import is_retryable

logger = Logger(service="sluice", child=True)

DrainOutcome = Literal["drained", "requeued", "failed", "empty", "recovered"]
UNREADABLE: tuple[type[Exception], ...] = (*UNAVAILABLE_ERRORS, MalformedEntry)
TERMINAL_CODE = "MOLLIFIER_DRAIN_FAILED"


def drain_signal(signal: DrainSignal) -> DrainOutcome:
    """Handle one drain signal. Raises when the outcome could not be recorded (SQS redelivers)."""
    outcome: DrainOutcome
    try:
        # A cluster client connects when it is built, so getting the buffer can fail too.
        buffer = get_buffer()
        entry = buffer.pop_next()
    except UNAVAILABLE_ERRORS:
        if signal.entry is None:
            raise
        logger.warning("mollifier.drain_redis_down", extra={"runId": signal.runId})
        outcome = _materialise_carried(signal)
        metrics.count("MollifierDrain", outcome=outcome)
        return outcome
    if entry is None:
        logger.debug("mollifier.drain_empty", extra={"signalRunId": signal.runId})
        outcome = "empty"
    else:
        outcome = process_entry(buffer, entry, get_settings())
    settled = None
    if signal.entry is not None and (entry is None or entry.runId != signal.runId):
        settled = _settle_carried(buffer, signal)
    if settled == "recovered" and outcome == "empty":
        outcome = "recovered"
    metrics.count("MollifierDrain", outcome=outcome)
    return outcome


def _settle_carried(buffer: MollifierBuffer, signal: DrainSignal) -> DrainOutcome | None:
    """Keep the signal's own entry alive, or create it when Redis no longer knows it."""
    assert signal.entry is not None
    try:
        known = buffer.get_entry(signal.orgId, signal.runId)
    except UNREADABLE:
        known = None  # unreadable is as good as lost: the carried copy is the entry
    if known is None:
        return _materialise_carried(signal)
    if known.status in ("QUEUED", "DRAINING") and not known.materialised:
        send_signal(signal.runId, signal.orgId, signal.envId, entry=signal.entry)
    return None


def _materialise_carried(signal: DrainSignal) -> DrainOutcome:
    snapshot_json = carried_snapshot(signal)
    assert snapshot_json is not None and signal.entry is not None
    try:
        snapshot = Snapshot.model_validate_json(snapshot_json)
    except ValidationError:
        logger.exception("mollifier.carried_entry_unreadable", extra={"runId": signal.runId})
        return "failed"
    try:
        _create(signal.orgId, signal.envId, signal.runId, signal.entry.createdAt, snapshot)
    except Exception as exc:
        if is_retryable(exc):
            raise
        error = RunError(code=TERMINAL_CODE, message=f"Burst buffer drain failed (non_retryable): {exc}")
        _create(signal.orgId, signal.envId, signal.runId, signal.entry.createdAt, snapshot, error=error)
        return "failed"
    logger.warning("mollifier.recovered_from_signal", extra={"runId": signal.runId})
    return "recovered"


def process_entry(buffer: MollifierBuffer, entry: BufferEntry, settings: Settings) -> DrainOutcome:
    """Materialise one popped (DRAINING) entry and ack, requeue or fail it."""
    try:
        snapshot = entry.parsed_snapshot()
        _create_run(entry, snapshot)
        # An ack that fails after the create is handled like a handler error: the retry finds the run.
        buffer.ack(entry)
        return "drained"
    except Exception as exc:
        attempts = entry.attempts + 1
        if is_retryable(exc) and attempts < settings.mollifier_max_attempts:
            logger.warning("mollifier.drain_retry", extra={"runId": entry.runId, "attempts": attempts})
            return _requeue(buffer, entry, settings)
        cause = "max_attempts_exhausted" if is_retryable(exc) else "non_retryable"
        return _terminal(buffer, entry, settings, exc, cause)


def _create_run(entry: BufferEntry, snapshot: Snapshot, error: RunError | None = None) -> None:
    _create(entry.orgId, entry.envId, entry.runId, entry.createdAt, snapshot, error=error)


def _create(
    org_id: str,
    env_id: str,
    run_id: str,
    created_at: datetime,
    snapshot: Snapshot,
    *,
    error: RunError | None = None,
) -> None:
    # The accepted trigger, replayed with its run id and time: the engine prepares the run it
    # would have made then (and drops an idempotency key that expired while the entry waited).
    env = Environment(org_id=org_id, env_id=env_id, env_type=snapshot.envType)
    engine.trigger(env, snapshot.taskId, snapshot.body, run_id=run_id, created_at=created_at, error=error)


def _requeue(buffer: MollifierBuffer, entry: BufferEntry, settings: Settings) -> DrainOutcome:
    if buffer.requeue(entry):
        delay = settings.mollifier_retry_delay_s
        send_signal(entry.runId, entry.orgId, entry.envId, delay_s=delay, entry=carried(entry))
    return "requeued"


def _terminal(
    buffer: MollifierBuffer, entry: BufferEntry, settings: Settings, exc: Exception, cause: str
) -> DrainOutcome:
    error = RunError(code=TERMINAL_CODE, message=f"Burst buffer drain failed ({cause}): {exc}")
    logger.error("mollifier.drain_failed", extra={"runId": entry.runId, "cause": cause, "error": str(exc)})
    try:
        _create_run(entry, entry.parsed_snapshot(), error=error)
    except Exception as record_exc:
        if is_retryable(record_exc):
            # Recording the failure needs the engine too: keep the entry rather than lose the run.
            return _requeue(buffer, entry, settings)
        logger.exception("mollifier.failed_run_not_recorded", extra={"runId": entry.runId})
        buffer.fail(entry, error)
        return "failed"
    buffer.ack(entry)
    return "failed"
