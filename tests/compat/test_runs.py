"""``runs.retrieve`` of the trigger.dev SDK: its zod schema accepts Sluice's answer, and the run
it describes is the one the user triggered."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.compat.conftest import CompatTenant, Received, SdkError, unique

pytestmark = [pytest.mark.compat, pytest.mark.devstack]


def retrieve_until(compat: CompatTenant, run_id: str, status: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        run: dict[str, Any] = compat.sdk("runs.retrieve", run_id)
        if run["status"] == status or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def test_a_completed_run_as_the_sdk_reads_it(compat: CompatTenant, worker: Received) -> None:
    key = unique("retrieve")
    payload = {"to": "ada@example.com", "at": {"$date": "2026-05-06T07:08:09.000Z"}}
    handle = compat.sdk("tasks.trigger", "compat-echo", payload, {"tags": ["t1"], "idempotencyKey": key})
    worker.wait_for(handle["id"])

    run = retrieve_until(compat, handle["id"], "COMPLETED")
    assert run["id"] == handle["id"] and run["status"] == "COMPLETED"
    assert run["taskIdentifier"] == "compat-echo"
    flags = (run["isCompleted"], run["isSuccess"], run["isFailed"], run["isQueued"])
    assert flags == (True, True, False, False)
    assert run["tags"] == ["t1"] and run["attemptCount"] == 1
    assert run["payload"] == {"to": "ada@example.com", "at": "2026-05-06T07:08:09.000Z"}
    assert run["output"] == {"received": handle["id"]}
    assert run["depth"] == 0 and run["triggerFunction"] == "trigger" and run["relatedRuns"] == {}
    # The SDK turns the dates into Date objects (zod coerces them).
    assert {"$date"} == set(run["createdAt"]) == set(run["updatedAt"]) == set(run["finishedAt"])
    assert run["durationMs"] >= 0


def test_a_queued_run_and_an_unknown_one(compat: CompatTenant) -> None:
    handle = compat.sdk("tasks.trigger", "compat-other", {"n": 1}, {"delay": "1h"})
    run = compat.sdk("runs.retrieve", handle["id"])
    assert run["status"] == "DELAYED" and run["isQueued"] is True and run["isCompleted"] is False
    assert set(run["delayedUntil"]) == {"$date"}

    with pytest.raises(SdkError) as missing:
        compat.sdk("runs.retrieve", "run_doesnotexist0000000000000")
    assert missing.value.status == 404
