"""Trigger -> RunQueue latency on devstack: how long after a trigger's 200 its run's message is on
RunQueue, now that the dispatcher sends it from RunsTable's stream (p50/p99), beside the trigger's
own latency measured in the same run.

devstack reads the stream from moto's server with a 50 ms idle poll; in AWS, Lambda's stream
poller and the dispatcher's cold/warm start set the figure instead.

    .venv/bin/python -m bench.dispatch_latency [--runs 50]
"""

from __future__ import annotations

import argparse
import json
import time

import httpx

from bench.mollifier_common import pct
from devstack.testing.launcher import start_devstack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with start_devstack(args=["--no-schedules"]) as stack:
        sqs = stack.client("sqs")
        queue = stack.queue_url("RunQueue")
        trigger_ms: list[float] = []
        dispatch_ms: list[float] = []
        with httpx.Client(base_url=stack.api_url, headers=stack.headers, timeout=30) as http:
            for i in range(args.runs):
                start = time.perf_counter()
                res = http.post("/api/v1/tasks/bench/trigger", json={"payload": {"i": i}})
                answered = time.perf_counter()
                res.raise_for_status()
                run_id = res.json()["id"]
                while True:
                    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                    bodies = [json.loads(m["Body"])["runId"] for m in got.get("Messages", [])]
                    for m in got.get("Messages", []):
                        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
                    if run_id in bodies:
                        break
                trigger_ms.append((answered - start) * 1000)
                dispatch_ms.append((time.perf_counter() - answered) * 1000)
    print(f"Trigger -> RunQueue on devstack, {args.runs} sequential triggers")
    print(f"  {'':<28} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"  {'trigger answered (200)':<28} {pct(trigger_ms, 50):>8.1f} {pct(trigger_ms, 99):>8.1f}")
    print(f"  {'then on RunQueue':<28} {pct(dispatch_ms, 50):>8.1f} {pct(dispatch_ms, 99):>8.1f}")
    ratio = pct(dispatch_ms, 50) / pct(trigger_ms, 50)
    print(f"  dispatch / trigger at p50: {ratio:.2f}")


if __name__ == "__main__":
    main()
