"""Trigger latency through the real handler with the gate off / on (under threshold) / on (tripped),
and Lua calls per second (trip evaluator, accept) against a plain SET on the same Redis.

    .venv/bin/python -m bench.mollifier_intake [--triggers 400] [--calls 5000]

Figures and ratios only; nothing here passes or fails on speed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from datetime import UTC, datetime

import redis

from bench.mollifier_common import configure, handler_for, local_stack, pct
from devstack.apigw import Route, http_event
from sluice.auth import provision_key
from sluice.engine import TriggerBody, new_run_id
from sluice.mollifier import get_buffer
from sluice.mollifier.models import Snapshot

ROUNDS = 4


def trigger_latencies(handle: object, api_key: str, count: int) -> list[float]:
    route = Route("POST", "/api/v1/tasks/{taskId}/trigger", "trigger_intake")
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
    body = b'{"payload": {"n": 1}, "options": {"tags": ["bench"]}}'
    out = []
    for _ in range(count):
        event = http_event(route, "/api/v1/tasks/hello/trigger", {"taskId": "hello"}, headers, body=body)
        start = time.perf_counter()
        response = handle(event)  # type: ignore[operator]
        out.append((time.perf_counter() - start) * 1000)
        assert response["statusCode"] == 200, response
    return out


def calls_per_second(fn: object, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        fn(i)  # type: ignore[operator]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=400)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    with local_stack() as (stack, redis_url, _):
        handle = handler_for(stack, "trigger_intake")
        api_key = provision_key("org_bench", "env_bench", flags={"mollifierEnabled": True})
        modes: dict[str, dict[str, bool | int]] = {
            "gate off (SLUICE_MOLLIFIER_ENABLED=false)": {"mollifier_enabled": False},
            "gate on, under threshold (pass through)": {
                "mollifier_enabled": True,
                "mollifier_trip_threshold": 10**9,
            },
            "gate on, tripped (mollify)": {"mollifier_enabled": True, "mollifier_trip_threshold": 0},
        }
        samples: dict[str, list[float]] = {label: [] for label in modes}
        # Interleaved rounds, so that moto's tables growing during the run weigh on every mode alike;
        # the decision metric's EMF lines go to a buffer, not the terminal.
        with contextlib.redirect_stdout(io.StringIO()):
            for round_ in range(ROUNDS + 1):
                for label, settings in modes.items():
                    configure(**settings)
                    lat = trigger_latencies(handle, api_key, args.triggers // ROUNDS)
                    if round_:  # round 0 warms clients, scripts and the auth cache
                        samples[label].extend(lat)
        rows = [(label, pct(lat, 50), pct(lat, 99)) for label, lat in samples.items()]
        base50, base99 = rows[0][1], rows[0][2]
        print(
            f"Trigger latency through the handler, {args.triggers} sequential triggers "
            "(moto in-process, local redis-server)"
        )
        for label, p50, p99 in rows:
            print(
                f"  {label:45s} p50 {p50:6.2f} ms ({p50 / base50:4.2f}x)"
                f"   p99 {p99:6.2f} ms ({p99 / base99:4.2f}x)"
            )

        buffer = get_buffer()
        plain = redis.Redis.from_url(redis_url, decode_responses=True)
        snapshot = Snapshot(taskId="hello", envType="DEVELOPMENT", body=TriggerBody(payload={"n": 1}))
        now = datetime.now(UTC)
        set_rate = calls_per_second(lambda i: plain.set(f"bench:set:{i}", "x"), args.calls)
        trip_rate = calls_per_second(
            lambda i: buffer.evaluate_trip(
                "org_bench", "env_bench", window_ms=200, threshold=100, hold_ms=500
            ),
            args.calls,
        )
        accept_rate = calls_per_second(
            lambda i: buffer.accept(
                run_id=new_run_id(),
                org_id="org_bench",
                env_id=f"env_{i % 20}",
                snapshot=snapshot,
                created_at=now,
            ),
            args.calls,
        )
        print(f"\nRedis calls per second, {args.calls} sequential calls on one connection")
        print(f"  plain SET            {set_rate:9.0f}/s  1.00x")
        print(f"  evaluate_trip (Lua)  {trip_rate:9.0f}/s  {trip_rate / set_rate:4.2f}x of SET")
        print(f"  accept (Lua)         {accept_rate:9.0f}/s  {accept_rate / set_rate:4.2f}x of SET")


if __name__ == "__main__":
    main()
