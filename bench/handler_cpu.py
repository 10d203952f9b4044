"""Handler overhead: the CPU one trigger costs inside ``trigger_intake``'s handler, split into
Sluice's own (resolver, auth, validation, ids, the run item, logging) and the AWS call (botocore's
client pipeline), before and after side by side (``bench.baseline``).

The handler runs in-process on an API Gateway v2 event, warm (its API key cached, its clients
made), with AWS stubbed (``bench.stub_aws``: no moto, no network), so the CPU is all Sluice and
botocore. The AWS share is the CPU spent inside botocore's ``_make_api_call``; Sluice's is the
rest. Figures are per trigger, the best of ROUNDS rounds of TRIGGERS triggers.

    .venv/bin/python -m bench.handler_cpu [--baseline <ref>]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from botocore.client import BaseClient

from bench.baseline import before_and_after
from bench.mollifier_common import configure, handler_for, local_stack
from bench.stub_aws import stubbed
from devstack.apigw import Route, http_event
from sluice.auth import provision_key

TRIGGERS = 300
ROUNDS = 5
ROUTE = Route("POST", "/api/v1/tasks/{taskId}/trigger", "TriggerIntakeFunction")
BODIES = {
    "plain": {"payload": {"order": 7, "items": ["a", "b"], "note": "x" * 200}},
    "keyed": {"payload": {"order": 7}, "options": {"idempotencyKey": "k", "tags": ["shop"]}},
}


@contextmanager
def aws_cpu() -> Iterator[list[float]]:
    """CPU seconds spent inside botocore's API calls while inside (this thread only calls them)."""
    spent = [0.0]
    # botocore-stubs leave out this private method, which every API call of every client goes through.
    real = BaseClient._make_api_call  # type: ignore[attr-defined]

    def timed(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        start = time.process_time()
        try:
            return real(self, operation, params)
        finally:
            spent[0] += time.process_time() - start

    with patch.object(BaseClient, "_make_api_call", timed):
        yield spent


def child() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()), local_stack() as (stack, _, __):
        # The key stays cached however slowly the rounds run (a warm function's steady state).
        configure(auth_cache_ttl_s=3600)
        key = provision_key("org_bench", "env_bench")
        handler = handler_for(stack, "TriggerIntakeFunction")
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        for name, body in BODIES.items():
            event = http_event(
                ROUTE,
                "/api/v1/tasks/hello/trigger",
                {"taskId": "hello"},
                headers,
                body=json.dumps(body).encode(),
            )
            assert handler(event)["statusCode"] == 200  # warm, with moto: the key is now cached
            best = (float("inf"), 0.0)
            with stubbed():
                for _ in range(ROUNDS):
                    with aws_cpu() as spent:
                        start = time.process_time()
                        for _ in range(TRIGGERS):
                            response = handler(event)
                        total = time.process_time() - start
                    assert response["statusCode"] == 200, response
                    best = min(best, (total, spent[0]))
            total, in_aws = best
            figures[name] = {"total_ms": total * 1000 / TRIGGERS, "aws_ms": in_aws * 1000 / TRIGGERS}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", help="the commit to compare with (default: merge-base with main)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child()))
        return
    before, after, short = before_and_after("bench.handler_cpu", [], args.baseline)
    print(f"trigger_intake CPU per trigger, ms, AWS stubbed (before = {short}, after = this tree)")
    head = f"{'Sluice before':>14} {'after':>7} {'ratio':>6}   {'botocore before':>16} {'after':>7}"
    print(f"{'trigger':<8} {head}")
    for name, now in after.items():
        was = before[name]
        own_was, own_now = was["total_ms"] - was["aws_ms"], now["total_ms"] - now["aws_ms"]
        print(
            f"{name:<8} {own_was:>14.3f} {own_now:>7.3f} {own_now / own_was:>6.2f}   "
            f"{was['aws_ms']:>16.3f} {now['aws_ms']:>7.3f}"
        )
    print(json.dumps({"before": before, "after": after}))


if __name__ == "__main__":
    main()
