"""The seal-timeout reaper: abort batches still PENDING and unsealed after their deadline.

Safe against a concurrent seal because both are conditional on the same state (PENDING and
unsealed): whichever write lands first wins and the other changes nothing. A phase 2 that loses
answers 409, so the client makes a new batch; a reaper that loses leaves the sealed batch alone.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from sluice.batches import store

logger = Logger(service="sluice")


def reap(now: datetime | None = None) -> int:
    """Abort every overdue unsealed batch; returns how many this call aborted."""
    now = now or datetime.now(UTC)
    aborted = 0
    for batch_id in store.due_for_abort(now):
        batch = store.get(batch_id)
        if batch is None:
            continue
        reason = (
            f"Batch {batch_id} was never fully created: its {batch.runCount} items could not be "
            "streamed before it timed out"
        )
        if store.abort(batch, now, reason):
            aborted += 1
            logger.info("batch aborted by the seal timeout", extra={"batchId": batch_id})
    return aborted
