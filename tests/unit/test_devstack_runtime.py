"""devstack's worker pools: how a pool grows under concurrent invocations."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.runtime import FunctionRuntime, Invocation
from devstack.template import FunctionSpec

# Far longer than an invocation, so that the order of events below does not hang on timing.
IMPORT_S = 2.5
INVOCATION_S = 0.3


@pytest.fixture
def slow_import_runtime(tmp_path: Path) -> Iterator[FunctionRuntime]:
    """A pool of three workers of a handler whose import (the cold start) takes IMPORT_S."""
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            f"""
            import os
            import time

            time.sleep({IMPORT_S})


            def handler(event, context):
                time.sleep({INVOCATION_S})
                return {{"pid": os.getpid(), "name": event["name"]}}
            """
        )
    )
    spec = FunctionSpec("SlowImport", tmp_path, "app.handler", timeout=30, memory=128, environment={})
    runtime = FunctionRuntime(spec, {}, size=3)
    assert runtime.warm() is None
    yield runtime
    runtime.close()


def test_invocations_wait_for_a_warm_worker_rather_than_start_a_second_cold_start(
    slow_import_runtime: FunctionRuntime,
) -> None:
    runtime = slow_import_runtime
    results: dict[str, Invocation] = {}

    def invoke(name: str) -> None:
        results[name] = runtime.invoke({"name": name})

    threads = {name: threading.Thread(target=invoke, args=(name,)) for name in ("busy", "cold", "next")}
    threads["busy"].start()  # takes the warm worker
    time.sleep(INVOCATION_S / 3)
    threads["cold"].start()  # no idle worker: starts one, and waits for its import
    time.sleep(INVOCATION_S / 3)
    threads["next"].start()  # a cold start runs already: waits for the first worker to be idle
    for thread in threads.values():
        thread.join(60)
    assert all(outcome.ok for outcome in results.values()), results
    pids = {name: outcome.result["pid"] for name, outcome in results.items()}
    # "next" ran on the warm worker once "busy" was done, not on a third cold start.
    assert pids["next"] == pids["busy"] != pids["cold"]
