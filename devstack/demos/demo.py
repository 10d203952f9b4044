"""`make demo`: start the local stack, trigger runs, watch them flow, stop.

    python -m devstack.demos.demo

Everything it shows goes through the real HTTP API (the client SDK) and the real queues; the
workers (``python -m devstack.worker``) stand in for the platform's task workers: they take runs
off RunQueue and report to the run lifecycle routes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

from devstack.demos.burst import run_burst_demo
from devstack.stack_file import mask_key
from devstack.testing.launcher import DevStack, start_devstack
from devstack.worker import spawn
from sluice_client import Sluice

# Short enough that a killed worker's run comes back within seconds, long enough that a loaded
# laptop's heartbeats (each an HTTP call through devstack) always land within it.
LEASE_S = 10

# devstack answers tens of triggers a second, not thousands, so the trip is set low and the
# window long for a laptop-sized burst to trip (the defaults are 100 per 200 ms, 500 ms hold).
DEMO_ENV = {
    "SLUICE_MOLLIFIER_ENABLED": "true",
    "SLUICE_MOLLIFIER_TRIP_THRESHOLD": "2",
    "SLUICE_MOLLIFIER_TRIP_WINDOW_MS": "1000",
    "SLUICE_MOLLIFIER_HOLD_MS": "2000",
    # With --schedule-scale 30 the run reaper sweeps every 2 s.
    "SLUICE_RUN_LEASE_S": str(LEASE_S),
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


def watch(
    client: Sluice, run_ids: list[str], until: set[str], timeout: float = 90
) -> dict[str, dict[str, Any]]:
    """Print each status change of the runs until every one is in ``until``."""
    started = time.monotonic()
    seen: dict[str, str] = {}
    runs: dict[str, dict[str, Any]] = {}
    while time.monotonic() - started < timeout:
        runs = {run_id: client.runs.retrieve(run_id) for run_id in run_ids}
        for run_id, run in runs.items():
            shown = f"{run['status']} attempt={run['attempt']}"
            if seen.get(run_id) != shown:
                seen[run_id] = shown
                error = f" error={run['error']['code']}" if run.get("error") else ""
                output = f" output={json.dumps(run['output'])}" if run.get("output") is not None else ""
                at = time.monotonic() - started
                say(f"   {at:5.1f}s {run_id} {run['taskId']:<13} {shown}{error}{output}")
        if all(run["status"] in until for run in runs.values()):
            break
        time.sleep(0.5)
    return runs


def workers_run_them(stack: DevStack, client: Sluice, run_ids: list[str]) -> subprocess.Popen[bytes]:
    say("\n== 2. A worker (sluice_client.worker) runs them: start with a lease, heartbeat, complete")
    worker = spawn(stack.state_dir, "--seconds", "1")
    watch(client, run_ids, {"COMPLETED", "FAILED"})
    return worker


def a_worker_dies(stack: DevStack, client: Sluice, healthy: subprocess.Popen[bytes]) -> None:
    say(f"\n== 3. A worker is SIGKILLed mid-run; the run reaper retries it once its {LEASE_S} s lease lapses")
    stop_worker(healthy)
    doomed = spawn(stack.state_dir, "--seconds", "600")
    run_id = client.trigger("sleep", {"note": "the first attempt never ends"}).id
    watch(client, [run_id], {"EXECUTING"})
    time.sleep(LEASE_S)
    say(f"   (heartbeats held it past its first lease) kill -9 {doomed.pid}")
    doomed.kill()
    doomed.wait()
    rescuer = spawn(stack.state_dir, "--seconds", "0.5")
    try:
        watch(client, [run_id], {"COMPLETED", "FAILED"})
    finally:
        stop_worker(rescuer)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)


def main() -> int:
    say("== Starting the local stack: redis-server, moto, and every function of template.yaml")
    with start_devstack(env=DEMO_ENV, args=["--schedule-scale", "30", "--run-consumer", "none"]) as stack:
        say(f"   API {stack.api_url}   key {mask_key(stack.api_key)}   AWS {stack.aws_endpoint_url}")
        with Sluice(stack.api_url, stack.api_key) as client:
            run_ids = plain_triggers(client)
            worker = workers_run_them(stack, client, run_ids)
            try:
                a_worker_dies(stack, client, worker)
            finally:
                stop_worker(worker)
            burst_demo(stack)
        say("\n== Stopping the stack")
    say("   stopped; no process left behind")
    return 0


def burst_demo(stack: DevStack) -> None:
    say("\n== 4. Burst smoothing: a heavy organization (5 environments) and a light one trigger at once")
    run_burst_demo(stack.api_url, stack.create_key, heavy=300, heavy_envs=5, light=20)


if __name__ == "__main__":
    sys.exit(main())
