"""Drain throughput: runs/s for engine latency L and drainer concurrency C, against the C/L ceiling.

Each of C threads plays one drainer invocation handling signals one after another (as a Lambda
instance handles its batch's records); the engine is a stub that takes L, so the figure is the
drain machinery (fair pop, ack: four to six Redis round trips) against the engine bound.

    .venv/bin/python -m bench.mollifier_drain [--runs 400]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from datetime import UTC, datetime
from typing import Any, cast

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from bench.mollifier_common import configure, run_drainers
from devstack.services import start_redis
from sluice.engine import TriggerBody, new_run_id
from sluice.mollifier import DrainSignal, drain_signal, get_buffer
from sluice.mollifier import drain as drain_module
from sluice.mollifier.models import Snapshot
from sluice.sqs_batch import process_sqs_batch

SIGNAL = DrainSignal(runId="run_bench", orgId="org_bench", envId="env_bench", shard=0)


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


def drain_with(concurrency: int, runs: int) -> float:
    def drain_one() -> None:
        assert drain_signal(SIGNAL) == "drained"

    start = time.perf_counter()
    run_drainers(concurrency, runs, drain_one)
    return runs / (time.perf_counter() - start)


def invocation_rate(concurrency: int, invocations: int) -> float:
    """Runs/s of drainer invocations of 10 signals each, one invocation after another, through
    the drainer's own partial-batch processing (``SLUICE_SQS_RECORD_CONCURRENCY``)."""
    configure(sqs_record_concurrency=concurrency)
    body = SIGNAL.model_dump_json()
    event = {
        "Records": [
            {"messageId": str(i), "receiptHandle": str(i), "body": body, "attributes": {},
             "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
             "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench", "awsRegion": "us-east-1"}
            for i in range(10)
        ]
    }
    start = time.perf_counter()
    for _ in range(invocations):
        response = process_sqs_batch(event, cast(Any, None), record_handler)
        assert response == {"batchItemFailures": []}, response
    return invocations * 10 / (time.perf_counter() - start)


def record_handler(record: SQSRecord) -> str:
    return drain_signal(DrainSignal.model_validate_json(record.body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args()
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    server = start_redis()
    try:
        configure(redis_url=server.url, redis_cluster=False)
        print(f"Drain throughput, {args.runs} runs per row (stub engine, local redis-server)")
        print(f"  {'L (ms)':>6} {'C':>3} {'runs/s':>9} {'C/L ceiling':>12} {'of ceiling':>11}")
        for latency_ms in (5, 20):
            for concurrency in (1, 5, 10):

                def engine_stub(*_: Any, latency: float = latency_ms / 1000, **__: Any) -> None:
                    time.sleep(latency)

                drain_module.engine.trigger = engine_stub  # type: ignore[assignment]
                fill(args.runs)
                with contextlib.redirect_stdout(io.StringIO()):  # the drain metric's EMF lines
                    rate = drain_with(concurrency, args.runs)
                ceiling = concurrency / (latency_ms / 1000)
                share = rate / ceiling
                print(f"  {latency_ms:>6} {concurrency:>3} {rate:>9.0f} {ceiling:>12.0f} {share:>10.0%}")
        invocations = max(1, args.runs // 10)
        print(f"One drainer invocation of 10 signals, {invocations} invocations per row (target: 0.8 x 10/L)")
        print(f"  {'L (ms)':>6} {'records at once':>16} {'runs/s':>9} {'10/L':>6} {'of 10/L':>8}")
        for latency_ms in (5, 20):

            def slow_engine(*_: Any, latency: float = latency_ms / 1000, **__: Any) -> None:
                time.sleep(latency)

            drain_module.engine.trigger = slow_engine  # type: ignore[assignment]
            for concurrency in (1, 10):
                fill(invocations * 10)
                with contextlib.redirect_stdout(io.StringIO()):
                    rate = invocation_rate(concurrency, invocations)
                ceiling = 10 / (latency_ms / 1000)
                share = rate / ceiling
                print(f"  {latency_ms:>6} {concurrency:>16} {rate:>9.0f} {ceiling:>6.0f} {share:>8.0%}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
