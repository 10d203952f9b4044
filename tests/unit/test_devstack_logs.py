"""``python -m devstack logs``: a function's or a run's lines out of the stack's log, EMF metric
blobs left out (or shown as name=value), and ``--follow`` printing what is appended."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from devstack import cli, logs

RUN = "run_abc"


def powertools(function: str, message: str, **keys: object) -> str:
    base = {
        "level": "INFO",
        "location": "handler:1",
        "message": message,
        "timestamp": "2026-12-07 23:27:22,788+0000",
        "service": "sluice",
        "cold_start": False,
        "function_name": function,
        "function_arn": "arn:...",
        "function_request_id": "r-1",
    }
    return json.dumps({**base, **keys})


EMF = json.dumps(
    {
        "_aws": {
            "Timestamp": 1,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Sluice/dev",
                    "Dimensions": [["service"]],
                    "Metrics": [
                        {"Name": "RunDispatched", "Unit": "Count"},
                        {"Name": "DispatchLag", "Unit": "Milliseconds"},
                    ],
                }
            ],
        },
        "service": "sluice",
        "RunDispatched": [1.0],
        "DispatchLag": [12.5],
    }
)
LOG = (
    "\n".join(
        [
            "devstack: ready        .devstack/stack.json",
            powertools("TriggerIntakeFunction", "run.triggered", runId=RUN, orgId="org_a", status="QUEUED"),
            EMF,
            powertools("RunLifecycleFunction", "run.started", runId=RUN, attempt=1),
            powertools("RunLifecycleFunction", "run.started", runId="run_other", attempt=1),
            "devstack: DispatcherFunction failed on batch: Boom",
        ]
    )
    + "\n"
)


def run_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    (tmp_path / "devstack.log").write_text(LOG)
    assert cli.main(["logs", "--state-dir", str(tmp_path), *args]) == 0
    return capsys.readouterr().out.splitlines()


def test_one_runs_story_across_functions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_logs(tmp_path, capsys, "--run", RUN)
    assert len(out) == 2
    assert "TriggerIntakeFunction  run.triggered" in out[0] and "status=QUEUED" in out[0]
    assert out[0].startswith("23:27:22,788 INFO")
    assert "RunLifecycleFunction  run.started" in out[1] and "attempt=1" in out[1]
    assert "function_arn" not in out[0]


def test_one_functions_lines_by_folder_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_logs(tmp_path, capsys, "--function", "run_lifecycle")
    assert len(out) == 2 and all("run.started" in line for line in out)
    assert run_logs(tmp_path, capsys, "--function", "DispatcherFunction") == [
        "devstack: DispatcherFunction failed on batch: Boom"
    ]
    assert cli.main(["logs", "--state-dir", str(tmp_path), "--function", "nope"]) == 2


def test_metrics_are_left_out_unless_asked_for_then_readable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not any("_aws" in line or "metrics" in line for line in run_logs(tmp_path, capsys))
    shown = [line for line in run_logs(tmp_path, capsys, "--metrics") if line.startswith("metrics")]
    assert shown == ["metrics  RunDispatched=1  DispatchLag=12.5 Milliseconds"]
    raw = run_logs(tmp_path, capsys, "--run", RUN, "--raw")
    assert json.loads(raw[0])["runId"] == RUN


def test_no_log_says_where_it_would_be(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["logs", "--state-dir", str(tmp_path)]) == 1
    assert "up --detach" in capsys.readouterr().err


def test_follow_prints_lines_as_they_are_appended(tmp_path: Path) -> None:
    path = tmp_path / "devstack.log"
    path.write_text("devstack: ready\n")
    appended = threading.Event()
    waits = 0

    def sleep(_: float) -> None:
        nonlocal waits
        waits += 1
        if waits == 1:
            with open(path, "a") as log:
                log.write(powertools("DrainerFunction", "run.triggered", runId=RUN) + "\n")
            appended.set()
        elif waits > 3:
            raise KeyboardInterrupt

    out = io.StringIO()
    with open(path) as stream, pytest.raises(KeyboardInterrupt):
        logs.show(logs.read_lines(stream, follow=True, sleep=sleep), logs.Filters(run_id=RUN), out)
    assert appended.is_set()
    assert out.getvalue().count("run.triggered") == 1
