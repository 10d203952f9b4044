"""Delays of any length: a run due later than SQS's 15-minute ceiling is parked in DueIndex and
sent once, when it comes within the ceiling (time injected, never slept); it is never on
RunQueue early, so it costs no receives before it is due."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sluice.engine import lifecycle


def queued(api: Any) -> int:
    """Messages on RunQueue, visible or still in their DelaySeconds, after the outbox ran."""
    api.aws.run_streams()
    attributes = api.aws.sqs.get_queue_attributes(
        QueueUrl=api.aws.queue_urls["RunQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesDelayed"]
    )


def test_a_30_day_delay_is_sent_once_when_due_and_never_before(api: Any) -> None:
    run_id = api.trigger(delay="30d")
    due = datetime.fromisoformat(api.get(run_id)["delayUntil"])

    assert queued(api) == 0, "nothing on RunQueue for 30 days: no receive can come early"
    assert api.item(run_id)["dispatchSeq"]["N"] == "0"
    assert lifecycle.release_due(due - timedelta(days=1)) == 0
    assert lifecycle.release_due(due - timedelta(minutes=16)) == 0
    assert queued(api) == 0

    assert lifecycle.release_due(due - timedelta(minutes=14)) == 1

    assert queued(api) == 1, "sent once, with the rest of the delay as DelaySeconds"
    item = api.item(run_id)
    assert (item["dispatchSeq"]["N"], "dueShard" in item) == ("1", False)
    assert lifecycle.release_due(due) == 0, "released once however many sweeps come"
    assert queued(api) == 1
    assert api.get(run_id)["status"] == "DELAYED"


def test_a_delay_within_the_ceiling_is_sent_at_once_as_before(api: Any) -> None:
    run_id = api.trigger(delay="10m")
    assert queued(api) == 1
    assert "dueShard" not in api.item(run_id)


def test_a_parked_run_canceled_or_expired_is_never_sent(api: Any) -> None:
    canceled = api.trigger(delay="7d")
    expired = api.trigger(delay="7d", ttl="1d")
    assert api.call("POST", f"/api/v2/runs/{canceled}/cancel", headers=api.tenant.headers).status == 200
    due = datetime.fromisoformat(api.get(expired)["delayUntil"])
    assert lifecycle.expire_due(due - timedelta(days=5)) == 1

    assert lifecycle.release_due(due) == 0
    assert queued(api) == 0
    assert {api.get(r)["status"] for r in (canceled, expired)} == {"CANCELED", "EXPIRED"}
