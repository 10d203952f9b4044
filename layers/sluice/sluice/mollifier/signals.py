"""Drain signals on DrainQueue: one per buffered entry, carrying it, grouped by organization.

``MessageGroupId`` = organization id makes DrainQueue an SQS fair queue: a burst from one
organization does not delay the signals of the others. A signal carries its entry (the snapshot
inline, or in the payload bucket when over ``SIGNAL_INLINE_BYTES``), so that an accepted trigger
outlives Redis losing its data: see ``drain``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sluice import aws
from sluice.auth import tenant_key
from sluice.config import get_settings
from sluice.engine import payloads
from sluice.mollifier.keys import shard_of
from sluice.mollifier.models import BufferEntry, CarriedEntry, DrainSignal
from sluice.sqs_send import send_all

# SQS takes 256 KiB per message; a larger snapshot goes to S3 and the signal carries its key.
SIGNAL_INLINE_BYTES = 192 * 1024


def carry(tenant: str, run_id: str, task_id: str, created_at: datetime, snapshot: str) -> CarriedEntry:
    """What a signal carries of an entry. Raises ServiceUnavailable: S3 is down (large ones)."""
    if len(snapshot.encode("utf-8")) <= SIGNAL_INLINE_BYTES:
        return CarriedEntry(taskId=task_id, createdAt=created_at, snapshot=snapshot)
    key = f"signals/{payloads.payload_key(tenant, run_id)}"
    payloads.store(key, snapshot.encode("utf-8"))
    return CarriedEntry(taskId=task_id, createdAt=created_at, snapshotRef=key)


def carried(entry: BufferEntry) -> CarriedEntry:
    return carry(
        tenant_key(entry.orgId, entry.envId), entry.runId, entry.taskId, entry.createdAt, entry.snapshot
    )


def carried_snapshot(signal: DrainSignal) -> str | None:
    if signal.entry is None:
        return None
    if signal.entry.snapshotRef is not None:
        return json.dumps(payloads.load(signal.entry.snapshotRef))
    return signal.entry.snapshot


def send_signal(
    run_id: str, org_id: str, env_id: str, *, delay_s: int = 0, entry: CarriedEntry | None = None
) -> None:
    """Raises botocore errors: the caller decides whether a lost signal matters."""
    settings = get_settings()
    shard = shard_of(org_id, settings.mollifier_shards)
    signal = DrainSignal(runId=run_id, orgId=org_id, envId=env_id, shard=shard, entry=entry)
    aws.sqs().send_message(
        QueueUrl=settings.drain_queue_url,
        MessageBody=signal.model_dump_json(),
        MessageGroupId=org_id,
        DelaySeconds=delay_s,
    )


def resend_signals(signals: Sequence[DrainSignal]) -> list[Exception | None]:
    """Send each signal again as it is (still carrying its entry), in ``SendMessageBatch`` calls;
    one answer per signal: None, or the error that kept it from being sent."""
    bodies = [signal.model_dump_json() for signal in signals]
    groups = [signal.orgId for signal in signals]
    return send_all(get_settings().drain_queue_url, bodies, groups, "drain queue")


def signals_in_flight() -> int:
    """Signals waiting, delayed or being processed (SQS's approximate counts)."""
    attributes = aws.sqs().get_queue_attributes(
        QueueUrl=get_settings().drain_queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())
