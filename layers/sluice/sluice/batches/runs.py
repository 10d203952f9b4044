"""batch_runs: turn each queued item into its run, count it, and complete the batch once.

Redelivery never duplicates anything: the run id is derived from (batch, index), so the engine
returns the existing run, and the processed set counts an index once. Completion is a
conditional PROCESSING -> COMPLETED | PARTIAL_FAILED write, so of all the callers that see the
last index processed (concurrent consumers, a redelivery, the phase-2 request that seals), exactly
one changes the batch.

The seal and the last item can race: the consumer adds its index and then reads the status, the
sealer sets the status and then reads the count, so at least one of them sees both writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from sluice import engine
from sluice.auth import Environment
from sluice.batches import keys, state, store
from sluice.batches.models import Batch
from sluice.engine import RunError, TriggerBody, TriggerOptions
from sluice.errors import SluiceError

logger = Logger(service="sluice")


def process_message(message: dict[str, Any]) -> str:
    """Create the run of one BatchItemQueue message; returns its run id.

    Raises:
        ServiceUnavailable: a dependency failed; the message must be redelivered.
    """
    batch_id, index = message["batchId"], int(message["index"])
    env = Environment(org_id=message["orgId"], env_id=message["envId"])
    run_id = keys.run_id(batch_id, index)
    options = TriggerOptions.model_validate(message.get("options") or {})
    error = RunError.model_validate(message["error"]) if message.get("error") else None
    body = TriggerBody(payload=message.get("payload"), options=options)

    def create(body: TriggerBody, error: RunError | None, payload_ref: str | None) -> engine.TriggerResult:
        return engine.trigger(
            env,
            message["task"],
            body,
            run_id=run_id,
            batch=(batch_id, index),
            error=error,
            payload_ref=payload_ref,
        )

    try:
        result = create(body, error, message.get("payloadRef"))
    except SluiceError as exc:
        if exc.status >= 500:
            raise
        # The item passed phase 2 but the engine cannot apply it (an unparseable delay, say):
        # it becomes a failed run at its index, so that the batch still completes.
        logger.info("batch item rejected by the engine", extra={"batchId": batch_id, "code": exc.code})
        fallback = TriggerBody(options=TriggerOptions(parentRunId=options.parentRunId))
        result = create(fallback, RunError(code=exc.code.upper(), message=exc.message), None)
    processed = state.mark_processed(batch_id, index, failed=result.failed)
    if processed >= int(message["runCount"]):
        complete_if_done(batch_id)
    return result.id


def complete_if_done(batch_id: str, batch: Batch | None = None) -> bool:
    """Complete the batch if it is sealed and every item has its run; True if this call did."""
    processed, failed = state.processed_counts(batch_id)
    batch = batch or store.get(batch_id)
    if batch is None or processed < batch.runCount:
        return False
    if not store.complete(batch, processed, failed, datetime.now(UTC)):
        return False
    logger.info("batch completed", extra={"batchId": batch_id, "runCount": processed, "failed": failed})
    state.clear(batch_id)
    return True
