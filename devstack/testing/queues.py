"""Peeking at SQS queues in tests: take what is visible without deleting it."""

from __future__ import annotations

import json
from typing import Any


def receive_all(sqs: Any, queue_url: str, wait: int = 0) -> list[dict[str, Any]]:
    """Every currently visible message of a queue, left on it (invisible for its visibility
    timeout). ``wait`` long-polls for the first."""
    messages: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            return messages
        messages.extend(got)
        wait = 0


def decode_bodies(messages: list[dict[str, Any]]) -> list[Any]:
    """Message bodies, JSON-decoded where they are JSON."""
    out = []
    for message in messages:
        try:
            out.append(json.loads(message["Body"]))
        except json.JSONDecodeError:
            out.append(message["Body"])
    return out
