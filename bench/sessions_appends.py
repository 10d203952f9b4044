"""What a session channel append costs, side by side: ``out`` (token check and one Redis script),
``in`` while the session's run is alive (plus the session and run reads that decide it), and ``in``
when the run has died (plus triggering and claiming the continuation run). Prints median and p95
per append and the ratios to ``out``; never passes or fails on speed.

    .venv/bin/python bench/sessions_appends.py

In-process: moto with template.yaml's resources, a real redis-server, the layer's own calls. The
``in`` figures are mostly moto's DynamoDB (about 10 ms a call here, a few ms on AWS).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "layers/sluice"),
]

import boto3  # noqa: E402

from bench.mollifier_common import local_stack, pct  # noqa: E402
from devstack.provision import create_secrets  # noqa: E402
from devstack.template import REGION  # noqa: E402
from sluice.auth import Environment, provision_key  # noqa: E402
from sluice.engine import lifecycle  # noqa: E402
from sluice.sessions import realtime, service, table  # noqa: E402
from sluice.sessions.records import CreateSession  # noqa: E402

APPENDS = 300
CONTINUATIONS = 100
CHUNK = json.dumps({"type": "text-delta", "id": "t1", "delta": "word "}).encode()


def timed(
    count: int, append: Callable[[int], object], between: Callable[[], object] = lambda: None
) -> list[float]:
    timings = []
    for n in range(count):
        between()
        started = time.perf_counter()
        append(n)
        timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    with local_stack() as (stack, _, _clients):
        create_secrets(stack, boto3.client("secretsmanager", region_name=REGION))
        env = Environment(org_id="org_bench", env_id="env_bench")
        api_key = provision_key(env.org_id, env.env_id)
        session, _ = service.create_session(env, CreateSession(type="chat", taskId="chat-agent"))
        tokens = {
            io: realtime.mint(env, api_key, session.id, io, api_base="http://bench").token
            for io in ("in", "out")
        }

        def append(io: str) -> Callable[[int], object]:
            return lambda n: realtime.append(
                tokens[io], session.id, io, CHUNK, "application/json", part_id=f"{io}-{time.time_ns()}-{n}"
            )

        def end_current_run() -> None:
            current = table.get_session_item(session.id)
            assert current is not None and current.currentRunId is not None
            # Ended through the engine, as a cancel from the API would; no live run is left.
            assert lifecycle.cancel(env, current.currentRunId) is not None

        rows = {
            "out": timed(APPENDS, append("out")),
            "in, run alive": timed(APPENDS, append("in")),
            "in, starts continuation": timed(CONTINUATIONS, append("in"), end_current_run),
        }
        runs_started = (table.get_session_item(session.id) or session).currentRunVersion - 1
    base = statistics.median(rows["out"])
    print(f"{'append':<26} {'n':>5} {'median ms':>10} {'p95 ms':>8} {'x out':>6}")
    for name, values in rows.items():
        median, p95 = statistics.median(values), pct(values, 95)
        print(f"{name:<26} {len(values):>5} {median * 1000:>10.2f} {p95 * 1000:>8.2f} {median / base:>6.1f}")
    print(f"continuation runs started: {runs_started} (one per append after a dead run)")


if __name__ == "__main__":
    main()
