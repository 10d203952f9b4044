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
from typing import Any

from bench.mollifier_common import configure, run_drainers
from devstack.services import start_redis
from sluice.engine import TriggerBody, new_run_id
from sluice.mollifier import DrainSignal, drain_signal, get_buffer
from sluice.mollifier import drain as drain_module
from sluice.mollifier.models import Snapshot

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
    finally:
        server.stop()


if __name__ == "__main__":
    main()
