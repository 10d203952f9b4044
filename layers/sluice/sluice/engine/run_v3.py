"""A run as the trigger.dev SDK's ``runs.retrieve`` reads it (``GET /api/v3/runs/{id}``): the
reference platform's response shape over the same run record ``GET /api/v1/runs/{id}`` shows.

Fields Sluice has no notion of answer what is true of it: no cost (0), never waiting on a
checkpoint, no deployments (no ``version``). A field with no value is left out (the SDK's schema
takes absent, not null). The payload and output are their plain JSON (superjson's ``json``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sluice.engine import packets
from sluice.engine.models import Run

QUEUED_STATUSES = frozenset({"QUEUED", "DELAYED", "PENDING_VERSION"})
SUCCESS = "COMPLETED"
FAILED_STATUSES = frozenset({"FAILED", "CRASHED", "SYSTEM_FAILURE", "TIMED_OUT", "EXPIRED"})
CANCELED = "CANCELED"
# Parents followed for depth and the root: deeper chains show the deepest ancestor reached.
MAX_DEPTH = 16


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def command_fields(run: Run, depth: int) -> dict[str, Any]:
    """The fields every shape of a run has (the SDK's ``RetrieveRunCommandFields``)."""
    finished = run.status == SUCCESS or run.status in FAILED_STATUSES or run.status == CANCELED
    updated = max(t for t in (run.createdAt, run.startedAt, run.completedAt) if t is not None)
    end = run.completedAt or datetime.now(UTC)
    duration_ms = int((end - run.startedAt).total_seconds() * 1000) if run.startedAt else 0
    return _present(
        {
            "id": run.id,
            "status": run.status,
            "taskIdentifier": run.taskId,
            "idempotencyKey": run.idempotencyKey,
            "isQueued": run.status in QUEUED_STATUSES,
            "isExecuting": run.status == "EXECUTING",
            "isWaiting": False,
            "isCompleted": finished,
            "isSuccess": run.status == SUCCESS,
            "isFailed": run.status in FAILED_STATUSES,
            "isCancelled": run.status == CANCELED,
            "isTest": run.isTest,
            "createdAt": _iso(run.createdAt),
            "updatedAt": _iso(updated),
            "startedAt": _iso(run.startedAt),
            "finishedAt": _iso(run.completedAt) if finished else None,
            "delayedUntil": _iso(run.delayUntil),
            "ttl": run.ttl,
            "tags": run.tags,
            "costInCents": 0,
            "baseCostInCents": 0,
            "durationMs": max(0, duration_ms),
            "metadata": run.metadata,
            "depth": depth,
            "triggerFunction": "batchTrigger" if run.batchId else "trigger",
            "batchId": run.batchId,
        }
    )


def ancestors(run: Run, get: Callable[[str], Run | None]) -> list[Run]:
    """The run's parent, its parent, ... (nearest first), as far as ``get`` finds them."""
    found: list[Run] = []
    parent_id = run.parentRunId
    while parent_id is not None and len(found) < MAX_DEPTH:
        parent = get(parent_id)
        if parent is None:
            break
        found.append(parent)
        parent_id = parent.parentRunId
    return found


def retrieve_view(run: Run, get: Callable[[str], Run | None]) -> dict[str, Any]:
    """The SDK's ``RetrieveRunResponse`` of ``run``; ``get`` reads a related run of its tenant
    (None when it is not there)."""
    chain = ancestors(run, get)
    related: dict[str, Any] = {}
    if chain:
        related["parent"] = command_fields(chain[0], len(chain) - 1)
        related["root"] = command_fields(chain[-1], 0)
    payload, _ = packets.for_reader(run.payload, run.payloadType)
    body = command_fields(run, len(chain))
    body.update(
        _present(
            {
                "payload": payload,
                "output": run.output,
                "error": {"message": run.error.message, "name": run.error.code} if run.error else None,
            }
        )
    )
    body["relatedRuns"] = related
    body["attemptCount"] = run.attempt
    return body
