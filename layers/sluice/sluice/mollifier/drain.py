"""The drain step: a batch of drain signals -> pop as many entries in fair order -> create their
runs concurrently -> ack them together.

The run is created with the entry's run id and original creation time, and the engine is
idempotent on run id: a redelivered signal, or a drainer that dies after the create and before
the ack (the stale sweep requeues its entry), finds the run and creates nothing twice.

Failures: a retryable error (a dependency down) requeues the entry, which pops next, until
``SLUICE_MOLLIFIER_MAX_ATTEMPTS`` handler executions; then, or at once for a non-retryable error,
the entry becomes a FAILED run that the user can GET. If even that cannot be recorded (the
snapshot does not parse, or the engine rejects it), the buffer keeps the entry as FAILED.

Batches: ``drain_batch`` pops up to one entry per signal in one go (``MollifierBuffer.pop_batch``),
creates their runs on up to ``SLUICE_SQS_RECORD_CONCURRENCY`` threads, acks them in one pipeline
and answers one result per signal. A signal works its own entry when the pop served it, else one
of the others (or none, when the buffer held fewer entries than signals). Its SQS record fails
only for its own work: the entry it worked failed and that failure could not be recorded
(requeue or fail raised), or its own entry could not be settled.

Signal accounting: every entry not yet materialised has a live signal carrying it (the entry's
own, or one sent in its place), so SQS, not Redis, is the durable copy of an accepted trigger.
A signal whose own entry the pop did not serve settles it: still buffered -> a fresh signal
carries it on (sent before this one is deleted); materialised or FAILED -> nothing; unknown to
Redis (FLUSHALL, a failover to an empty replica, an eviction) -> its run is created from the
carried copy (the engine is idempotent on the run id, so a run that exists stays one). With Redis
unreachable, every signal creates its own entry's run straight away. A requeue sends a fresh
(delayed) signal for the entry it returns; a signal whose record fails is redelivered by SQS and
still carries its own entry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Literal

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from sluice import engine, observability
from sluice.auth import Environment
from sluice.config import Settings, get_settings
from sluice.engine import RunError
from sluice.mollifier import metrics
from sluice.mollifier.buffer import MollifierBuffer, get_buffer
from sluice.mollifier.errors import MalformedEntry
from sluice.mollifier.models import BufferEntry, DrainSignal, Snapshot
from sluice.mollifier.signals import carried, carried_snapshot, resend_signals, send_signal
from sluice.redis import UNAVAILABLE_ERRORS
from sluice.retryable import is_retryable
from sluice.sqs_batch import run_concurrently

logger = Logger(service="sluice", child=True)

DrainOutcome = Literal["drained", "requeued", "failed", "empty", "recovered"]
# One signal's answer: its outcome, or the error that fails its SQS record.
DrainResult = DrainOutcome | Exception
UNREADABLE: tuple[type[Exception], ...] = (*UNAVAILABLE_ERRORS, MalformedEntry)
TERMINAL_CODE = "MOLLIFIER_DRAIN_FAILED"


def drain_batch(signals: Sequence[DrainSignal]) -> list[DrainResult]:
    """Handle a batch of drain signals at once; one result per signal, in order."""
    try:
        # A cluster client connects when it is built, so getting the buffer can fail too.
        buffer = get_buffer()
        popped = buffer.pop_batch(len(signals))
    except UNAVAILABLE_ERRORS as exc:
        logger.warning("mollifier.drain_redis_down", extra={"signals": len(signals), "error": str(exc)})
        return _counted(run_concurrently(partial(_redis_down, exc), signals))
    processed = process_entries(buffer, popped, get_settings())
    outcomes = {entry.runId: result for entry, result in zip(popped, processed, strict=True)}
    results = [outcomes[entry.runId] if entry else "empty" for entry in _pair(signals, popped)]
    # A failing record needs no settling: SQS redelivers it, still carrying its own entry.
    unsettled = [
        i
        for i, (signal, result) in enumerate(zip(signals, results, strict=True))
        if signal.entry is not None and signal.runId not in outcomes and not isinstance(result, Exception)
    ]
    settlements = _settle_own_entries(buffer, [signals[i] for i in unsettled])
    for i, settled in zip(unsettled, settlements, strict=True):
        if isinstance(settled, Exception) or (settled == "recovered" and results[i] == "empty"):
            results[i] = settled
    return _counted(results)


def _pair(signals: Sequence[DrainSignal], popped: list[BufferEntry]) -> list[BufferEntry | None]:
    """The entry each signal works: its own when the pop served it, else one of the others."""
    by_run = {entry.runId: entry for entry in popped}
    own = [by_run.pop(signal.runId, None) for signal in signals]
    others = iter(by_run.values())
    return [entry if entry is not None else next(others, None) for entry in own]


def _counted(results: list[DrainResult]) -> list[DrainResult]:
    """One metric line per outcome of the batch, not per signal: a line costs a drainer about as
    much CPU as popping and acking a run."""
    for outcome, value in Counter(r for r in results if not isinstance(r, Exception)).items():
        metrics.count("MollifierDrain", value=value, outcome=outcome)
    return results


def _redis_down(exc: Exception, signal: DrainSignal) -> DrainOutcome:
    if signal.entry is None:
        raise exc  # a signal of an older release carries nothing: SQS redelivers it
    return _materialise_carried(signal)


def _settle_own_entries(
    buffer: MollifierBuffer, signals: list[DrainSignal]
) -> list[DrainOutcome | Exception | None]:
    """Keep each signal's own entry alive, or create it when Redis no longer knows it."""
    if not signals:
        return []
    try:
        known = buffer.get_entries([(signal.orgId, signal.runId) for signal in signals])
    except UNAVAILABLE_ERRORS as exc:
        known = [exc] * len(signals)
    settled: list[DrainOutcome | Exception | None] = [None] * len(signals)
    lost: list[int] = []
    waiting: list[int] = []
    for i, entry in enumerate(known):
        if entry is None or isinstance(entry, UNREADABLE):
            lost.append(i)  # unreadable is as good as lost: the carried copy is the entry
        elif isinstance(entry, Exception):
            settled[i] = entry
        elif entry.status in ("QUEUED", "DRAINING") and not entry.materialised:
            waiting.append(i)
    for i, sent in zip(waiting, resend_signals([signals[i] for i in waiting]), strict=True):
        settled[i] = sent
    recovered = run_concurrently(_materialise_carried, [signals[i] for i in lost])
    for i, outcome in zip(lost, recovered, strict=True):
        settled[i] = outcome
    return settled


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


def process_entries(
    buffer: MollifierBuffer, entries: list[BufferEntry], settings: Settings
) -> list[DrainResult]:
    """Materialise popped (DRAINING) entries concurrently, ack them in one pipeline, and requeue
    or fail those that failed; one result per entry."""
    created = run_concurrently(lambda entry: _create_run(entry, entry.parsed_snapshot()), entries)
    done = [entry for entry, result in zip(entries, created, strict=True) if result is None]
    for entry in done:
        observability.lag_ms("DrainLag", entry.createdAt)
    try:
        acks = buffer.ack_all(done)
    except UNAVAILABLE_ERRORS as exc:
        acks = [exc] * len(done)
    # An ack that fails after the create is handled like a handler error: the retry finds the run.
    ack_errors = {e.runId: ack for e, ack in zip(done, acks, strict=True) if isinstance(ack, Exception)}
    errors = [
        create_error if create_error is not None else ack_errors.get(entry.runId)
        for entry, create_error in zip(entries, created, strict=True)
    ]
    failed = [(entry, error) for entry, error in zip(entries, errors, strict=True) if error is not None]
    recorded = iter(run_concurrently(lambda pair: _after_failure(buffer, *pair, settings), failed))
    return [next(recorded) if error is not None else "drained" for error in errors]


def _after_failure(
    buffer: MollifierBuffer, entry: BufferEntry, exc: Exception, settings: Settings
) -> DrainOutcome:
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
