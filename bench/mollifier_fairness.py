"""Fairness: 1 heavy organization (10 000 triggers over 20 environments) against 20 light ones
(50 each), all buffered before the drainer starts. When does each light organization's last run
materialise, relative to the heavy organization's last?

    .venv/bin/python -m bench.mollifier_fairness [--heavy 10000] [--light-orgs 20] [--light 50]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import threading
import time
from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch

from bench.mollifier_common import configure, run_drainers
from devstack.services import start_redis
from sluice import engine
from sluice.engine import TriggerBody, new_run_id
from sluice.mollifier import DrainSignal, MollifierBuffer, drain_batch, get_buffer
from sluice.mollifier.models import Snapshot

CONCURRENCY = 5
BATCH = 10  # the drainer's BatchSize in template.yaml
ENGINE_LATENCY_S = 0.001
HEAVY_ENVS = 20


def fill(buffer: MollifierBuffer, heavy: int, light_orgs: list[str], light: int) -> int:
    """Buffer the heavy burst with the light triggers spread through it, as they would arrive."""
    snapshot = Snapshot(taskId="hello", envType="DEVELOPMENT", body=TriggerBody(payload={"n": 1}))
    now = datetime.now(UTC)

    def put(org: str, env: str) -> None:
        buffer.accept(run_id=new_run_id(), org_id=org, env_id=env, snapshot=snapshot, created_at=now)

    stride = max(1, heavy // (light * len(light_orgs)))
    light_queue = [(org, f"env_{org}") for _ in range(light) for org in light_orgs]
    for i in range(heavy):
        put("org_heavy", f"env_heavy_{i % HEAVY_ENVS:02}")
        if i % stride == 0 and light_queue:
            put(*light_queue.pop())
    for org, env in light_queue:
        put(org, env)
    return heavy + light * len(light_orgs)


def drain_all(total: int) -> dict[str, float]:
    """Drain with CONCURRENCY drainers, BATCH signals an invocation; returns each organization's
    last materialisation time."""
    done: dict[str, float] = {}
    lock = threading.Lock()
    start = time.perf_counter()

    def engine_stub(env: Any, *_: Any, **__: Any) -> None:
        time.sleep(ENGINE_LATENCY_S)
        with lock:
            done[env.org_id] = time.perf_counter() - start

    signal = DrainSignal(runId="run_bench", orgId="org_bench", envId="env_bench", shard=0)
    # The drainer calls ``engine.trigger``; the drain metric's EMF lines go to a buffer.
    with patch.object(engine, "trigger", engine_stub), contextlib.redirect_stdout(io.StringIO()):
        run_drainers(CONCURRENCY, -(-total // BATCH), lambda: drain_batch([signal] * BATCH))
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heavy", type=int, default=10_000)
    parser.add_argument("--light-orgs", type=int, default=20)
    parser.add_argument("--light", type=int, default=50)
    args = parser.parse_args()
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    server = start_redis()
    try:
        configure(redis_url=server.url, redis_cluster=False)
        buffer = get_buffer()
        light_orgs = [f"org_light_{i:02}" for i in range(args.light_orgs)]
        total = fill(buffer, args.heavy, light_orgs, args.light)
        done = drain_all(total)
    finally:
        server.stop()
    heavy_last = done["org_heavy"]
    light_last = [done[org] for org in light_orgs]
    median = statistics.median(light_last)
    print(
        f"Fairness: {total} buffered, drained by {CONCURRENCY} drainers, {BATCH} signals an invocation "
        f"(stub engine {ENGINE_LATENCY_S * 1000:.0f} ms), shards={buffer.shards}"
    )
    print(f"  heavy org ({HEAVY_ENVS} envs, {args.heavy} runs): last run at {heavy_last:6.2f} s (1.000)")
    print(
        f"  light orgs ({args.light_orgs} x {args.light} runs): last run at median {median:.2f} s "
        f"({median / heavy_last:.3f}), max {max(light_last):.2f} s ({max(light_last) / heavy_last:.3f})"
    )
    print(
        f"  for scale: served in arrival order a light org finishes near 1.000; an equal share per org "
        f"({args.light_orgs + 1} orgs) finishes at about {args.light * (args.light_orgs + 1) / total:.3f}"
    )


if __name__ == "__main__":
    main()
