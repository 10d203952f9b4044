"""The CPU cost per request of Powertools' Tracer and Metrics, side by side with them off.

Each variant runs in a process of its own (the Tracer patches botocore once per process, when it
is made): trigger_intake's handler serves ``POST /api/v1/tasks/{taskId}/trigger`` (authenticate,
create the run in DynamoDB on moto, in process) REQUESTS times after a warm-up, and the process's
CPU time per request is printed with the difference to the variant with both off. "Tracer on"
is the Tracer as in Lambda: a sampled trace id, the X-Ray SDK's Lambda context, a subsegment per
invocation and per AWS call, each sent as UDP to the daemon address (nothing listens here, as
sending does not wait for one). "Metrics on" prints the invocation's EMF line (to /dev/null).
The variants alternate over ROUNDS rounds; the figure is each variant's median round.

    .venv/bin/python -m bench.observability [--requests 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "both off": (False, False),
    "Tracer on": (True, False),
    "Metrics on": (False, True),
    "both on": (True, True),
}
WARM_UP = 30
# A sampled trace, as Lambda sets for an invocation under Active tracing.
TRACE_ID = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def configure(tracer: bool, metrics: bool) -> None:
    """The environment Powertools reads when the layer is imported: before any sluice import."""
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "false" if tracer else "true"
    os.environ["POWERTOOLS_METRICS_NAMESPACE"] = "Sluice/bench"
    if tracer:
        os.environ.pop("AWS_SAM_LOCAL", None)
        os.environ.update(
            {
                "LAMBDA_TASK_ROOT": tempfile.gettempdir(),
                "AWS_LAMBDA_FUNCTION_NAME": "TriggerIntakeFunction",
                "_X_AMZN_TRACE_ID": TRACE_ID,
                "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
                "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            }
        )


def measure(tracer: bool, metrics: bool, requests: int) -> dict[str, float]:
    configure(tracer, metrics)
    from bench.mollifier_common import handler_for, local_stack
    from devstack.apigw import Route, http_event
    from sluice.auth import provision_key

    with local_stack() as (stack, _, _):
        # local_stack turns metrics off for the other benches; Powertools reads this at flush.
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "false" if metrics else "true"
        key = provision_key("org_bench", "env_bench")
        handler = handler_for(stack, "trigger_intake")
        route = Route("POST", "/api/v1/tasks/{taskId}/trigger", "TriggerIntakeFunction")
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        body = json.dumps({"payload": {"n": 1}}).encode()

        def call() -> None:
            event = http_event(route, "/api/v1/tasks/bench/trigger", {"taskId": "bench"}, headers, body=body)
            answer = handler(event)
            assert answer["statusCode"] == 200, answer

        for _ in range(WARM_UP):
            call()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            call()
        return {
            "cpu_ms": (time.process_time() - cpu) * 1000 / requests,
            "wall_ms": (time.perf_counter() - wall) * 1000 / requests,
        }


def child(args: argparse.Namespace) -> int:
    tracer, metrics = VARIANTS[args.variant]
    result = measure(tracer, metrics, args.requests)
    Path(args.out).write_text(json.dumps(result))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return child(args)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name in VARIANTS:
                out = Path(tmp) / f"{round_}-{name}.json"
                # Powertools warns once per process when an invocation has no metrics (metrics off).
                argv = [
                    sys.executable,
                    "-W",
                    "ignore::UserWarning",
                    "-m",
                    "bench.observability",
                    "--variant",
                    name,
                    "--out",
                    str(out),
                    "--requests",
                    str(args.requests),
                ]
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
                runs[name].append(json.loads(out.read_text()))
    base = statistics.median(r["cpu_ms"] for r in runs["both off"])
    print(
        f"trigger_intake POST trigger, {args.requests} requests x {args.rounds} rounds, CPU per request "
        "(median round; moto in process counts too):"
    )
    print(f"  {'variant':12} {'CPU ms':>8} {'+CPU us':>8} {'ratio':>6} {'wall ms':>8}")
    for name, results in runs.items():
        cpu = statistics.median(r["cpu_ms"] for r in results)
        wall = statistics.median(r["wall_ms"] for r in results)
        print(f"  {name:12} {cpu:8.3f} {(cpu - base) * 1000:8.0f} {cpu / base:6.2f} {wall:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
