"""devstack keeps itself healthy: children that die come back (with what they held), RunQueue is
drained by the stand-in consumer, and ``status`` says so."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from devstack.testing.launcher import DevStack, start_devstack

pytestmark = pytest.mark.devstack


def _wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} not seen within {timeout:.0f}s")


def _status(stack: DevStack) -> dict[str, Any]:
    done = stack.cli("status")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _trigger(stack: DevStack, task: str = "health", api_key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else stack.headers
    return httpx.post(
        stack.url(f"/api/v1/tasks/{task}/trigger"), headers=headers, json={"payload": {}}, timeout=30
    )


def _secrets(stack: DevStack) -> dict[str, str]:
    client = stack.client("secretsmanager")
    names = [s["Name"] for s in client.list_secrets()["SecretList"]]
    return {name: client.get_secret_value(SecretId=name)["SecretString"] for name in names}


def _consumed(stack: DevStack, run_ids: set[str]) -> bool:
    return run_ids <= set((stack.health() or {}).get("runQueue", {}).get("recentRunIds", []))


@pytest.fixture(scope="module")
def consuming() -> Iterator[DevStack]:
    """A stack whose RunQueue the stand-in consumer drains, shared by this module's tests (the
    restart test, which kills its children, comes last)."""
    with start_devstack(args=["--no-schedules", "--concurrency", "2", "--run-consumer", "count"]) as stack:
        yield stack


def test_run_queue_consumer_drains_and_counts(consuming: DevStack) -> None:
    stack = consuming
    run_ids = [_trigger(stack, "consumed").json()["id"] for _ in range(3)]

    def consumed() -> dict[str, Any] | None:
        run_queue = (stack.health() or {}).get("runQueue", {})
        return run_queue if set(run_ids) <= set(run_queue.get("recentRunIds", [])) else None

    stats = _wait_for(consumed, what="the runs consumed")
    assert stats["consumer"] == "count" and stats["consumed"] >= 3
    assert stack.queue_depth("RunQueue") == (0, 0)
    assert _status(stack)["health"]["runQueue"]["consumed"] >= 3


def test_killed_children_are_restarted_with_their_state_and_reported(consuming: DevStack) -> None:
    stack = consuming
    # Made before the restarts, first used after them (a function caches the keys it has seen).
    made_key = stack.create_key("org_health", "env_health")
    first = {_trigger(stack).json()["id"]}
    _wait_for(lambda: _consumed(stack, first), what="the run before the restarts dispatched")
    secrets = _secrets(stack)
    before = _status(stack)["health"]
    assert before["state"] == "up" and secrets
    for child in ("redis-server", "moto"):
        old_pid = before["children"][child]["pid"]
        os.kill(old_pid, signal.SIGKILL)
        restarted = _wait_for(
            lambda child=child: (c := _status(stack)["health"]["children"][child])["restarts"] == 1 and c,
            what=f"{child} restarted",
        )
        assert restarted["state"] == "up" and restarted["pid"] != old_pid
    # moto came back empty: the stack put its tables, queues, the dev key and the key that
    # `keys create` made back, and says so.
    restored = _status(stack)["health"]["children"]["moto"]["restored"]
    assert restored["tables"] >= 1 and restored["queues"] >= 1 and restored["apiKeyItems"] >= 2
    assert _secrets(stack) == secrets  # stream tokens signed before the restart stay valid
    res = _trigger(stack)
    assert res.status_code == 200, res.text
    run = httpx.get(stack.url(f"/api/v1/runs/{res.json()['id']}"), headers=stack.headers, timeout=30)
    assert run.status_code == 200, run.text
    made = _trigger(stack, api_key=made_key)
    assert made.status_code == 200, made.text
    # The dispatcher reads the new table's stream from its start: the runs reach RunQueue.
    after = {res.json()["id"], made.json()["id"]}
    _wait_for(lambda: _consumed(stack, after), what="the runs after the restart dispatched")
    assert "exited with status" in stack.log()


def test_without_a_consumer_run_queue_keeps_its_messages(devstack: DevStack) -> None:
    # The session stack (as every launcher stack unless asked) leaves RunQueue to the tests. A
    # stack writes its health half a second after it is ready: this may be the stack's first test.
    health = _wait_for(devstack.health, what="the stack's health")
    assert health["runQueue"] == {"consumer": "none"}
