"""SQS event sources and schedules as devstack runs them, on the probe template
(tests/integration/fixtures): the handlers record what they saw in the stack's Redis."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.testing.launcher import DevStack, start_devstack

pytestmark = pytest.mark.devstack

PROBE_TEMPLATE = Path(__file__).parent / "fixtures" / "template.yaml"


@pytest.fixture(scope="module")
def probe() -> Iterator[DevStack]:
    with start_devstack(template=PROBE_TEMPLATE, args=["--schedule-scale", "60"]) as stack:
        yield stack


def eventually(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll until ``check()`` is truthy; a deadline for a test that would hang, not a speed bound."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def dlq_bodies(stack: DevStack, queue: str, expected: set[str]) -> set[str]:
    """Bodies seen on a dead-letter queue so far (made visible again for the next look)."""
    sqs = stack.client("sqs")
    found = set()
    for message in stack.receive_all(queue):
        found.add(message["Body"])
        sqs.change_message_visibility(
            QueueUrl=stack.queue_url(queue), ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return found & expected


def test_partial_batch_failures(probe: DevStack) -> None:
    tag = uuid.uuid4().hex[:8]
    ok, failing = [f"ok-{tag}-{i}" for i in range(3)], f"fail-{tag}"
    # The first delivery meets a cold worker, whose start on a loaded machine can outlast the
    # queue's 2 s visibility timeout and have the batch delivered twice: the batch goes to a warm one.
    warm = f"warm-{uuid.uuid4().hex[:8]}"
    probe.send("WorkQueue", warm)
    eventually(lambda: warm in probe.redis.lrange("worker:done", 0, -1), what="a warm worker")
    probe.client("sqs").send_message_batch(
        QueueUrl=probe.queue_url("WorkQueue"),
        Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate([*ok, failing])],
    )
    r = probe.redis
    # The failed item is redelivered after the visibility timeout, then dead-lettered after
    # maxReceiveCount (2) receives; the successes are deleted after their first delivery.
    eventually(lambda: dlq_bodies(probe, "WorkDeadLetterQueue", {failing}), what="the DLQ")
    receives = r.hgetall("worker:receives")
    assert receives[failing] == "2"
    assert all(receives[body] == "1" for body in ok)
    assert sorted(b for b in r.lrange("worker:done", 0, -1) if tag in b) == sorted(ok)
    assert dlq_bodies(probe, "WorkDeadLetterQueue", set(ok)) == set()


def test_timed_out_invocation_leaves_its_batch(probe: DevStack) -> None:
    hang = f"hang-{uuid.uuid4().hex[:8]}"
    probe.send("WorkQueue", hang)
    # Two deliveries, each a 1 s timeout, a new worker's cold start and a 2 s visibility timeout:
    # a loaded machine needs far more than the 30 s the others get (a hang bound, not a speed bound).
    eventually(lambda: dlq_bodies(probe, "WorkDeadLetterQueue", {hang}), timeout=180, what="the DLQ")
    assert probe.redis.hget("worker:receives", hang) == "2"
    assert "Task timed out after 1.00 seconds" in probe.log()


def test_without_partial_failures_an_exception_keeps_the_whole_batch(probe: DevStack) -> None:
    tag = uuid.uuid4().hex[:8]
    fine = f"w-{tag}"
    probe.send("WholeBatchQueue", fine)
    eventually(lambda: any(fine in b for b in probe.redis.lrange("whole:batches", 0, -1)), what="delivery")

    doomed = [f"w-{tag}-{i}" for i in range(3)] + [f"raise-{tag}"]
    probe.client("sqs").send_message_batch(
        QueueUrl=probe.queue_url("WholeBatchQueue"),
        Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(doomed)],
    )
    eventually(lambda: len(dlq_bodies(probe, "WholeBatchDeadLetterQueue", set(doomed))) == 4, what="the DLQ")
    batches = [json.loads(b) for b in probe.redis.lrange("whole:batches", 0, -1)]
    seen = [body for batch in batches for body in batch]
    assert seen.count(fine) == 1  # a successful batch is deleted
    assert all(seen.count(body) == 2 for body in doomed)  # delivered, failed, redelivered, failed
    assert dlq_bodies(probe, "WholeBatchDeadLetterQueue", {fine}) == set()


def test_maximum_concurrency_bounds_parallel_invocations(probe: DevStack) -> None:
    bodies = [f"slow-{i}" for i in range(8)]
    probe.client("sqs").send_message_batch(
        QueueUrl=probe.queue_url("SlowQueue"),
        Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)],
    )
    eventually(lambda: probe.redis.llen("slow:done") >= len(bodies), timeout=60, what="all slow messages")
    samples = [int(s) for s in probe.redis.lrange("slow:samples", 0, -1)]
    assert max(samples) == 2  # MaximumConcurrency: 2, and it is used
    assert probe.queue_depth("SlowQueue") == (0, 0)


def test_schedules_fire_with_their_events(probe: DevStack) -> None:
    def events() -> list[dict[str, Any]]:
        return [json.loads(e) for e in probe.redis.lrange("ticks", 0, -1)]

    eventually(
        lambda: (
            any(e.get("detail-type") == "Scheduled Event" for e in events())
            and any(e == {"source": "cron-input"} for e in events())
        ),
        what="both schedules to fire",
    )
    scheduled = next(e for e in events() if e.get("detail-type") == "Scheduled Event")
    assert scheduled["source"] == "aws.events" and scheduled["detail"] == {}
    assert "TickerFunction-Disabled" not in json.dumps(events())
