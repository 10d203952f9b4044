"""Drain throughput: runs/s of drainer invocations of 10 signals at stub engine latency L, against
10 / L (the issue's target: at least 0.8 x 10 / L), and of C drainers at once against C x 10 / L.

Side by side in one run, for one invocation of 10 signals:

- records one at a time (how the drainer worked before issue #7 item 3): each record pops,
  creates and acks on its own, one after another, then on ``SLUICE_SQS_RECORD_CONCURRENCY`` = 10
  threads; each record's pop is today's ``pop_batch(1)`` (three round trips; the probing pop it
  replaced took 15), so these rows flatter the old drainer a little;
- the whole batch at once (the drainer today): one pop for all ten, the creates on 10 threads,
  one ack pipeline.

The engine is a stub that takes L, so the figures are the drain machinery against the engine bound.

    .venv/bin/python -m bench.mollifier_drain [--invocations 40]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast
from unittest.mock import patch

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from bench.mollifier_common import configure, run_drainers
from devstack.services import start_redis
from sluice import engine
from sluice.engine import TriggerBody, new_run_id
from sluice.mollifier import DrainSignal, drain_batch, get_buffer
from sluice.mollifier.models import Snapshot
from sluice.sqs_batch import process_sqs_batch, process_whole_sqs_batch

SIGNAL = DrainSignal(runId="run_bench", orgId="org_bench", envId="env_bench", shard=0)
BATCH = 10  # the drainer's BatchSize in template.yaml
EVENT = {
    "Records": [
        {
            "messageId": str(i),
            "receiptHandle": str(i),
            "body": SIGNAL.model_dump_json(),
            "attributes": {},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench",
            "awsRegion": "us-east-1",
        }
        for i in range(BATCH)
    ]
}


def fill(count: int) -> None:
    buffer = get_buffer()
    snapshot = Snapshot(taskId="hello", envType="DEVELOPMENT", body=TriggerBody(payload={"n": 1}))
    now = datetime.now(UTC)
    for i in range(count):
        buffer.accept(
            run_id=new_run_id(),
            org_id=f"org_{i % 4}",
            env_id=f"env_{i % 12}",
            snapshot=snapshot,
            created_at=now,
        )


def one_at_a_time(record: SQSRecord) -> str:
    (result,) = drain_batch([DrainSignal.model_validate_json(record.body)])
    assert result == "drained", result
    return result


def per_record(concurrent: bool) -> Callable[[], dict[str, Any]]:
    return lambda: process_sqs_batch(EVENT, cast(Any, None), one_at_a_time, concurrent=concurrent)


def whole_batch() -> dict[str, Any]:
    return process_whole_sqs_batch(EVENT, cast(Any, None), DrainSignal.model_validate_json, drain_batch)


def invocation_rate(invoke: Callable[[], dict[str, Any]], invocations: int) -> tuple[float, float]:
    """Runs/s of ``invocations`` drainer invocations of 10 signals, one after another, and the
    drainer's CPU ms an invocation (every thread of this process; redis-server is another)."""
    fill(invocations * BATCH)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(invocations):
        response = invoke()
        assert response == {"batchItemFailures": []}, response
    cpu_ms = (time.process_time() - cpu) * 1000 / invocations
    return invocations * BATCH / (time.perf_counter() - start), cpu_ms


def drainers_rate(concurrency: int, invocations: int) -> float:
    """Runs/s of ``concurrency`` drainers working whole batches at once."""
    fill(invocations * BATCH)

    def invoke() -> None:
        assert whole_batch() == {"batchItemFailures": []}

    start = time.perf_counter()
    run_drainers(concurrency, invocations, invoke)
    return invocations * BATCH / (time.perf_counter() - start)


def stub_engine(latency_ms: int) -> contextlib.AbstractContextManager[Any]:
    """The engine's trigger (which the drainer calls as ``engine.trigger``) as ``latency_ms`` of waiting."""

    def engine_stub(*_: Any, **__: Any) -> None:
        time.sleep(latency_ms / 1000)

    return patch.object(engine, "trigger", engine_stub)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", type=int, default=40)
    args = parser.parse_args()
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    server = start_redis()
    rows = [
        ("records one at a time, 1 thread", per_record(concurrent=False)),
        ("records one at a time, 10 threads", per_record(concurrent=True)),
        ("whole batch at once", whole_batch),
    ]
    try:
        configure(redis_url=server.url, redis_cluster=False, sqs_record_concurrency=BATCH)
        print(f"One drainer invocation of {BATCH} signals, {args.invocations} invocations a row")
        print(f"  {'L (ms)':>6}  {'drainer':<34} {'runs/s':>7} {'10/L':>6} {'of 10/L':>8} {'CPU ms':>7}")
        for latency_ms in (5, 20):
            ceiling = BATCH / (latency_ms / 1000)
            for name, invoke in rows:
                # the drain metric's EMF lines to a buffer
                with stub_engine(latency_ms), contextlib.redirect_stdout(io.StringIO()):
                    rate, cpu_ms = invocation_rate(invoke, args.invocations)
                share = rate / ceiling
                figures = f"{rate:>7.0f} {ceiling:>6.0f} {share:>8.0%} {cpu_ms:>7.1f}"
                print(f"  {latency_ms:>6}  {name:<34} {figures}")
        print(f"C drainers at once, whole batches of {BATCH}, {args.invocations} invocations a row")
        print(f"  {'L (ms)':>6} {'C':>3} {'runs/s':>8} {'C x 10/L':>9} {'of it':>6}")
        for latency_ms in (5, 20):
            for concurrency in (1, 5):
                with stub_engine(latency_ms), contextlib.redirect_stdout(io.StringIO()):
                    rate = drainers_rate(concurrency, args.invocations)
                ceiling = concurrency * BATCH / (latency_ms / 1000)
                share = rate / ceiling
                print(f"  {latency_ms:>6} {concurrency:>3} {rate:>8.0f} {ceiling:>9.0f} {share:>6.0%}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
