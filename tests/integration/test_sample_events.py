"""Every function has a sample event in events/, and each does what it says when invoked
against a running stack (`python -m devstack invoke`, which runs the handler as `sam local
invoke -e` does, in a worker with the function's environment; the streamed reader's app as the
Lambda Web Adapter does)."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from devstack.invoke import invoke
from devstack.template import ROOT, FunctionSpec, Stack
from devstack.testing.launcher import DevStack

pytestmark = [pytest.mark.devstack, pytest.mark.tools]

EVENTS = ROOT / "events"


@cache
def functions() -> list[FunctionSpec]:
    return Stack().functions()


def function_of(event: Path) -> str:
    """The function an event is for: the longest functions/ folder its name starts with."""
    names = [spec.name for spec in functions() if event.stem.startswith(spec.name + "_")]
    assert names, f"{event.name} names no function (events/<function>_<what>.json)"
    return max(names, key=len)


def status(code: int) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert result["statusCode"] == code, result
        if code >= 400:
            assert {"error", "code"} <= json.loads(result["body"]).keys()

    return check


def no_failures(result: Any) -> None:
    assert result == {"batchItemFailures": []}


def swept(result: Any) -> None:
    assert {"depth", "oldestAgeSeconds", "draining"} <= result.keys()


def counted(result: Any) -> None:
    assert all(isinstance(v, int) for v in result.values()), result


# What each sample does against a fresh stack (its ids name nothing that exists).
EXPECTED: dict[str, Callable[[Any], None]] = {
    "trigger_intake_post": status(200),
    "trigger_intake_get_run": status(404),
    "run_lifecycle_heartbeat": status(404),
    "batch_ingest_create": status(202),
    "streams_records": status(404),
    "sessions_list": status(200),
    "console_page": status(200),
    "stream_reader_read": status(404),
    "drainer_signal": no_failures,
    "batch_runs_item": no_failures,
    "batch_staged_ingest_s3_object": no_failures,
    "dispatcher_stream": no_failures,
    "stale_sweep_schedule": swept,
    "run_reaper_schedule": counted,
    "batch_reaper_schedule": counted,
}


def test_every_function_has_a_sample_event() -> None:
    covered = {function_of(path) for path in EVENTS.glob("*.json")}
    expected = {spec.name for spec in functions()}
    assert expected <= covered, f"no sample event for {sorted(expected - covered)}"
    assert sorted(path.stem for path in EVENTS.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_event_invokes(devstack: DevStack, name: str) -> None:
    path = EVENTS / f"{name}.json"
    outcome = invoke(function_of(path), str(path), devstack.state_dir)
    assert outcome.ok, outcome.error
    EXPECTED[name](outcome.result)


def test_the_s3_sample_names_a_staging_object() -> None:
    """Else the staged ingest would ignore it before looking its batch up."""
    from sluice.batches import keys

    sqs = json.loads((EVENTS / "batch_staged_ingest_s3_object.json").read_text())
    notification = json.loads(sqs["Records"][0]["body"])
    assert keys.parse_staging(notification["Records"][0]["s3"]["object"]["key"]) is not None
