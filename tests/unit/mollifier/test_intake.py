"""The trigger route through the real handler: mollify, pass through, idempotency, fail-open."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis

from devstack.services import free_port
from sluice.config import get_settings
from sluice.mollifier import get_buffer
from sluice.mollifier.keys import shard_of
from sluice.redis import reset_redis
from tests.conftest import AwsStack, Tenant, make_tenant

Configure = Callable[..., None]


@pytest.fixture
def burst(aws: AwsStack, redis_client: redis.Redis, configure: Configure) -> Tenant:
    """Mollifier on, every trigger over the threshold, and an enrolled tenant."""
    configure(mollifier_enabled=True, mollifier_trip_threshold=0)
    return make_tenant("org_a", "env_a", mollifierEnabled=True)


def post(call_api: Any, tenant: Tenant, task: str = "hello", **body: Any) -> Any:
    return call_api("POST", f"/api/v1/tasks/{task}/trigger", json_body=body, headers=tenant.headers)


def get(call_api: Any, tenant: Tenant, run_id: str) -> Any:
    return call_api("GET", f"/api/v1/runs/{run_id}", headers=tenant.headers)


def test_mollified_trigger_is_answered_from_the_buffer_with_a_notice(
    aws: AwsStack, burst: Tenant, call_api: Any
) -> None:
    res = post(call_api, burst, payload={"n": 1}, options={"tags": ["t"]})
    assert res.status == 200, res.body
    body = res.json()
    assert body["isCached"] is False and body["notice"]["code"] == "mollifier.queued"
    signals = aws.receive_all("DrainQueue")
    assert len(signals) == 1
    assert json.loads(signals[0]["Body"])["runId"] == body["id"]
    assert signals[0]["Attributes"].get("MessageGroupId") in (None, "org_a")
    assert aws.bodies("RunQueue") == [], "no run until the drainer creates it"

    run = get(call_api, burst, body["id"]).json()
    assert (run["status"], run["buffered"], run["payload"], run["tags"]) == ("QUEUED", True, {"n": 1}, ["t"])


def test_same_idempotency_key_returns_the_buffered_run_cached(burst: Tenant, call_api: Any) -> None:
    first = post(call_api, burst, options={"idempotencyKey": "k"}).json()
    second = post(call_api, burst, options={"idempotencyKey": "k"}).json()
    assert second == {"id": first["id"], "isCached": True}


def test_another_organization_with_the_same_environment_id_shares_no_buffered_run(
    burst: Tenant, call_api: Any
) -> None:
    """On the owner's shard, its idempotency key binds its own run, it cannot read the owner's
    buffered run, and its burst is a queue of its own."""
    shards = get_settings().mollifier_shards
    org = next(f"org_{i}" for i in range(1000) if shard_of(f"org_{i}", shards) == shard_of("org_a", shards))
    other = make_tenant(org, burst.env.env_id, mollifierEnabled=True)
    owner_run = post(call_api, burst, options={"idempotencyKey": "k"}).json()
    other_run = post(call_api, other, options={"idempotencyKey": "k"}).json()
    assert other_run["id"] != owner_run["id"] and other_run["isCached"] is False
    assert get(call_api, other, owner_run["id"]).status == 404
    assert get(call_api, burst, other_run["id"]).status == 404
    popped = {entry.runId: entry.orgId for entry in get_buffer().pop_batch(10)}
    assert popped == {owner_run["id"]: "org_a", other_run["id"]: org}


def test_validation_runs_before_the_gate(burst: Tenant, call_api: Any, redis_client: redis.Redis) -> None:
    assert post(call_api, burst, options={"maxAttempts": 0}).status == 422
    assert post(call_api, burst, options={"delay": "soon"}).status == 422
    assert post(call_api, burst, options={"idempotencyKey": "x" * 3000}).status == 400
    assert redis_client.keys("*") == []


def test_engine_idempotency_short_circuits_before_the_gate(
    aws: AwsStack, redis_client: redis.Redis, call_api: Any, configure: Configure
) -> None:
    tenant = make_tenant("org_a", "env_a", mollifierEnabled=True)
    configure(mollifier_enabled=True)
    first = post(call_api, tenant, options={"idempotencyKey": "k"}).json()
    redis_client.flushall()
    configure(mollifier_trip_threshold=0)
    again = post(call_api, tenant, options={"idempotencyKey": "k"}).json()
    assert again == {"id": first["id"], "isCached": True}
    assert not redis_client.keys("*rate*"), "the gate was never consulted"


def test_switch_off_does_no_redis_work(
    aws: AwsStack, tenant: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    reset_redis()
    res = post(call_api, tenant, payload=1, options={"idempotencyKey": "k"})
    assert res.status == 200 and "notice" not in res.json()
    assert get(call_api, tenant, res.json()["id"]).json()["buffered"] is False


@pytest.mark.parametrize("options", [{}, {"idempotencyKey": "k"}])
def test_redis_down_passes_through_with_no_5xx(
    aws: AwsStack, call_api: Any, configure: Configure, options: dict[str, Any]
) -> None:
    tenant = make_tenant("org_a", "env_a", mollifierEnabled=True)
    configure(
        mollifier_enabled=True, mollifier_trip_threshold=0, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    reset_redis()
    res = post(call_api, tenant, payload=1, options=options)
    assert res.status == 200, res.body
    run = get(call_api, tenant, res.json()["id"]).json()
    assert run["buffered"] is False
    assert [m["runId"] for m in aws.bodies("RunQueue")] == [res.json()["id"]]


def test_not_enrolled_org_passes_through_even_when_tripped(
    aws: AwsStack, redis_client: redis.Redis, call_api: Any, configure: Configure
) -> None:
    configure(mollifier_enabled=True, mollifier_trip_threshold=0)
    tenant = make_tenant("org_b", "env_b")
    res = post(call_api, tenant).json()
    assert "notice" not in res and redis_client.keys("*rate*") == []


def test_shadow_mode_counts_but_never_diverts(
    aws: AwsStack,
    redis_client: redis.Redis,
    call_api: Any,
    configure: Configure,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A long window, so that the counter key is still there when the test looks on a loaded machine.
    configure(
        mollifier_enabled=True,
        mollifier_trip_threshold=0,
        mollifier_shadow_mode=True,
        mollifier_trip_window_ms=60_000,
    )
    tenant = make_tenant("org_b", "env_b")
    res = post(call_api, tenant).json()
    assert "notice" not in res and redis_client.keys("*rate*")
    assert '"outcome":"shadow_log"' in capsys.readouterr().out


def test_trigger_and_wait_passes_through_while_tripped(burst: Tenant, call_api: Any) -> None:
    res = post(call_api, burst, options={"parentRunId": "run_p", "resumeParentOnCompletion": True}).json()
    assert "notice" not in res


def test_a_large_payload_passes_through(burst: Tenant, call_api: Any, configure: Configure) -> None:
    configure(mollifier_max_entry_bytes=100)
    assert "notice" not in post(call_api, burst, payload="x" * 200).json()


def test_get_answers_404_for_an_unknown_run_and_for_another_envs_buffered_run(
    burst: Tenant, call_api: Any
) -> None:
    run_id = post(call_api, burst).json()["id"]
    other = make_tenant("org_a", "env_other", mollifierEnabled=True)
    assert get(call_api, other, run_id).status == 404
    assert get(call_api, burst, "run_doesnotexist").status == 404


def test_a_same_key_burst_straddling_the_trip_boundary_yields_one_run(
    aws: AwsStack, redis_client: redis.Redis, call_api: Any, configure: Configure
) -> None:
    configure(mollifier_enabled=True, mollifier_trip_threshold=4, mollifier_trip_window_ms=60_000)
    tenant = make_tenant("org_a", "env_a", mollifierEnabled=True)
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def fire() -> None:
        res = post(call_api, tenant, options={"idempotencyKey": "same"})
        with lock:
            answers.append(res.json())

    # devstack's load_handler imports a function's module on first use, and is not thread-safe then.
    assert get(call_api, tenant, "run_warmup").status == 404
    threads = [threading.Thread(target=fire) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 12
    assert len({a["id"] for a in answers}) == 1, answers
    assert sum(not a["isCached"] for a in answers) == 1
    buffered = len(redis_client.keys("*:entry:*"))
    # Distinct ids: concurrent cached triggers of one engine run may each send it to RunQueue before
    # the first marks it enqueued (the engine's at-least-once window, with or without the buffer).
    engine_runs = len({m["runId"] for m in aws.bodies("RunQueue")})
    assert buffered + engine_runs == 1


def test_redis_down_on_get_of_an_unknown_run_is_a_503_not_a_404(
    aws: AwsStack, call_api: Any, configure: Configure
) -> None:
    tenant = make_tenant("org_a", "env_a", mollifierEnabled=True)
    configure(mollifier_enabled=True, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    reset_redis()
    assert get(call_api, tenant, "run_unknown").status == 503


def test_buffered_runs_go_to_the_orgs_shard(burst: Tenant, call_api: Any) -> None:
    run_id = post(call_api, burst).json()["id"]
    assert get_buffer().get_entry("org_a", run_id) is not None
