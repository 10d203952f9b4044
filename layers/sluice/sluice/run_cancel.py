"""``POST /api/v2/runs/{runId}/cancel``: cancel a run wherever it is, the engine or the burst buffer.

A run the engine has is canceled there (``engine.lifecycle.cancel``, one conditional write). A
run still in the buffer (waiting, being drained, or known only to its drain signal while Redis
holds the entry) is written to the engine as CANCELED under its own id, never sent to RunQueue:
the drainer's later create of the entry finds the run there (creates are idempotent on the run
id) and acks the entry, so the cancel needs no change to the buffer or the drainer. If the
drainer created the run first, the write loses to it, and the run it made is canceled instead.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sluice import engine
from sluice.auth import Environment
from sluice.config import get_settings
from sluice.engine import PreparedRun, Run, lifecycle
from sluice.errors import Conflict, NotFound
from sluice.mollifier.buffer import get_buffer
from sluice.mollifier.errors import MalformedEntry
from sluice.mollifier.intake import buffered_entry, prepared_entry
from sluice.redis import unavailable_as_503


def cancel_run(env: Environment, run_id: str) -> Run:
    """Cancel the run; idempotent (a canceled run answers as it is).

    Raises:
        NotFound: no such run in the caller's tenant, in the engine or the buffer.
        Conflict: ``run_finished``: the run is COMPLETED or FAILED.
        ServiceUnavailable: DynamoDB could not be reached; or the engine has no such run and the
            buffer cannot be read.
    """
    run = lifecycle.cancel(env, run_id)
    if run is not None:
        return run
    if not get_settings().mollifier_enabled:
        raise NotFound(f"Run {run_id} not found")
    with unavailable_as_503("burst buffer"):
        entry = buffered_entry(get_buffer(), env, run_id)
    if entry is None or entry.orgId != env.org_id:
        raise NotFound(f"Run {run_id} not found")
    if entry.status == "FAILED":
        raise Conflict(f"Run {run_id} is already FAILED", code="run_finished")
    try:
        prepared = prepared_entry(entry, entry.parsed_snapshot().body)
    except MalformedEntry:
        raise Conflict(f"Run {run_id} is already FAILED", code="run_finished") from None
    if prepared.run.status == lifecycle.EXPIRED:
        raise Conflict(f"Run {run_id} is already EXPIRED", code="run_finished")
    now = datetime.now(UTC)
    canceled = prepared.run.model_copy(
        update={"status": lifecycle.CANCELED, "canceledAt": now, "completedAt": now}
    )
    # With its idempotency binding, as the run the drainer would have made: the key names the
    # canceled run until it expires, as it does for a run the engine had when it was canceled.
    created = engine.create(
        PreparedRun(body=prepared.body, run=canceled, payload=prepared.payload, key=prepared.key)
    )
    if not created.is_cached:
        lifecycle.on_final(canceled)
        return canceled
    # The drainer made the run meanwhile: cancel that one.
    run = lifecycle.cancel(env, run_id)
    if run is None:
        raise NotFound(f"Run {run_id} not found")
    return run
