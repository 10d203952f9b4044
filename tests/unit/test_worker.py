"""The worker helper against the real lifecycle handlers (in-process) and RunQueue (moto)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from sluice.config import reload_settings
from sluice.engine import lifecycle
from sluice_client import Sluice, Transport
from sluice_client.worker import NonRetryableError, TaskRun, Worker
from tests.conftest import AwsStack, Tenant
from tests.unit.engine.test_lifecycle import make_due


@pytest.fixture
def client(aws: AwsStack, tenant: Tenant, call_api: Any) -> Sluice:
    """The SDK, its HTTP answered by the real route handlers."""

    def respond(request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()
        result = call_api(request.method, path, body=request.content, headers=dict(request.headers))
        return httpx.Response(result.status, content=result.body.encode(), headers=result.headers)

    http = httpx.Client(
        base_url="http://sluice.test", transport=httpx.MockTransport(respond), headers=tenant.headers
    )
    return Sluice(
        "http://sluice.test", tenant.api_key, transport=Transport("http://sluice.test", "", http=http)
    )


def _worker(aws: AwsStack, client: Sluice, handlers: dict[str, Any], **kwargs: Any) -> Worker:
    return Worker(client, aws.queue_urls["RunQueue"], handlers, sqs=aws.sqs, wait_s=1, **kwargs)


def _messages(aws: AwsStack) -> list[dict[str, Any]]:
    aws.run_streams()
    return aws.sqs.receive_message(QueueUrl=aws.queue_urls["RunQueue"], MaxNumberOfMessages=10).get(
        "Messages", []
    )


def _queue_depth(aws: AwsStack) -> int:
    attrs = aws.sqs.get_queue_attributes(
        QueueUrl=aws.queue_urls["RunQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_a_handler_result_completes_the_run_and_deletes_the_message(aws: AwsStack, client: Sluice) -> None:
    seen: list[TaskRun] = []

    def greet(task: TaskRun) -> dict[str, Any]:
        seen.append(task)
        assert client.runs.retrieve(task.id)["status"] == "EXECUTING"
        return {"greeting": f"hello {task.payload['name']}"}

    run_id = client.trigger("greet", {"name": "ada"}).id
    worker = _worker(aws, client, {"greet": greet})

    assert [worker.process(m) for m in _messages(aws)] == ["completed"]

    assert [(t.id, t.task_id, t.attempt, t.payload) for t in seen] == [(run_id, "greet", 1, {"name": "ada"})]
    run = client.runs.retrieve(run_id)
    assert (run["status"], run["output"], run["attempt"]) == ("COMPLETED", {"greeting": "hello ada"}, 1)
    assert _queue_depth(aws) == 0


def test_an_exception_fails_the_attempt_and_the_retry_completes(aws: AwsStack, client: Sluice) -> None:
    calls: list[int] = []

    def flaky(task: TaskRun) -> str:
        calls.append(task.attempt)
        if task.attempt == 1:
            raise ConnectionResetError("the mail server hung up")
        return "sent"

    run_id = client.trigger("flaky", None, maxAttempts=3).id
    worker = _worker(aws, client, {"flaky": flaky})

    assert [worker.process(m) for m in _messages(aws)] == ["retrying"]
    run = client.runs.retrieve(run_id)
    assert run["status"] == "QUEUED"
    assert run["error"] == {"code": "ConnectionResetError", "message": "the mail server hung up"}

    make_due(aws, run_id)
    retry = aws.receive_all("RunQueue", wait=3)
    assert [worker.process(m) for m in retry] == ["completed"]
    assert calls == [1, 2]
    run = client.runs.retrieve(run_id)
    assert (run["status"], run["attempt"], run["output"]) == ("COMPLETED", 2, "sent")


def test_non_retryable_errors_and_unknown_tasks_fail_for_good(aws: AwsStack, client: Sluice) -> None:
    def refuse(task: TaskRun) -> None:
        raise NonRetryableError("the payload names no recipient")

    refused = client.trigger("refuse", None, maxAttempts=3).id
    unknown = client.trigger("nobody-serves-this", None, maxAttempts=3).id
    worker = _worker(aws, client, {"refuse": refuse})

    assert sorted(worker.process(m) for m in _messages(aws)) == ["failed", "failed"]
    assert client.runs.retrieve(refused)["error"]["code"] == "NonRetryableError"
    assert client.runs.retrieve(unknown)["status"] == "FAILED"
    assert _queue_depth(aws) == 0


def test_a_duplicate_message_is_skipped_and_deleted(aws: AwsStack, client: Sluice) -> None:
    run_id = client.trigger("greet").id
    [message] = _messages(aws)
    lease = client.runs.start(run_id)  # another worker holds it
    worker = _worker(aws, client, {"greet": lambda task: "twice"})

    assert worker.process(message) == "skipped"
    assert _queue_depth(aws) == 0
    assert client.runs.retrieve(run_id)["status"] == "EXECUTING"
    client.runs.complete(run_id, lease["leaseToken"], "once")


def test_heartbeats_keep_a_long_run_from_the_reaper(
    aws: AwsStack, client: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_RUN_LEASE_S", "2")
    reload_settings()
    reaped: list[dict[str, int]] = []

    def slow(task: TaskRun) -> str:
        time.sleep(3.5)  # well past the first lease; heartbeats every ~0.7 s extend it
        reaped.append(lifecycle.reap())
        return "done"

    run_id = client.trigger("slow").id
    worker = _worker(aws, client, {"slow": slow})

    assert [worker.process(m) for m in _messages(aws)] == ["completed"]
    assert reaped == [{"retried": 0, "failed": 0}]
    assert client.runs.retrieve(run_id)["attempt"] == 1


def test_run_serves_runs_concurrently_until_stopped(aws: AwsStack, client: Sluice) -> None:
    run_ids = [client.trigger("echo", {"n": n}).id for n in range(5)]
    aws.run_streams()
    worker = _worker(aws, client, {"echo": lambda task: task.payload["n"]}, concurrency=3)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = [client.runs.retrieve(r) for r in run_ids]
            if all(r["status"] == "COMPLETED" for r in runs):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert [r["output"] for r in runs] == [0, 1, 2, 3, 4]
    assert {r["attempt"] for r in runs} == {1}


def test_a_run_not_due_is_hidden_until_it_is(aws: AwsStack, client: Sluice) -> None:
    run_id = client.trigger("later", None, delay="1h").id
    aws.run_streams()
    # As SQS would deliver it after its 15-minute maximum delay, long before the run is due.
    url = aws.queue_urls["RunQueue"]
    aws.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"runId": run_id}), MessageGroupId="org")
    [message] = [m for m in aws.receive_all("RunQueue") if json.loads(m["Body"]) == {"runId": run_id}]
    worker = _worker(aws, client, {"later": lambda task: "too early"})

    assert worker.process(message) == "deferred"

    assert client.runs.retrieve(run_id)["status"] == "DELAYED"
    assert aws.receive_all("RunQueue") == []  # hidden for the hour, not deleted
    assert _queue_depth(aws) >= 1


def test_a_run_canceled_while_it_executes_sets_cancelled_and_is_not_reported(
    aws: AwsStack, client: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_RUN_LEASE_S", "1")  # heartbeats every ~0.33 s
    reload_settings()
    seen: list[bool] = []

    def long(task: TaskRun) -> str:
        client.runs.cancel(task.id)  # as a user would, from elsewhere
        seen.append(task.cancelled.wait(timeout=10))  # the handler watches and stops early
        return "finished anyway"

    run_id = client.trigger("long").id
    worker = _worker(aws, client, {"long": long})

    assert [worker.process(m) for m in _messages(aws)] == ["canceled"]
    assert seen == [True]
    run = client.runs.retrieve(run_id)
    assert (run["status"], run["output"]) == ("CANCELED", None)
    assert _queue_depth(aws) == 0


def test_the_sdk_lists_cancels_and_replays_runs(aws: AwsStack, client: Sluice) -> None:
    made = [client.trigger("echo", {"n": n}, tags=["t"] if n % 2 else []).id for n in range(5)]

    assert [r["id"] for r in client.runs.iterate(page_size=2)] == made[::-1]
    assert [r["id"] for r in client.runs.list(tag=["t", "nope"])["data"]] == [made[3], made[1]]
    assert client.runs.cancel(made[0]) == {"id": made[0]}
    assert [r["id"] for r in client.runs.list(status="CANCELED")["data"]] == [made[0]]
    replayed = client.runs.replay(made[0])["id"]
    assert client.runs.retrieve(replayed)["payload"] == {"n": 0}
