"""Drain signals on DrainQueue: one per buffered entry, ids only, grouped by organization.

``MessageGroupId`` = organization id makes DrainQueue an SQS fair queue: a burst from one
organization does not delay the signals of the others.
"""

from __future__ import annotations

from sluice import aws
from sluice.config import get_settings
from sluice.mollifier.keys import shard_of
from sluice.mollifier.models import DrainSignal


def send_signal(run_id: str, org_id: str, env_id: str, *, delay_s: int = 0) -> None:
    """Raises botocore errors: the caller decides whether a lost signal matters."""
    settings = get_settings()
    shard = shard_of(org_id, settings.mollifier_shards)
    signal = DrainSignal(runId=run_id, orgId=org_id, envId=env_id, shard=shard)
    aws.sqs().send_message(
        QueueUrl=settings.drain_queue_url,
        MessageBody=signal.model_dump_json(),
        MessageGroupId=org_id,
        DelaySeconds=delay_s,
    )


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
