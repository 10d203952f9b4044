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
from sluice.retryable import is_retryable

logger = Logger(service="sluice")

# A FAILED run's error code for an item the engine refused with something other than a SluiceError.
INVALID_ITEM = "INVALID_BATCH_ITEM"


def process_message(message: dict[str, Any]) -> str:
    """Create the run of one BatchItemQueue message; returns its run id.

    An item that phase 2 accepted but whose run cannot be made becomes a FAILED run at its index,
    so that the batch still completes: redelivering it could only fail the same way, until the DLQ
    took it and left the batch PROCESSING for ever.

    Raises:
        ServiceUnavailable: a dependency failed; the message must be redelivered.
    """
    batch_id, index = message["batchId"], int(message["index"])
    env = Environment(org_id=message["orgId"], env_id=message["envId"])
    run_id = keys.run_id(batch_id, index)

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
        options = TriggerOptions.model_validate(message.get("options") or {})
        error = RunError.model_validate(message["error"]) if message.get("error") else None
        body = TriggerBody(payload=message.get("payload"), options=options)
        result = create(body, error, message.get("payloadRef"))
    except Exception as exc:
        if is_retryable(exc):
            raise
        # Anything else is about the item, not a dependency that is down: an option or payload
        # the engine refuses (its code says why) or cannot store.
        if isinstance(exc, SluiceError):
            result = create(*_failed(message, exc.code.upper(), exc.message))
        else:
            result = create(*_failed(message, INVALID_ITEM, f"The item cannot be made into a run: {exc}"))
    processed = state.mark_processed(batch_id, index, failed=result.failed)
    if processed >= int(message["runCount"]):
        complete_if_done(batch_id)
    return result.id


def _failed(message: dict[str, Any], code: str, text: str) -> tuple[TriggerBody, RunError, None]:
    """The body and error of the FAILED run that stands for an item the engine refused."""
    logger.info("batch item rejected by the engine", extra={"batchId": message["batchId"], "code": code})
    options = message.get("options")
    parent = options.get("parentRunId") if isinstance(options, dict) else None
    body = TriggerBody(options=TriggerOptions(parentRunId=parent if isinstance(parent, str) else None))
    return body, RunError(code=code, message=text[:1000]), None


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
