"""The burst-smoothing demo: a heavy organization and a light one trigger at once against a running
devstack; watch the decisions, the buffer, the drain, and the light organization finish early.

    SLUICE_MOLLIFIER_ENABLED=true SLUICE_MOLLIFIER_TRIP_THRESHOLD=2 SLUICE_MOLLIFIER_TRIP_WINDOW_MS=1000 \\
    SLUICE_MOLLIFIER_HOLD_MS=2000 python -m devstack up --state-dir .devstack/demo --detach
    python -m devstack.demos.burst --state-dir .devstack/demo

The low threshold and long window suit devstack, which answers tens of triggers a second, not
thousands: the heavy organization's environments trip and buffer, the light one mostly passes.

``run_burst_demo(api_url, create_key)`` is the same from Python (``create_key(org, env, **flags)``
returns an API key, e.g. ``DevStack.create_key`` of tests/devstack_fixtures.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

CreateKey = Callable[..., str]
BAR_WIDTH = 40


@dataclass
class DemoResult:
    decisions: Counter[str] = field(default_factory=Counter)
    run_ids: dict[str, list[str]] = field(default_factory=dict)  # org -> run ids
    materialised_at: dict[str, float] = field(default_factory=dict)  # run id -> seconds after the burst

    def last_materialised(self, org: str) -> float:
        return max(self.materialised_at[run_id] for run_id in self.run_ids[org])


def _bar(done: int, total: int) -> str:
    filled = BAR_WIDTH * done // max(total, 1)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}"


def run_burst_demo(
    api_url: str,
    create_key: CreateKey,
    *,
    heavy: int = 600,
    heavy_envs: int = 5,
    light: int = 30,
    concurrency: int = 32,
    timeout_s: float = 600,
    out: TextIO = sys.stdout,
) -> DemoResult:
    """Fire the burst, then poll ``GET /api/v1/runs/{id}`` until every run has materialised."""
    heavy_keys = [
        create_key("org_demo_heavy", f"env_heavy_{i:02}", mollifierEnabled=True) for i in range(heavy_envs)
    ]
    light_key = create_key("org_demo_light", "env_light", mollifierEnabled=True)
    # The light organization's triggers are spread through the heavy burst, not sent after it.
    plan = [("org_demo_heavy", heavy_keys[i % heavy_envs]) for i in range(heavy)]
    step = max(1, heavy // light)
    for i in range(light):
        plan.insert(min(len(plan), i * (step + 1)), ("org_demo_light", light_key))
    result = DemoResult(run_ids={"org_demo_heavy": [], "org_demo_light": []})
    keys_of: dict[str, str] = {}

    with httpx.Client(base_url=api_url, timeout=30, limits=httpx.Limits(max_connections=concurrency)) as http:

        def fire(item: tuple[str, str]) -> tuple[str, str, dict[str, Any]]:
            org, key = item
            res = http.post(
                "/api/v1/tasks/demo/trigger",
                json={"payload": {"org": org}},
                headers={"authorization": f"Bearer {key}"},
            )
            res.raise_for_status()
            return org, key, res.json()

        out.write(
            f"Firing {heavy} triggers from org_demo_heavy ({heavy_envs} envs), {light} from org_demo_light\n"
        )
        started = time.monotonic()
        with ThreadPoolExecutor(concurrency) as pool:
            for org, key, body in pool.map(fire, plan):
                outcome = (
                    "cached" if body["isCached"] else ("buffered" if "notice" in body else "passed through")
                )
                result.decisions[outcome] += 1
                result.run_ids[org].append(body["id"])
                keys_of[body["id"]] = key
        burst_s = time.monotonic() - started
        out.write(
            f"Burst answered in {burst_s:.1f} s. Decisions: "
            + ", ".join(f"{name} {count}" for name, count in sorted(result.decisions.items()))
            + "\n"
        )
        out.write(
            f"Buffered (answered from Redis, run created by the drainer): {result.decisions['buffered']}\n"
        )

        def materialised(run_id: str) -> bool:
            res = http.get(f"/api/v1/runs/{run_id}", headers={"authorization": f"Bearer {keys_of[run_id]}"})
            return res.status_code == 200 and res.json().get("buffered") is False

        pending = set(keys_of)
        total = len(keys_of)
        light_done_reported = False
        deadline = time.monotonic() + timeout_s
        with ThreadPoolExecutor(concurrency) as pool:
            while pending and time.monotonic() < deadline:
                checked = list(pending)
                for run_id, done in zip(checked, pool.map(materialised, checked), strict=True):
                    if done:
                        pending.discard(run_id)
                        result.materialised_at[run_id] = time.monotonic() - started
                light_left = sum(r in pending for r in result.run_ids["org_demo_light"])
                out.write(f"\rdrain {_bar(total - len(pending), total)}  light org left: {light_left:3d} ")
                out.flush()
                if not light_left and not light_done_reported:
                    light_done_reported = True
                    out.write(
                        f"\n  org_demo_light fully materialised at {time.monotonic() - started:.1f} s, "
                        f"with {len(pending)} heavy runs still buffered\n"
                    )
                time.sleep(0.5)
        out.write("\n")
    if pending:
        out.write(f"{len(pending)} runs had not materialised after {timeout_s:.0f} s\n")
        return result
    heavy_last = result.last_materialised("org_demo_heavy")
    light_last = result.last_materialised("org_demo_light")
    out.write(
        f"Last run materialised: org_demo_light {light_last:.1f} s, org_demo_heavy {heavy_last:.1f} s "
        f"({light_last / heavy_last:.0%} of the heavy org's time)\n"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Burst-smoothing demo against a running devstack.")
    parser.add_argument("--state-dir", type=Path, default=Path(".devstack"))
    parser.add_argument("--heavy", type=int, default=600)
    parser.add_argument("--heavy-envs", type=int, default=5)
    parser.add_argument("--light", type=int, default=30)
    args = parser.parse_args(argv)

    from devstack.attach import running_stack, use_stack_in_process

    info = running_stack(args.state_dir)
    use_stack_in_process(info, None)
    from sluice.auth import provision_key

    def create_key(org: str, env: str, **flags: Any) -> str:
        return provision_key(org, env, flags=flags)

    result = run_burst_demo(
        str(info["apiUrl"]), create_key, heavy=args.heavy, heavy_envs=args.heavy_envs, light=args.light
    )
    return 0 if len(result.materialised_at) == sum(result.decisions.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
