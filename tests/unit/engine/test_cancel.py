"""Cancel through the real handlers: queued, delayed and executing runs; idempotent; a finished
run is 409; an executing run's worker learns it at its next heartbeat."""

from __future__ import annotations

from typing import Any

from sluice.engine.models import Run
from tests.conftest import Tenant, make_tenant

CANCEL = "/api/v2/runs/{}/cancel"


def cancel(api: Any, run_id: str, tenant: Tenant | None = None) -> Any:
    return api.call("POST", CANCEL.format(run_id), headers=(tenant or api.tenant).headers)


def test_a_queued_run_is_canceled_and_never_started(api: Any, finals: list[Run]) -> None:
    run_id = api.trigger({"n": 1})

    answer = cancel(api, run_id)

    assert (answer.status, answer.json()) == (200, {"id": run_id})
    run = api.get(run_id)
    assert run["status"] == "CANCELED"
    assert run["canceledAt"] is not None and run["completedAt"] == run["canceledAt"]
    assert [r.id for r in finals] == [run_id], "a canceled run is final: its streams end"
    start = api.post(run_id, "start")
    assert (start.status, start.json()["code"]) == (409, "run_finished")


def test_a_delayed_run_is_canceled(api: Any) -> None:
    run_id = api.trigger(delay="1h")
    assert api.get(run_id)["status"] == "DELAYED"
    assert cancel(api, run_id).status == 200
    assert api.get(run_id)["status"] == "CANCELED"
    assert "delayUntil" in api.item(run_id) and "dispatchPending" not in api.item(run_id)


def test_cancel_is_idempotent(api: Any, finals: list[Run]) -> None:
    run_id = api.trigger()
    first = cancel(api, run_id)
    canceled_at = api.get(run_id)["canceledAt"]
    second = cancel(api, run_id)
    assert (first.status, second.status) == (200, 200)
    assert second.json() == {"id": run_id}
    assert api.get(run_id)["canceledAt"] == canceled_at, "the second cancel changed nothing"
    assert len(finals) == 1


def test_an_executing_run_is_canceled_and_its_worker_learns_it_at_the_next_heartbeat(api: Any) -> None:
    run_id = api.trigger()
    token = api.start(run_id)["leaseToken"]

    assert cancel(api, run_id).status == 200

    item = api.item(run_id)
    assert item["status"]["S"] == "CANCELED"
    assert "leaseShard" not in item, "the reaper never retries a canceled run"
    for action, body in (
        ("heartbeat", {"leaseToken": token}),
        ("complete", {"leaseToken": token, "output": 1}),
        ("fail", {"leaseToken": token, "error": "late"}),
    ):
        answer = api.post(run_id, action, body)
        assert (answer.status, answer.json()["code"]) == (409, "run_canceled"), action
    run = api.get(run_id)
    assert (run["status"], run["output"], run["error"]) == ("CANCELED", None, None)


def test_a_finished_run_is_409_run_finished(api: Any) -> None:
    run_id = api.trigger()
    token = api.start(run_id)["leaseToken"]
    assert api.post(run_id, "complete", {"leaseToken": token, "output": "done"}).status == 200

    answer = cancel(api, run_id)

    assert (answer.status, answer.json()["code"]) == (409, "run_finished")
    assert api.get(run_id)["status"] == "COMPLETED"


def test_another_tenants_run_and_an_unknown_run_are_404(api: Any) -> None:
    run_id = api.trigger()
    # Same environment name in another organization: the tenant is the pair.
    for other in (make_tenant("org_b", api.tenant.env.env_id), make_tenant("org_a", "env_other")):
        answer = cancel(api, run_id, other)
        assert (answer.status, answer.json()["code"]) == (404, "not_found")
    assert cancel(api, "run_nosuchrun").status == 404
    assert api.get(run_id)["status"] == "QUEUED"


def test_replay_makes_a_new_run_with_the_payload_and_options(api: Any) -> None:
    options = {"tags": ["a"], "queue": "emails", "maxAttempts": 2, "metadata": {"m": 1}, "ttl": "1h"}
    run_id = api.trigger({"to": "x"}, idempotencyKey="k", delay="1s", **options)
    assert cancel(api, run_id).status == 200

    answer = api.call("POST", f"/api/v1/runs/{run_id}/replay", headers=api.tenant.headers)

    assert answer.status == 200, answer.body
    replayed = api.get(answer.json()["id"])
    assert replayed["id"] != run_id and replayed["status"] == "QUEUED"
    shown = {k: replayed[k] for k in ("payload", "tags", "queue", "maxAttempts", "metadata", "ttl")}
    assert shown == {"payload": {"to": "x"}, **options}
    assert (replayed["idempotencyKey"], replayed["delayUntil"]) == (None, None)
    other = make_tenant("org_b", api.tenant.env.env_id)
    assert api.call("POST", f"/api/v1/runs/{run_id}/replay", headers=other.headers).status == 404
