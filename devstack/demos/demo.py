"""`make demo`: start the local stack, trigger runs, watch them flow, stop.

    python -m devstack.demos.demo

Everything it shows goes through the real HTTP API (the client SDK) and the real queues; the
"worker" is devstack's RunQueue consumer, standing in for the task workers Sluice feeds.
"""

from __future__ import annotations

import json
import sys
import time

from devstack.demos.burst import run_burst_demo
from devstack.stack_file import mask_key
from devstack.testing.launcher import DevStack, start_devstack
from sluice.client import Sluice

# devstack answers tens of triggers a second, not thousands, so the trip is set low and the
# window long for a laptop-sized burst to trip (the defaults are 100 per 200 ms, 500 ms hold).
DEMO_ENV = {
    "SLUICE_MOLLIFIER_ENABLED": "true",
    "SLUICE_MOLLIFIER_TRIP_THRESHOLD": "2",
    "SLUICE_MOLLIFIER_TRIP_WINDOW_MS": "1000",
    "SLUICE_MOLLIFIER_HOLD_MS": "2000",
}


def say(text: str = "") -> None:
    print(text, flush=True)


def plain_triggers(client: Sluice) -> list[str]:
    say("\n== 1. Triggers: POST /api/v1/tasks/{taskId}/trigger")
    run_ids = []
    for n, task in enumerate(["send-email", "resize-image", "send-email", "charge-card", "sync-crm"]):
        run = client.trigger(task, {"n": n}, idempotencyKey=f"demo-{n}", tags=["demo"])
        run_ids.append(run.id)
        say(f"   {task:<13} -> {run.id}  isCached={str(run.is_cached).lower()}")
    again = client.trigger("send-email", {"n": 0}, idempotencyKey="demo-0")
    cached = str(again.is_cached).lower()
    say(f"   send-email again with idempotencyKey demo-0 -> {again.id}  isCached={cached}")
    return run_ids


def worker_reads_run_queue(stack: DevStack, client: Sluice, expected: list[str]) -> None:
    say("\n== 2. The stand-in task worker takes them off RunQueue (one message per run)")
    seen: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        consumed = (stack.health() or {}).get("runQueue", {})
        seen = [run_id for run_id in expected if run_id in consumed.get("recentRunIds", [])]
        if len(seen) == len(expected):
            break
        time.sleep(0.2)
    for run_id in seen:
        run = client.runs.retrieve(run_id)
        payload = json.dumps(run["payload"])
        say(f"   RunQueue -> {run['id']}  {run['taskId']:<13} status={run['status']} payload={payload}")
    missing = set(expected) - set(seen)
    note = f"; missing {sorted(missing)}" if missing else ""
    say(f"   {len(seen)} of {len(expected)} runs consumed; the consumer has taken "
        f"{consumed.get('consumed', 0)} messages (`python -m devstack status` shows the count){note}")


def main() -> int:
    say("== Starting the local stack: redis-server, moto, and every function of template.yaml")
    with start_devstack(env=DEMO_ENV, args=["--schedule-scale", "30", "--run-consumer", "count"]) as stack:
        say(f"   API {stack.api_url}   key {mask_key(stack.api_key)}   AWS {stack.aws_endpoint_url}")
        with Sluice(stack.api_url, stack.api_key) as client:
            run_ids = plain_triggers(client)
            worker_reads_run_queue(stack, client, run_ids)
            burst_demo(stack)
        say("\n== Stopping the stack")
    say("   stopped; no process left behind")
    return 0


def burst_demo(stack: DevStack) -> None:
    say("\n== 3. Burst smoothing: a heavy organization (5 environments) and a light one trigger at once")
    run_burst_demo(stack.api_url, stack.create_key, heavy=300, heavy_envs=5, light=20)


if __name__ == "__main__":
    sys.exit(main())
