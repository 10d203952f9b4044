"""The dispatcher: RunsTable stream records -> RunQueue messages (the outbox's sending half).

A record is a send when it raises the run's ``dispatchSeq`` (the rule in ``engine.store``); every
other record is skipped. Sends go out with ``SendMessageBatch`` ten at a time, in stream order;
the entries SQS reports failed are retried on their own (so a failure halfway through a batch
never re-sends the half that made it). What still fails is reported as the batch item failure
with the lowest sequence number, and nothing after it is sent: Lambda retries a stream batch from
that record on, so sending later records now would only send them twice.

A redelivered stream batch re-sends its runs (at least once; RunQueue's consumers key on the run
id) and creates nothing. The dispatcher writes nothing at all: recording each send (``enqueuedAt``)
was a second write per run, billed on the whole item, for a fact the stream already guarantees
(a run that exists is on RunQueue within the stream's lag, which ``IteratorAge`` shows for all
runs). ``dispatchPending`` is cleared by the worker's start instead (``engine.lifecycle``), in the
write it makes anyway.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from sluice import aws, observability
from sluice.config import get_settings
from sluice.engine import store

logger = Logger(service="sluice", child=True)

# SQS's DelaySeconds ceiling: a run due later is parked until then (``store.SQS_MAX_DELAY_S``).
SQS_MAX_DELAY_S = store.SQS_MAX_DELAY_S
SQS_BATCH = 10
SEND_ATTEMPTS = 4
SEND_BACKOFF_S = 0.05


@dataclass(frozen=True)
class Dispatch:
    sequence_number: str
    run_id: str
    seq: int
    body: dict[str, Any]
    group: str
    delay_until: datetime | None
    # When the write that asks for this send happened (the stream record's time).
    written_at: datetime | None = None


def _seq(image: Mapping[str, Any] | None) -> int:
    value = (image or {}).get("dispatchSeq", {}).get("N")
    return int(value) if value is not None else 0


def dispatch_of(record: Mapping[str, Any]) -> Dispatch | None:
    """The send a stream record asks for, or None when it asks for none."""
    change = record.get("dynamodb") or {}
    new = change.get("NewImage")
    if record.get("eventName") not in ("INSERT", "MODIFY") or not new:
        return None
    seq = _seq(new)
    if seq < 1 or seq <= _seq(change.get("OldImage")):
        return None
    delay = new.get("delayUntil", {}).get("S")
    body = {
        "runId": new["runId"]["S"],
        "taskId": new["taskId"]["S"],
        "orgId": new["orgId"]["S"],
        "envId": new["envId"]["S"],
        "dispatchSeq": seq,
    }
    return Dispatch(
        sequence_number=change["SequenceNumber"],
        run_id=body["runId"],
        seq=seq,
        body=body,
        group=body["orgId"],
        delay_until=datetime.fromisoformat(delay) if delay else None,
        written_at=_written_at(change),
    )


def _written_at(change: Mapping[str, Any]) -> datetime | None:
    at = change.get("ApproximateCreationDateTime")
    if isinstance(at, datetime):
        return at
    return datetime.fromtimestamp(float(at), UTC) if at is not None else None


def _delay_s(at: datetime | None, now: datetime) -> int:
    if at is None:
        return 0
    return min(SQS_MAX_DELAY_S, max(0, math.ceil((at - now).total_seconds())))


def _send_chunk(chunk: Sequence[Dispatch]) -> list[Dispatch]:
    """Send one SendMessageBatch worth, retrying only the failed entries; returns what still failed."""
    pending = list(chunk)
    for attempt in range(SEND_ATTEMPTS):
        if attempt:
            time.sleep(SEND_BACKOFF_S * 2 ** (attempt - 1))
        now = datetime.now(UTC)
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps(d.body),
                # SQS fair queues keep one noisy organization from delaying the others' workers.
                "MessageGroupId": d.group,
                "DelaySeconds": _delay_s(d.delay_until, now),
            }
            for i, d in enumerate(pending)
        ]
        try:
            response = aws.sqs().send_message_batch(
                QueueUrl=get_settings().run_queue_url,
                Entries=entries,  # type: ignore[arg-type]
            )
        except (BotoCoreError, ClientError) as exc:
            logger.warning("dispatch.send_failed", extra={"error": str(exc), "count": len(pending)})
            continue
        failed = {int(f["Id"]) for f in response.get("Failed", [])}
        pending = [d for i, d in enumerate(pending) if i in failed]
        if not pending:
            return []
    return pending


def dispatch_records(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Send the runs the records ask for; returns the sequence numbers to report as failed
    (empty, or the one record Lambda must retry from)."""
    sends = [d for d in (dispatch_of(r) for r in records) if d is not None]
    sent: list[Dispatch] = []
    failed: list[Dispatch] = []
    for start in range(0, len(sends), SQS_BATCH):
        chunk = sends[start : start + SQS_BATCH]
        failed = _send_chunk(chunk)
        sent.extend(d for d in chunk if d not in failed)
        if failed:
            break
    observability.count("RunDispatched", len(sent))
    for d in sent:
        if d.written_at is not None and d.delay_until is None:
            observability.lag_ms("DispatchLag", d.written_at)
    if not failed:
        return []
    first = failed[0]  # chunks keep stream order, so this is the lowest sequence number
    logger.error("dispatch.failed", extra={"runId": first.run_id, "unsent": len(sends) - len(sent)})
    return [first.sequence_number]
