"""The worker lifecycle through its real handlers: start, heartbeat, complete, fail, the reaper."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sluice.config import get_settings, reload_settings
from sluice.engine import lifecycle
from sluice.engine.models import Run
from tests.conftest import AwsStack, make_tenant


def _settings(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    reload_settings()


def test_start_leases_the_run_and_get_shows_the_attempt(api: Any) -> None:
    run_id = api.trigger({"to": "a@example.com"})
    before = datetime.now(UTC)

    lease = api.start(run_id)

    assert lease["attempt"] == 1
    assert len(lease["leaseToken"]) >= 16
    expires = datetime.fromisoformat(lease["leaseExpiresAt"])
    assert before + timedelta(seconds=59) < expires <= datetime.now(UTC) + timedelta(seconds=60)
    assert lease["run"]["payload"] == {"to": "a@example.com"}
    assert lease["run"]["status"] == "EXECUTING"
    run = api.get(run_id)
    assert run["status"] == "EXECUTING"
    assert run["attempt"] == 1
    assert run["startedAt"] is not None
    assert run["completedAt"] is None
    assert "leaseToken" not in run
    # The start's own write ends the outbox's pending send, so the running run's later writes
    # (heartbeats, completion) no longer match the dispatcher's filter.
    assert "dispatchPending" not in api.item(run_id)


def test_concurrent_starts_grant_exactly_one_lease(api: Any) -> None:
    run_id = api.trigger()
    results: list[Any] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        results.append(api.post(run_id, "start"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    granted = [r for r in results if r.status == 200]
    assert len(granted) == 1
    assert sorted({(r.status, r.json()["code"]) for r in results if r.status != 200}) == [
        (409, "run_already_started")
    ]
    assert api.item(run_id)["leaseToken"]["S"] == granted[0].json()["leaseToken"]
    assert api.get(run_id)["attempt"] == 1


def test_a_retried_start_with_the_same_token_gets_its_lease_back(api: Any) -> None:
    run_id = api.trigger()
    token = "worker-token-0123456789"
    first = api.post(run_id, "start", {"leaseToken": token})
    again = api.post(run_id, "start", {"leaseToken": token})
    other = api.post(run_id, "start", {"leaseToken": "another-worker-0123456789"})

    assert (first.status, again.status) == (200, 200)
    assert again.json()["leaseToken"] == token
    assert again.json()["attempt"] == 1
    assert (other.status, other.json()["code"]) == (409, "run_already_started")


def test_heartbeat_extends_the_lease(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = api.trigger()
    lease = api.start(run_id)
    _settings(monkeypatch, SLUICE_RUN_LEASE_S="600")

    result = api.post(run_id, "heartbeat", {"leaseToken": lease["leaseToken"]})

    assert result.status == 200
    expires = datetime.fromisoformat(result.json()["leaseExpiresAt"])
    assert expires > datetime.fromisoformat(lease["leaseExpiresAt"]) + timedelta(seconds=500)
    assert int(api.item(run_id)["leaseExpiresAt"]["N"]) == int(expires.timestamp() * 1000)
    # A heartbeated lease is not reaped at the old expiry.
    assert lifecycle.reap(datetime.fromisoformat(lease["leaseExpiresAt"]) + timedelta(seconds=1)) == {
        "retried": 0,
        "failed": 0,
    }


def test_complete_records_the_output_and_ends_the_run(api: Any, finals: list[Run]) -> None:
    run_id = api.trigger()
    lease = api.start(run_id)

    result = api.post(run_id, "complete", {"leaseToken": lease["leaseToken"], "output": {"sent": True}})

    assert result.status == 200, result.body
    assert result.json() == {"id": run_id, "status": "COMPLETED", "attempt": 1}
    run = api.get(run_id)
    assert run["status"] == "COMPLETED"
    assert run["output"] == {"sent": True}
    assert run["completedAt"] is not None
    assert [r.id for r in finals] == [run_id]
    assert "leaseShard" not in api.item(run_id)  # out of the reaper's index
    # The same complete again (its answer was lost) answers the same, and ends nothing twice.
    again = api.post(run_id, "complete", {"leaseToken": lease["leaseToken"], "output": {"sent": True}})
    assert (again.status, again.json()["status"]) == (200, "COMPLETED")
    assert len(finals) == 1


def test_a_stale_lease_cannot_complete_and_changes_nothing(api: Any, finals: list[Run]) -> None:
    run_id = api.trigger()
    first = api.start(run_id)
    assert lifecycle.reap(datetime.now(UTC) + timedelta(seconds=61))["retried"] == 1
    make_due(api.aws, run_id)
    second = api.start(run_id)
    assert second["attempt"] == 2
    before = api.item(run_id)

    for action, body in [
        ("complete", {"leaseToken": first["leaseToken"], "output": "late"}),
        ("fail", {"leaseToken": first["leaseToken"], "error": "late"}),
        ("heartbeat", {"leaseToken": first["leaseToken"]}),
    ]:
        result = api.post(run_id, action, body)
        assert (result.status, result.json()["code"]) == (409, "stale_lease"), action

    assert api.item(run_id) == before
    assert finals == []
    done = api.post(run_id, "complete", {"leaseToken": second["leaseToken"], "output": "ok"})
    assert done.status == 200
    late = api.post(run_id, "complete", {"leaseToken": first["leaseToken"], "output": "late"})
    assert (late.status, late.json()["code"]) == (409, "run_finished")
    assert api.get(run_id)["output"] == "ok"


@pytest.mark.parametrize("offload", [False, True], ids=["inline", "offloaded"])
def test_two_completes_on_one_lease_one_wins_and_the_other_changes_nothing(
    api: Any, finals: list[Run], monkeypatch: pytest.MonkeyPatch, offload: bool
) -> None:
    if offload:
        _settings(monkeypatch, SLUICE_RUN_OUTPUT_OFFLOAD_BYTES="10")
    run_id = api.trigger()
    token = api.start(run_id)["leaseToken"]
    first = api.post(run_id, "complete", {"leaseToken": token, "output": {"answer": "first"}})
    assert first.status == 200, first.body
    before = api.item(run_id)

    second = api.post(run_id, "complete", {"leaseToken": token, "output": {"answer": "second"}})

    assert (second.status, second.json()["code"]) == (409, "run_finished")
    assert api.item(run_id) == before
    assert api.get(run_id)["output"] == {"answer": "first"}, "the winner's output, in S3 too"
    assert len(finals) == 1


def _race(api: Any, run_id: str, action: str, bodies: list[dict[str, Any]]) -> list[Any]:
    """Each body posted to ``action`` at once, from threads; the answers in body order."""
    barrier = threading.Barrier(len(bodies))
    results: list[Any] = [None] * len(bodies)

    def post(i: int) -> None:
        barrier.wait()
        results[i] = api.post(run_id, action, bodies[i])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("action", ["complete", "fail"])
def test_racing_completes_or_fails_on_one_lease_end_the_run_once(
    api: Any, finals: list[Run], action: str
) -> None:
    for _ in range(5):
        run_id = api.trigger(maxAttempts=1)
        token = api.start(run_id)["leaseToken"]
        ends = [{"output": {"i": i}} if action == "complete" else {"error": str(i)} for i in range(4)]
        results = _race(api, run_id, action, [{"leaseToken": token, **end} for end in ends])
        won = [i for i, r in enumerate(results) if r.status == 200]
        assert len(won) == 1, [(r.status, r.body) for r in results]
        lost = {(r.status, r.json()["code"]) for r in results if r.status != 200}
        assert lost == {(409, "run_finished")}
        run = api.get(run_id)
        shown = run["output"]["i"] if action == "complete" else int(run["error"]["message"])
        assert shown == won[0]
    assert len(finals) == 5


def test_a_large_output_goes_to_the_payload_bucket(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _settings(monkeypatch, SLUICE_RUN_OUTPUT_OFFLOAD_BYTES="1000")
    run_id = api.trigger()
    lease = api.start(run_id)
    output = {"text": "x" * 5000}

    assert api.post(run_id, "complete", {"leaseToken": lease["leaseToken"], "output": output}).status == 200

    item = api.item(run_id)
    assert "output" not in item
    key = item["outputRef"]["S"]
    stored = api.aws.s3.get_object(Bucket=get_settings().payload_bucket, Key=key)["Body"].read()
    assert json.loads(stored) == output
    assert api.get(run_id)["output"] == output
    assert "outputRef" not in api.get(run_id)


def test_an_output_over_the_limit_is_413_and_changes_nothing(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings(monkeypatch, SLUICE_RUN_MAX_OUTPUT_BYTES="100")
    run_id = api.trigger()
    lease = api.start(run_id)
    result = api.post(run_id, "complete", {"leaseToken": lease["leaseToken"], "output": "x" * 200})
    assert (result.status, result.json()["code"]) == (413, "output_too_large")
    assert api.get(run_id)["status"] == "EXECUTING"


def test_fail_retries_with_backoff_through_the_outbox(api: Any, finals: list[Run]) -> None:
    run_id = api.trigger()
    assert [b["runId"] for b in api.aws.bodies("RunQueue")] == [run_id]
    lease = api.start(run_id)

    result = api.post(
        run_id, "fail", {"leaseToken": lease["leaseToken"], "error": {"code": "BOOM", "message": "it broke"}}
    )

    assert result.status == 200, result.body
    body = result.json()
    assert (body["status"], body["attempt"]) == ("QUEUED", 1)
    retry_at = datetime.fromisoformat(body["retryAt"])
    assert datetime.now(UTC) + timedelta(seconds=0.9) < retry_at <= datetime.now(UTC) + timedelta(seconds=2)
    run = api.get(run_id)
    assert run["status"] == "QUEUED"
    assert run["error"] == {"code": "BOOM", "message": "it broke"}
    assert finals == []
    # Until the backoff has passed, the run is not due.
    early = api.post(run_id, "start")
    assert (early.status, early.json()["code"]) == (409, "run_not_due")
    assert early.headers["Retry-After"] in ("1", "2")
    # The dispatcher sends the retry as a new RunQueue message, delayed by the backoff (the
    # first message is still in flight).
    assert api.aws.bodies("RunQueue") == []
    sent = [json.loads(m["Body"]) for m in api.aws.receive_all("RunQueue", wait=3)]
    assert [(b["runId"], b["dispatchSeq"]) for b in sent] == [(run_id, 2)]


def test_max_attempts_is_honoured(api: Any, finals: list[Run]) -> None:
    run_id = api.trigger(maxAttempts=2)
    for attempt in (1, 2):
        make_due(api.aws, run_id)
        lease = api.start(run_id)
        assert lease["attempt"] == attempt
        ended = api.post(run_id, "fail", {"leaseToken": lease["leaseToken"], "error": f"failure {attempt}"})
        assert ended.status == 200
    assert ended.json()["status"] == "FAILED"
    assert "retryAt" not in ended.json()
    run = api.get(run_id)
    assert (run["status"], run["attempt"]) == ("FAILED", 2)
    assert run["error"] == {"code": "TASK_ERROR", "message": "failure 2"}
    assert run["completedAt"] is not None
    assert [r.id for r in finals] == [run_id]
    make_due(api.aws, run_id)
    again = api.post(run_id, "start")
    assert (again.status, again.json()["code"]) == (409, "run_finished")


def test_the_default_max_attempts_applies_without_an_option(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings(monkeypatch, SLUICE_RUN_DEFAULT_MAX_ATTEMPTS="1")
    run_id = api.trigger()
    lease = api.start(run_id)
    ended = api.post(run_id, "fail", {"leaseToken": lease["leaseToken"], "error": "once"})
    assert ended.json()["status"] == "FAILED"


def test_fail_without_retry_is_final(api: Any, finals: list[Run]) -> None:
    run_id = api.trigger(maxAttempts=5)
    lease = api.start(run_id)
    ended = api.post(
        run_id, "fail", {"leaseToken": lease["leaseToken"], "error": "bad input", "retry": False}
    )
    assert ended.json()["status"] == "FAILED"
    assert [r.status for r in finals] == ["FAILED"]


def test_the_reaper_retries_a_lapsed_lease_then_fails_it_as_worker_lost(api: Any, finals: list[Run]) -> None:
    run_id = api.trigger(maxAttempts=2)
    lease = api.start(run_id)
    expires = datetime.fromisoformat(lease["leaseExpiresAt"])

    assert lifecycle.reap(expires - timedelta(seconds=1)) == {"retried": 0, "failed": 0}
    assert lifecycle.reap(expires + timedelta(seconds=1)) == {"retried": 1, "failed": 0}
    run = api.get(run_id)
    assert run["status"] == "QUEUED"
    assert run["error"]["code"] == "WORKER_LOST"
    # The lost worker wakes up: its lease is gone.
    late = api.post(run_id, "complete", {"leaseToken": lease["leaseToken"]})
    assert (late.status, late.json()["code"]) == (409, "stale_lease")

    make_due(api.aws, run_id)
    second = api.start(run_id)
    assert lifecycle.reap(datetime.fromisoformat(second["leaseExpiresAt"]) + timedelta(seconds=1)) == {
        "retried": 0,
        "failed": 1,
    }
    run = api.get(run_id)
    assert (run["status"], run["attempt"], run["error"]["code"]) == ("FAILED", 2, "WORKER_LOST")
    assert [r.id for r in finals] == [run_id]
    assert lifecycle.reap(datetime.now(UTC) + timedelta(hours=1)) == {"retried": 0, "failed": 0}


def test_another_environments_run_is_404_for_every_route(api: Any) -> None:
    run_id = api.trigger()
    lease = api.start(run_id)
    other = make_tenant("org_b", "env_b_dev")
    for action, body in [
        ("start", None),
        ("heartbeat", {"leaseToken": lease["leaseToken"]}),
        ("complete", {"leaseToken": lease["leaseToken"]}),
        ("fail", {"leaseToken": lease["leaseToken"], "error": "x"}),
    ]:
        result = api.post(run_id, action, body, tenant_=other)
        assert (result.status, result.json()["code"]) == (404, "not_found"), action
        missing = api.post("run_doesnotexist", action, body)
        assert (missing.status, missing.json()["code"]) == (404, "not_found"), action
    assert api.get(run_id)["status"] == "EXECUTING"


@pytest.mark.parametrize(
    ("action", "body", "status", "code"),
    [
        ("heartbeat", {}, 422, "invalid_request"),
        ("heartbeat", {"leaseToken": "short"}, 422, "invalid_request"),
        ("complete", [1, 2], 422, "invalid_body"),
        ("fail", {"leaseToken": "worker-token-0123456789"}, 422, "invalid_request"),
        (
            "fail",
            {"leaseToken": "worker-token-0123456789", "error": "x", "retry": "maybe"},
            422,
            "invalid_request",
        ),
        ("start", {"leaseToken": "has spaces in it, not url safe"}, 422, "invalid_request"),
        ("start", {"unknown": 1}, 422, "invalid_request"),
    ],
)
def test_bad_bodies_are_structured_4xx(api: Any, action: str, body: Any, status: int, code: str) -> None:
    run_id = api.trigger()
    result = api.post(run_id, action, body)
    assert (result.status, result.json()["code"]) == (status, code)
    assert result.json()["error"]
    if status == 422 and code == "invalid_request":
        assert result.json()["issues"]
    assert api.get(run_id)["status"] == "QUEUED"


def test_invalid_json_is_400(api: Any, call_api: Any) -> None:
    run_id = api.trigger()
    result = call_api("POST", f"/api/v1/runs/{run_id}/complete", body="{not json", headers=api.tenant.headers)
    assert (result.status, result.json()["code"]) == (400, "invalid_json")


def test_a_delayed_run_is_not_due_until_its_time(api: Any) -> None:
    run_id = api.trigger(delay="1h")
    result = api.post(run_id, "start")
    assert (result.status, result.json()["code"]) == (409, "run_not_due")
    assert 3500 < int(result.headers["Retry-After"]) <= 3600
    assert api.get(run_id)["status"] == "DELAYED"


def make_due(aws: AwsStack, run_id: str) -> None:
    """Skip a retry's backoff (the delay itself is tested above)."""
    aws.dynamodb.update_item(
        TableName=get_settings().runs_table,
        Key={"runId": {"S": run_id}},
        UpdateExpression="SET delayUntil = :d",
        ExpressionAttributeValues={":d": {"S": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}},
    )
