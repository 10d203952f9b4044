"""Trigger -> RunQueue latency on devstack: how long after a trigger's 200 its run's message is on
RunQueue, now that the dispatcher sends it from RunsTable's stream (p50/p99), beside the trigger's
own latency measured in the same run, at 1 client and at 16 clients triggering at once; before
(where this tree left ``main``, ``bench.baseline``) and after, each on a devstack of its own.

One thread receives RunQueue and notes when each run arrived; the clients note when each trigger
was answered. devstack reads the stream from moto's server with a 50 ms idle poll; in AWS,
Lambda's stream poller and the dispatcher's cold/warm start set the figure instead.

    .venv/bin/python -m bench.dispatch_latency [--runs 50] [--clients 1 16] [--baseline <ref>]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.baseline import before_and_after
from bench.mollifier_common import pct
from devstack.testing.launcher import start_devstack


def measure(stack: Any, clients: int, runs: int) -> dict[str, list[float]]:
    """``runs`` triggers per client from ``clients`` clients at once: trigger ms, then-on-RunQueue ms."""
    sqs = stack.client("sqs")
    queue = stack.queue_url("RunQueue")
    answered: dict[str, float] = {}
    arrived: dict[str, float] = {}
    trigger_ms: list[float] = []
    done = threading.Event()

    def receive() -> None:
        while not done.is_set() or len(arrived) < len(answered):
            got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            now = time.perf_counter()
            for message in got.get("Messages", []):
                arrived.setdefault(json.loads(message["Body"])["runId"], now)
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    def client(n: int) -> None:
        with httpx.Client(base_url=stack.api_url, headers=stack.headers, timeout=60) as http:
            for i in range(runs):
                start = time.perf_counter()
                res = http.post("/api/v1/tasks/bench/trigger", json={"payload": {"c": n, "i": i}})
                now = time.perf_counter()
                res.raise_for_status()
                answered[res.json()["id"]] = now
                trigger_ms.append((now - start) * 1000)

    receiver = threading.Thread(target=receive)
    receiver.start()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    done.set()
    receiver.join(timeout=300)
    lag = [(arrived[run] - at) * 1000 for run, at in answered.items() if run in arrived]
    return {"trigger_ms": trigger_ms, "dispatch_ms": lag}


def child(runs: int, widths: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with start_devstack(args=["--no-schedules"]) as stack:
        measure(stack, max(widths), 2)  # grow the worker pools first: cold starts are not dispatch lag
        for clients in widths:
            figures = measure(stack, clients, runs)
            out[str(clients)] = {
                name: {"p50": pct(values, 50), "p99": pct(values, 99), "n": len(values)}
                for name, values in figures.items()
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="triggers per client")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", help="the commit to compare with (default: merge-base with main)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.runs, args.clients)))
        return
    child_args = ["--runs", str(args.runs), "--clients", *map(str, args.clients)]
    before, after, short = before_and_after("bench.dispatch_latency", child_args, args.baseline)
    print(f"Trigger -> RunQueue on devstack, {args.runs} triggers per client (before = {short})")
    print(f"  {'clients':>7} {'':<24} {'before p50':>10} {'p99':>8} {'after p50':>10} {'p99':>8}")
    for clients, now in after.items():
        was = before[clients]
        for name, label in (("trigger_ms", "trigger answered (200)"), ("dispatch_ms", "then on RunQueue")):
            b, a = was[name], now[name]
            cells = f"{b['p50']:>10.1f} {b['p99']:>8.1f} {a['p50']:>10.1f} {a['p99']:>8.1f}"
            print(f"  {clients:>7} {label:<24} {cells}")
    print(json.dumps({"before": before, "after": after}))


if __name__ == "__main__":
    main()
