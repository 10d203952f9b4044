"""The trigger.dev v4 SDK, unmodified, against devstack: ``make test-compat``.

Each test drives the real ``@trigger.dev/sdk`` (pinned by package-lock.json, installed by
``npm ci`` in this directory) through ``sdk.mjs``, one node process per SDK call, and asserts what
happened on Sluice's side: what a worker received, what the run holds, what was deduplicated.
Every module here is marked ``compat`` (``pytestmark``) and runs only in ``make test-compat``
(``make test`` needs no node).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack.testing.launcher import DevStack
from sluice_client import Sluice
from sluice_client.worker import TaskRun, Worker

HERE = Path(__file__).parent
SDK_TIMEOUT_S = 120


class SdkError(Exception):
    """What the SDK raised: ``status`` and ``body`` of an ApiError, its name and message."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('name')}: {error.get('message')}")
        self.name = error.get("name")
        self.status = error.get("status")
        self.body = error.get("body")
        self.headers = error.get("headers") or {}


SdkCall = Callable[..., Any]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``backlog`` leave thousands of runs on RunQueue: they run last, so that the
    session worker's backlog does not hold up what the other tests wait for."""
    items.sort(key=lambda item: item.get_closest_marker("backlog") is not None)


@pytest.fixture(scope="session")
def node_sdk() -> Path:
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "@trigger.dev" / "sdk").is_dir():
        pytest.fail("tests/compat needs node >= 20 and `npm ci` in tests/compat (make test-compat does both)")
    return Path(node)


@dataclass
class CompatTenant:
    stack: DevStack
    api_key: str
    client: Sluice

    def sdk(self, call: str, *args: Any, api_key: str | None = None, timeout_s: float = SDK_TIMEOUT_S) -> Any:
        """``call`` (an SDK function, e.g. "tasks.trigger") with ``args``; its value, or SdkError."""
        request = {"baseURL": self.stack.api_url, "accessToken": api_key or self.api_key, "args": list(args)}
        done = subprocess.run(
            ["node", str(HERE / "sdk.mjs"), call],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            cwd=HERE,
            timeout=timeout_s,
            check=False,  # the exit status is checked below, with node's stderr in the message
        )
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise AssertionError(f"node sdk.mjs {call} exited {done.returncode}: {done.stderr[-4000:]}")
        answer = json.loads(lines[-1])
        if not answer["ok"]:
            raise SdkError(answer["error"])
        return answer["value"]


@pytest.fixture(scope="session")
def compat(devstack: DevStack, node_sdk: Path) -> Iterator[CompatTenant]:
    """A tenant of the session's stack of its own, with the SDK and Sluice's Python client."""
    key = devstack.create_key("org_compat", f"env_{uuid.uuid4().hex[:8]}")
    with Sluice(devstack.api_url, key) as client:
        yield CompatTenant(devstack, key, client)


@dataclass
class Received:
    """What the worker was handed, by run id."""

    runs: dict[str, TaskRun] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def handler(self, task: TaskRun) -> Any:
        with self.changed:
            self.runs[task.id] = task
            self.changed.notify_all()
        return {"received": task.id}

    def wait_for(self, run_id: str, timeout_s: float = 60) -> TaskRun:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while run_id not in self.runs:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no worker received {run_id} within {timeout_s} s")
                self.changed.wait(left)
            return self.runs[run_id]


COMPAT_TASKS = ("compat-echo", "compat-other")


@pytest.fixture(scope="session")
def worker(compat: CompatTenant) -> Iterator[Received]:
    """Sluice's Python worker on RunQueue, serving the compat tasks: it records what it receives."""
    received = Received()
    stop = threading.Event()
    worker = Worker(
        compat.client,
        compat.stack.queue_url("RunQueue"),
        dict.fromkeys(COMPAT_TASKS, received.handler),
        sqs=compat.stack.client("sqs"),
        concurrency=4,
        wait_s=1,
    )
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    yield received
    stop.set()
    thread.join(30)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
