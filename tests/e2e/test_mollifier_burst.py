"""End to end on devstack: a burst of concurrent triggers with a low trip threshold, part of it
buffered and drained through DrainQueue, becomes exactly one run per trigger."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from devstack.testing.launcher import DevStack
from tests.devstack_fixtures import StartDevstack

TRIGGERS = 500
LOW_THRESHOLD = {
    "SLUICE_MOLLIFIER_ENABLED": "true",
    # devstack answers tens of triggers a second: a 1 s window with a threshold of 5 trips it.
    "SLUICE_MOLLIFIER_TRIP_THRESHOLD": "5",
    "SLUICE_MOLLIFIER_TRIP_WINDOW_MS": "1000",
    "SLUICE_MOLLIFIER_HOLD_MS": "2000",
}


@pytest.mark.devstack
def test_a_burst_of_concurrent_triggers_becomes_exactly_one_run_each(devstack_factory: StartDevstack) -> None:
    stack = devstack_factory(env=LOW_THRESHOLD)
    headers = {"authorization": f"Bearer {stack.create_key('org_e2e', 'env_e2e', mollifierEnabled=True)}"}

    with httpx.Client(base_url=stack.api_url, timeout=60) as http:

        def fire(i: int) -> dict[str, Any]:
            res = http.post("/api/v1/tasks/burst/trigger", json={"payload": {"i": i}}, headers=headers)
            assert res.status_code == 200, res.text
            return dict(res.json())

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(fire, range(TRIGGERS)))
        ids = [a["id"] for a in answers]
        assert len(set(ids)) == TRIGGERS
        buffered = sum("notice" in a for a in answers)
        assert 0 < buffered < TRIGGERS, "the burst trips the environment part of the way in"

        deadline = time.monotonic() + 300
        # One Scan a second until RunsTable holds a run per trigger, each with its trigger's payload.
        while len(runs := burst_runs(stack)) < TRIGGERS and time.monotonic() < deadline:
            time.sleep(1)
        payloads = {run_id: {"i": i} for i, run_id in enumerate(ids)}
        assert {run["id"]: run["payload"] for run in runs.values()} == payloads
        # The API's view of a sample, buffered and not: a GET for each of the 500 cost a third of
        # the burst itself, and reads the same table.
        sample = [a for a in answers if "notice" in a][:10] + [a for a in answers if "notice" not in a][:10]
        for answer in sample:
            run = http.get(f"/api/v1/runs/{answer['id']}", headers=headers).json()
            assert run["buffered"] is False and run["payload"] == payloads[answer["id"]]

    # The dispatcher sends runs from RunsTable's stream, shortly after they are written.
    sent: list[str] = []
    deadline = time.monotonic() + 60
    while len(sent) < TRIGGERS and time.monotonic() < deadline:
        sent += [body["runId"] for body in stack.bodies("RunQueue", wait=1) if body.get("taskId") == "burst"]
    assert sorted(sent) == sorted(ids), "each trigger was enqueued for execution exactly once"
    assert len(burst_runs(stack)) == TRIGGERS


def burst_runs(stack: DevStack) -> dict[str, dict[str, Any]]:
    """The burst's runs in RunsTable, by id."""
    pages = stack.client("dynamodb").get_paginator("scan").paginate(TableName=stack.table("RunsTable"))
    docs = [json.loads(item["doc"]["S"]) for page in pages for item in page["Items"] if "doc" in item]
    return {doc["id"]: doc for doc in docs if doc.get("taskId") == "burst"}
