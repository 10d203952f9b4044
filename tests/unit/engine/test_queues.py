"""Queue concurrency through the real handlers: a limit holds under concurrent starts, per queue
and per concurrency key; every way out of EXECUTING gives exactly one slot back (a worker that
died included); another tenant's queue of the same name is its own."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sluice.config import get_settings
from sluice.engine import lifecycle
from tests.conftest import Tenant, make_tenant


def queues(api: Any, tenant: Tenant | None = None) -> dict[str, dict[str, Any]]:
    answer = api.call("GET", "/api/v1/queues", headers=(tenant or api.tenant).headers)
    assert answer.status == 200, answer.body
    return {q["name"]: q for q in answer.json()["data"]}


def executing(api: Any, name: str = "emails", tenant: Tenant | None = None) -> int:
    return int(queues(api, tenant)[name]["executing"])


def limited(api: Any, limit: int = 1, **options: Any) -> str:
    return str(api.trigger({"n": 1}, queue={"name": "emails", "concurrencyLimit": limit}, **options))


def test_twenty_concurrent_starts_against_a_limit_of_three_start_three(api: Any) -> None:
    run_ids = [limited(api, 3) for _ in range(20)]

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda run_id: api.post(run_id, "start"), run_ids))

    started = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status != 200]
    assert len(started) == 3, [a.body for a in answers]
    assert {(a.status, a.json()["code"]) for a in refused} == {(409, "concurrency_limited")}
    assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
    for run_id, answer in zip(run_ids, answers, strict=True):
        if answer.status == 409:
            # Re-sent by the outbox after Retry-After: the worker drops the message it holds, and
            # a run refused again and again never reaches RunQueue's dead-letter queue.
            item = api.item(run_id)
            assert item["dispatchSeq"]["N"] == "2" and item["dispatchPending"]["BOOL"] is True
    statuses = [api.get(run_id)["status"] for run_id in run_ids]
    assert statuses.count("EXECUTING") == 3 and statuses.count("QUEUED") == 17
    assert queues(api)["emails"] == {"name": "emails", "concurrencyLimit": 3, "executing": 3, "queued": 17}


def _end_by_complete(api: Any, run_id: str, token: str) -> None:
    assert api.post(run_id, "complete", {"leaseToken": token, "output": 1}).status == 200


def _end_by_final_fail(api: Any, run_id: str, token: str) -> None:
    body = {"leaseToken": token, "error": "boom", "retry": False}
    assert api.post(run_id, "fail", body).json()["status"] == "FAILED"


def _end_by_retry(api: Any, run_id: str, token: str) -> None:
    assert api.post(run_id, "fail", {"leaseToken": token, "error": "boom"}).json()["status"] == "QUEUED"


def _end_by_cancel(api: Any, run_id: str, token: str) -> None:
    assert api.call("POST", f"/api/v2/runs/{run_id}/cancel", headers=api.tenant.headers).status == 200


def _end_by_lapsed_lease(api: Any, run_id: str, token: str) -> None:
    # The worker was SIGKILLed: it never heartbeats again; the reaper finds the lapsed lease
    # (the sweep at the instant it lapsed, before the other run's, started later, does).
    lapsed_ms = int(api.item(run_id)["leaseExpiresAt"]["N"])
    assert lifecycle.reap(datetime.fromtimestamp(lapsed_ms / 1000, UTC)) == {"retried": 1, "failed": 0}


def _clear_backoff(api: Any, run_id: str) -> None:
    """As if the refused run's Retry-After had passed (the outbox re-sends it then)."""
    api.aws.dynamodb.update_item(
        TableName=get_settings().runs_table,
        Key={"runId": {"S": run_id}},
        UpdateExpression="REMOVE delayUntil",
    )


def test_every_end_of_an_attempt_gives_exactly_one_slot_back(api: Any) -> None:
    for end in (_end_by_complete, _end_by_final_fail, _end_by_retry, _end_by_cancel, _end_by_lapsed_lease):
        first, second, third = limited(api, 2), limited(api, 2), limited(api, 2)
        tokens = [api.start(first)["leaseToken"]]
        time.sleep(0.01)  # the second lease lapses after the first
        tokens.append(api.start(second)["leaseToken"])
        assert api.post(third, "start").json()["code"] == "concurrency_limited", end.__name__
        assert executing(api) == 2

        end(api, first, tokens[0])

        assert executing(api) == 1, end.__name__
        assert "queueSlot" not in api.item(first)
        # The refused run is re-sent after Retry-After; its next start takes the freed slot.
        assert api.post(third, "start").json()["code"] == "run_not_due"
        _clear_backoff(api, third)
        assert api.post(third, "start").status == 200, end.__name__
        for run_id, token in ((second, tokens[1]), (third, api.item(third)["leaseToken"]["S"])):
            _end_by_complete(api, run_id, token)
        if end is _end_by_retry or end is _end_by_lapsed_lease:
            # The retried run is queued again, holding no slot; finish it to leave a clean queue.
            assert api.item(first)["status"]["S"] == "QUEUED"
            assert api.call("POST", f"/api/v2/runs/{first}/cancel", headers=api.tenant.headers).status == 200
        assert executing(api) == 0, end.__name__


def test_a_repeated_end_does_not_give_the_slot_back_twice(api: Any) -> None:
    run_id = limited(api, 1)
    token = api.start(run_id)["leaseToken"]
    body = {"leaseToken": token, "output": 1}
    assert api.post(run_id, "complete", body).status == 200
    assert api.post(run_id, "complete", body).status == 200  # answered as the first
    assert api.call("POST", f"/api/v2/runs/{run_id}/cancel", headers=api.tenant.headers).status == 409
    assert executing(api) == 0


def test_a_concurrency_key_has_its_own_limit(api: Any) -> None:
    a1, a2 = limited(api, 1, concurrencyKey="a"), limited(api, 1, concurrencyKey="a")
    b1 = limited(api, 1, concurrencyKey="b")

    assert api.post(a1, "start").status == 200
    assert api.post(a2, "start").json()["code"] == "concurrency_limited"
    assert api.post(b1, "start").status == 200, "another key's slot is its own"
    assert executing(api) == 2, "the queue counts the executing runs of all its keys"


def test_a_queue_limit_set_by_put_wins_over_the_triggers(api: Any) -> None:
    answer = api.call(
        "PUT", "/api/v1/queues/emails", json_body={"concurrencyLimit": 1}, headers=api.tenant.headers
    )
    assert answer.status == 200, answer.body
    assert answer.json() == {"name": "emails", "concurrencyLimit": 1, "executing": 0, "queued": 0}
    first, second = limited(api, 5), limited(api, 5)
    assert api.post(first, "start").status == 200
    assert api.post(second, "start").json()["code"] == "concurrency_limited"


def test_a_queue_limited_to_zero_starts_nothing(api: Any) -> None:
    put = api.call(
        "PUT", "/api/v1/queues/paused", json_body={"concurrencyLimit": 0}, headers=api.tenant.headers
    )
    assert put.status == 200
    run_id = str(api.trigger({"n": 1}, queue="paused"))
    assert api.post(run_id, "start").json()["code"] == "concurrency_limited"
    assert api.get(run_id)["status"] == "QUEUED"
    assert queues(api)["paused"] == {"name": "paused", "concurrencyLimit": 0, "executing": 0, "queued": 1}


def test_a_bad_queue_limit_is_a_422(api: Any) -> None:
    for body in ({"concurrencyLimit": -1}, {"concurrencyLimit": "3"}, {"limit": 3}, []):
        answer = api.call("PUT", "/api/v1/queues/emails", json_body=body, headers=api.tenant.headers)
        assert answer.status == 422, body
        assert answer.json()["code"] in ("invalid_request", "invalid_body")


def test_another_tenants_queue_of_the_same_name_is_separate(api: Any) -> None:
    other = make_tenant("org_other", "env_other")
    mine = limited(api, 1)
    assert api.post(mine, "start").status == 200

    body = {"payload": 1, "options": {"queue": {"name": "emails", "concurrencyLimit": 1}}}
    theirs = api.call("POST", "/api/v1/tasks/work/trigger", json_body=body, headers=other.headers).json()[
        "id"
    ]
    assert api.post(theirs, "start", tenant_=other).status == 200, "their queue has its own slot"

    assert executing(api) == 1 and executing(api, tenant=other) == 1
    put = api.call("PUT", "/api/v1/queues/emails", json_body={"concurrencyLimit": 0}, headers=other.headers)
    assert put.status == 200
    assert queues(api)["emails"]["concurrencyLimit"] == 1, "their PUT does not touch my queue"


def test_a_queue_without_a_limit_takes_no_slot(api: Any) -> None:
    run_id = str(api.trigger({"n": 1}, queue="plain"))
    api.start(run_id)
    assert "queueSlot" not in api.item(run_id)
    assert "plain" not in queues(api)
