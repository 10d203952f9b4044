"""A stand-in for the platform's task workers, for the demo and tests: ``python -m devstack.worker``.

    python -m devstack.worker [--state-dir .devstack] [--api-key KEY] [--concurrency 4]
                              [--task send-email ...] [--seconds 0.5]

It runs ``sluice_client.worker.Worker`` against a running stack's RunQueue. Every task it serves
sleeps ``payload["seconds"]`` (default ``--seconds``) and returns what it did. SIGTERM or Ctrl-C
stops it after the runs in hand; SIGKILL is the crashed worker the run reaper is there for.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import boto3

from devstack.stack_file import DEFAULT_STATE_DIR, read_stack
from devstack.testing.launcher import ROOT
from sluice_client import Sluice
from sluice_client.worker import TaskRun, Worker

DEMO_TASKS = ("send-email", "resize-image", "charge-card", "sync-crm", "sleep")


def sleeper(default_s: float) -> Any:
    def handle(task: TaskRun) -> dict[str, Any]:
        payload = task.payload if isinstance(task.payload, dict) else {}
        seconds = float(payload.get("seconds", default_s))
        time.sleep(seconds)
        return {"task": task.task_id, "attempt": task.attempt, "slept": seconds, "pid": os.getpid()}

    return handle


def spawn(state_dir: Path, *args: str, log: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """Start a worker process on the stack in ``state_dir`` (the demo's and tests' workers)."""
    return subprocess.Popen(
        [sys.executable, "-m", "devstack.worker", "--state-dir", str(state_dir), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--api-key", help="the key to report with (default: the stack's dev key)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--task", action="append", dest="tasks", help=f"a task to serve (default: {DEMO_TASKS})"
    )
    parser.add_argument("--seconds", type=float, default=0.5, help="how long a task sleeps by default")
    parser.add_argument("--wait", type=int, default=1, help="SQS long-poll seconds (short, to stop promptly)")
    args = parser.parse_args(argv)

    info = read_stack(args.state_dir)
    if info is None:
        print(f"no running stack in {args.state_dir}", file=sys.stderr)
        return 1
    sqs = boto3.client(
        "sqs",
        endpoint_url=info["awsEndpointUrl"],
        region_name=info.get("region", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )
    handle = sleeper(args.seconds)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Sluice(info["apiUrl"], args.api_key or info["apiKey"]) as client:
        worker = Worker(
            client,
            info["queueUrls"]["RunQueue"],
            {task: handle for task in args.tasks or DEMO_TASKS},
            sqs=sqs,
            concurrency=args.concurrency,
            wait_s=args.wait,
        )
        print(f"worker {os.getpid()} serving {sorted(worker.handlers)}", flush=True)
        try:
            worker.run(stop)
        except KeyboardInterrupt:
            stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
