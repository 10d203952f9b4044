"""Triggers through devstack's HTTP API: p50 at 1 client, triggers/s at 16 clients, and the CPU
each process of the stack spends per trigger, for three stacks side by side in one run:

- the stack before issue #12 (no TCP_NODELAY, RunQueue unconsumed, moto's own server);
- its first pass (TCP_NODELAY, the RunQueue consumer, moto's own server);
- as it is (devstack's moto server: keep-alive, cached host lookup, linear ReceiveMessage).

Each stack takes a first burst at 16 clients right after it started, which grows its worker
pools (every new worker is a cold start: an interpreter importing its handler, paid once per
stack), then 200 triggers at 1 client (p50), then the same burst again with every worker warm
(triggers/s, and CPU per trigger until its runs are on RunQueue).

The first two are today's devstack with flags turned back, not the old code: they share its
function host, whose pools now grow one cold start at a time. "before #12" without a consumer
looks fast to clients because its dispatching is left for later (and slows as RunQueue grows):
the time until its runs are on RunQueue says so.

Prints figures and ratios; never passes or fails on speed. A shared machine inflates every
figure: the load average is printed beside them, and CPU per trigger is the steadier evidence.

    .venv/bin/python -m bench.devstack_load [--sequential 200] [--burst 800] [--clients 16]

The target on a 2-core machine: >= 100 triggers/s at 16 clients, p50 <= 15 ms at 1 client.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from devstack.testing.launcher import DevStack, start_devstack  # noqa: E402
from devstack.testing.processes import cmdline, descendants  # noqa: E402

BEFORE = "before #12 (no TCP_NODELAY, RunQueue unconsumed, moto's server)"
FIRST_PASS = "first pass (TCP_NODELAY, RunQueue consumer, moto's server)"
AFTER = "now (TCP_NODELAY, RunQueue consumer, devstack's moto server)"
CONFIGS = {
    BEFORE: ["--no-tcp-nodelay", "--run-consumer", "none", "--moto-server", "plain"],
    FIRST_PASS: ["--tcp-nodelay", "--run-consumer", "count", "--moto-server", "plain"],
    AFTER: ["--tcp-nodelay", "--run-consumer", "count", "--moto-server", "devstack"],
}
# How long the dispatcher may take to catch up with a burst before the CPU is read anyway.
DRAIN_TIMEOUT_S = 120.0
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    p50_ms: float
    p95_ms: float
    per_s: float
    cold_per_s: float
    errors: int
    queue_depth: int
    drained_s: float
    cpu_ms: dict[str, float]  # per trigger of the measured burst, by process role
    load: tuple[float, float]  # 1-minute load average at the burst's start and end


def _role(pid: int, root: int) -> str:
    command = cmdline(pid)
    if pid == root:
        return "devstack"
    if "moto_server" in command:
        return "moto"
    if "redis-server" in command:
        return "redis"
    if "multiprocessing" in command and "resource_tracker" not in command:
        return "functions"
    return "other"


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _cpu_by_role(root: int) -> dict[int, tuple[str, float]]:
    return {pid: (_role(pid, root), _cpu_s(pid)) for pid in {root, *descendants(root)}}


def _trigger(http: httpx.Client, tag: str) -> tuple[float, bool]:
    started = time.perf_counter()
    res = http.post(f"/api/v1/tasks/bench-{tag}/trigger", json={"payload": {"n": uuid.uuid4().hex}})
    return (time.perf_counter() - started) * 1000, res.status_code == 200


def _dispatched(stack: DevStack, consumer: bool) -> Callable[[], int]:
    """How many runs reached RunQueue so far (consumed, or waiting there)."""
    if consumer:
        return lambda: int((stack.health() or {}).get("runQueue", {}).get("consumed", 0))
    return lambda: sum(stack.queue_depth("RunQueue"))


class Load:
    """Triggers from ``clients`` threads, each with a keep-alive connection of its own."""

    def __init__(self, stack: DevStack, clients: int) -> None:
        self.stack = stack
        self.clients = clients
        self._local = threading.local()
        self._opened: list[httpx.Client] = []

    def _one(self, tag: str) -> tuple[float, bool]:
        if not hasattr(self._local, "http"):
            stack = self.stack
            self._local.http = httpx.Client(base_url=stack.api_url, headers=stack.headers, timeout=60)
            self._opened.append(self._local.http)
        return _trigger(self._local.http, tag)

    def burst(self, count: int, tag: str) -> tuple[float, list[bool]]:
        """(seconds, outcomes) of ``count`` triggers."""
        started = time.perf_counter()
        with ThreadPoolExecutor(self.clients) as pool:
            outcomes = [ok for _, ok in pool.map(lambda _: self._one(tag), range(count))]
        return time.perf_counter() - started, outcomes

    def close(self) -> None:
        for http in self._opened:
            http.close()


def _wait_until(dispatched: Callable[[], int], count: int) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while dispatched() < count and time.monotonic() < deadline:
        time.sleep(0.2)


def measure(stack: DevStack, args: argparse.Namespace, consumer: bool) -> Figures:
    dispatched = _dispatched(stack, consumer)
    load = Load(stack, args.clients)
    try:
        # The first burst grows each function's worker pool to what the clients need: every new
        # worker is a cold start (an interpreter importing the handler), which a stack pays once.
        cold_s, cold = load.burst(args.burst, "cold")
        _wait_until(dispatched, len(cold))  # a dispatcher still busy with it would slow the rest
        with httpx.Client(base_url=stack.api_url, headers=stack.headers, timeout=60) as http:
            single = [_trigger(http, "one") for _ in range(args.sequential)]
        sent = len(cold) + len(single)
        _wait_until(dispatched, sent)  # the burst's CPU must not include the earlier triggers'
        assert stack.process is not None  # this bench starts its own stack, to read its processes' CPU
        root = stack.process.pid
        before = _cpu_by_role(root)
        client_before = time.process_time()
        load_start = os.getloadavg()[0]
        started = time.perf_counter()
        elapsed, many = load.burst(args.burst, "many")
        client_cpu = time.process_time() - client_before
        # The burst's work ends when its runs reach RunQueue: count the CPU until then.
        _wait_until(dispatched, sent + args.burst)
        drained_s = time.perf_counter() - started
    finally:
        load.close()
    load_end = os.getloadavg()[0]
    cpu_ms: dict[str, float] = {}
    for pid, (role, cpu_s) in _cpu_by_role(root).items():
        spent = cpu_s - before.get(pid, (role, 0.0))[1]
        cpu_ms[role] = cpu_ms.get(role, 0.0) + spent * 1000 / args.burst
    cpu_ms["client (this bench)"] = client_cpu * 1000 / args.burst
    times = sorted(ms for ms, _ in single)
    visible, in_flight = stack.queue_depth("RunQueue")
    return Figures(
        p50_ms=statistics.median(times),
        p95_ms=times[int(len(times) * 0.95) - 1],
        per_s=args.burst / elapsed,
        cold_per_s=len(cold) / cold_s,
        errors=sum(not ok for ok in cold + many) + sum(not ok for _, ok in single),
        queue_depth=visible + in_flight,
        drained_s=drained_s,
        cpu_ms=cpu_ms,
        load=(load_start, load_end),
    )


def _report(name: str, figures: Figures, args: argparse.Namespace) -> str:
    roles = sorted(figures.cpu_ms.items(), key=lambda item: -item[1])
    stack_cpu = sum(ms for role, ms in roles if not role.startswith("client"))
    cpu = ", ".join(f"{role} {ms:.2f}" for role, ms in roles if ms >= 0.005)
    return (
        f"{name}:\n"
        f"  1 client:   p50 {figures.p50_ms:6.1f} ms  p95 {figures.p95_ms:6.1f} ms  "
        f"({args.sequential} triggers)\n"
        f"  {args.clients} clients: {figures.per_s:6.1f} triggers/s warm, {figures.cold_per_s:6.1f} in "
        f"the first burst, which grows the worker pools  ({args.burst} triggers each; the warm "
        f"burst's all on RunQueue {figures.drained_s:.1f}s after it began)\n"
        f"  CPU per trigger: stack {stack_cpu:.2f} ms ({cpu})\n"
        f"  errors {figures.errors}, RunQueue depth afterwards {figures.queue_depth}, "
        f"load average {figures.load[0]:.1f} -> {figures.load[1]:.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sequential", type=int, default=200, help="triggers at 1 client")
    parser.add_argument("--burst", type=int, default=800, help="triggers at --clients clients")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the first stack", flush=True)
    results: dict[str, Figures] = {}
    for name, up_args in CONFIGS.items():
        consumer = "count" in up_args
        with start_devstack(args=["--no-schedules", *up_args]) as stack:
            results[name] = measure(stack, args, consumer)
        print(_report(name, results[name], args), flush=True)
    for name in (BEFORE, FIRST_PASS):
        was, now = results[name], results[AFTER]
        print(
            f"now / {name.split(' (')[0]}: p50 x{now.p50_ms / was.p50_ms:.2f}, "
            f"triggers/s x{now.per_s / was.per_s:.2f} warm, "
            f"x{now.cold_per_s / was.cold_per_s:.2f} in the first burst, "
            f"moto CPU per trigger x{now.cpu_ms.get('moto', 0) / max(was.cpu_ms.get('moto', 0), 1e-9):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
