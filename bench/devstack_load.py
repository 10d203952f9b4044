"""Triggers through devstack's HTTP API: p50 at 1 client and triggers/s at 16 clients, for the
stack as it was (no TCP_NODELAY, nothing consuming RunQueue) and as it is, side by side in one
run. Prints figures and ratios; never passes or fails on speed.

    .venv/bin/python -m bench.devstack_load [--sequential 200] [--burst 800] [--clients 16]

The target on a 2-core machine: >= 100 triggers/s at 16 clients, p50 <= 15 ms at 1 client.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from devstack.testing.launcher import DevStack, start_devstack  # noqa: E402

CONFIGS = {
    "before (no TCP_NODELAY, RunQueue unconsumed)": ["--no-tcp-nodelay", "--run-consumer", "none"],
    "after (TCP_NODELAY, RunQueue consumer)": ["--tcp-nodelay", "--run-consumer", "count"],
}


@dataclass
class Figures:
    p50_ms: float
    p95_ms: float
    per_s: float
    errors: int
    queue_depth: int


def _trigger(http: httpx.Client, tag: str) -> tuple[float, bool]:
    started = time.perf_counter()
    res = http.post(f"/api/v1/tasks/bench-{tag}/trigger", json={"payload": {"n": uuid.uuid4().hex}})
    return (time.perf_counter() - started) * 1000, res.status_code == 200


def measure(stack: DevStack, sequential: int, burst: int, clients: int) -> Figures:
    with httpx.Client(base_url=stack.api_url, headers=stack.headers, timeout=60) as http:
        for _ in range(20):  # warm every worker a little
            _trigger(http, "warm")
        single = [_trigger(http, "one") for _ in range(sequential)]
    local = threading.local()
    opened: list[httpx.Client] = []

    def one(_: int) -> tuple[float, bool]:
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=stack.api_url, headers=stack.headers, timeout=60)
            opened.append(local.http)
        return _trigger(local.http, "many")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        many = list(pool.map(one, range(burst)))
    elapsed = time.perf_counter() - started
    for http in opened:
        http.close()
    times = sorted(ms for ms, _ in single)
    visible, in_flight = stack.queue_depth("RunQueue")
    return Figures(
        p50_ms=statistics.median(times),
        p95_ms=times[int(len(times) * 0.95) - 1],
        per_s=burst / elapsed,
        errors=sum(not ok for _, ok in single + many),
        queue_depth=visible + in_flight,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sequential", type=int, default=200, help="triggers at 1 client")
    parser.add_argument("--burst", type=int, default=800, help="triggers at --clients clients")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    results: dict[str, Figures] = {}
    for name, up_args in CONFIGS.items():
        with start_devstack(args=["--no-schedules", *up_args]) as stack:
            results[name] = figures = measure(stack, args.sequential, args.burst, args.clients)
        print(
            f"{name}:\n"
            f"  1 client:   p50 {figures.p50_ms:6.1f} ms  p95 {figures.p95_ms:6.1f} ms  "
            f"({args.sequential} triggers)\n"
            f"  {args.clients} clients: {figures.per_s:6.1f} triggers/s  ({args.burst} triggers)\n"
            f"  errors {figures.errors}, RunQueue depth afterwards {figures.queue_depth}",
            flush=True,
        )
    before, after = results.values()
    print(
        f"ratio after/before: p50 x{after.p50_ms / before.p50_ms:.2f}, "
        f"triggers/s x{after.per_s / before.per_s:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
