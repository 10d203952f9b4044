"""Does a stream's records read tell a foreign stream from a missing one by time? On devstack, the
median of N reads of ``GET /realtime/v1/streams/{run}/out/records`` (and the session channel's)
with another tenant's API key: the owner's real stream (with records) beside a run id that does
not exist, interleaved (which goes first alternating) so that drift hits both alike. Two other
tenants: an organization whose environment has the owner's id, and another environment of the
owner's organization.

Neither read touches Redis (the ownership check, one RunsTable/SessionsTable GetItem, refuses
first; tests/unit/test_tenant_isolation.py counts the commands): both run one GetItem, of an item
that exists and of one that does not. Beside them, that GetItem sent straight to devstack's moto
for both, to show how much of any gap the emulator's own read accounts for. On a shared machine
the ratios scatter on both sides of 1 from run to run.

    .venv/bin/python -m bench.foreign_read_timing [--reads 25]
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from devstack.testing.launcher import start_devstack

MISSING_RUN = "run_" + "0" * 25
MISSING_SESSION = "session_" + "0" * 25


def _timed(http: httpx.Client, path: str, headers: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    res = http.get(path, headers=headers)
    return (time.perf_counter() - start) * 1000, res.status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=25)
    args = parser.parse_args()
    with start_devstack(args=["--no-schedules"]) as stack:
        owner = stack.headers
        others = {
            "other org, same env id": stack.create_key("org_bench_other", stack.env_id),
            "other env, same org": stack.create_key(stack.org_id, "env_bench_other"),
        }
        with httpx.Client(base_url=stack.api_url, timeout=30) as http:
            run = http.post("/api/v1/tasks/bench/trigger", json={"payload": {}}, headers=owner).json()["id"]
            token = http.put(f"/realtime/v1/streams/{run}/out", headers=owner).json()["token"]
            body = {"type": "chat", "taskId": "bench"}
            session = http.post("/api/v1/sessions", json=body, headers=owner).json()["id"]
            channel = http.put(f"/realtime/v1/sessions/{session}/out", headers=owner).json()["token"]
            for i in range(20):
                auth = {"authorization": f"Bearer {token}"}
                http.post(
                    f"/realtime/v1/streams/{run}/out/append", json={"i": i}, headers=auth
                ).raise_for_status()
                auth = {"authorization": f"Bearer {channel}"}
                http.post(f"/realtime/v1/sessions/{session}/out/append", json={"i": i}, headers=auth)
            routes = {
                "run stream": ("/realtime/v1/streams/{}/out/records", run, MISSING_RUN),
                "session out": ("/realtime/v1/sessions/{}/out/records", session, MISSING_SESSION),
            }
            print(f"records read with another tenant's key on devstack, median of {args.reads} each")
            print(
                f"  {'route':<12} {'caller':<24} {'foreign ms':>10} {'missing ms':>10} {'ratio':>6}  statuses"
            )
            for route, (template, real, missing) in routes.items():
                for caller, key in others.items():
                    headers = {"authorization": f"Bearer {key}"}
                    _timed(http, template.format(missing), headers)  # warm the key's auth cache
                    foreign_ms: list[float] = []
                    missing_ms: list[float] = []
                    statuses: set[tuple[str, int]] = set()
                    for i in range(args.reads):
                        # Alternate which goes first, so that a slower first request of a pair
                        # (a worker waking up) weighs on both alike.
                        pair = [("foreign", real, foreign_ms), ("missing", missing, missing_ms)]
                        for name, ref, times in pair if i % 2 == 0 else pair[::-1]:
                            ms, status = _timed(http, template.format(ref), headers)
                            times.append(ms)
                            statuses.add((name, status))
                    f, m = statistics.median(foreign_ms), statistics.median(missing_ms)
                    print(
                        f"  {route:<12} {caller:<24} {f:>10.1f} {m:>10.1f} {f / m:>6.2f}  {sorted(statuses)}"
                    )
        ddb, table = stack.client("dynamodb"), stack.table("RunsTable")

        def get_item(run_id: str) -> float:
            start = time.perf_counter()
            ddb.get_item(TableName=table, Key={"runId": {"S": run_id}}, ConsistentRead=True)
            return (time.perf_counter() - start) * 1000

        hit = statistics.median(get_item(run) for _ in range(args.reads))
        miss = statistics.median(get_item(MISSING_RUN) for _ in range(args.reads))
        print(
            f"  RunsTable GetItem straight to devstack's moto: existing {hit:.1f} ms, missing {miss:.1f} ms"
        )


if __name__ == "__main__":
    main()
