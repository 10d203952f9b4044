"""The drainer, through its real handler on SQS events: materialise, retry, requeue, terminal
failure, idempotency across redelivery and crashes, fairness; on a single node and a cluster."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from devstack.handlers import context_for, load_handler
from devstack.testing.round_trips import round_trips
from sluice import aws as sluice_aws
from sluice.engine import RunError
from sluice.errors import ServiceUnavailable, Unprocessable
from sluice.mollifier import MollifierBuffer, get_buffer
from sluice.mollifier import drain as drain_module
from sluice.redis import RedisClient
from tests.conftest import AwsStack, Tenant, make_tenant
from tests.unit.mollifier.conftest import pop_one

Configure = Callable[..., None]


@pytest.fixture
def burst(aws: AwsStack, buffer_redis: RedisClient, configure: Configure) -> Tenant:
    configure(mollifier_enabled=True, mollifier_trip_threshold=0, mollifier_retry_delay_s=0)
    return make_tenant("org_a", "env_a", mollifierEnabled=True)


def post(call_api: Any, tenant: Tenant, task: str = "hello", **body: Any) -> str:
    res = call_api("POST", f"/api/v1/tasks/{task}/trigger", json_body=body, headers=tenant.headers)
    assert res.status == 200, res.body
    return str(res.json()["id"])


def get(call_api: Any, tenant: Tenant, run_id: str) -> dict[str, Any]:
    res = call_api("GET", f"/api/v1/runs/{run_id}", headers=tenant.headers)
    assert res.status == 200, res.body
    return dict(res.json())


def sqs_event(aws: AwsStack, messages: list[dict[str, Any]]) -> dict[str, Any]:
    arn = aws.stack.arn("DrainQueue")
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def run_drainer(aws: AwsStack, rounds: int = 20) -> list[str]:
    """Deliver DrainQueue to the drainer as Lambda does (batches of 10, delete what succeeded);
    returns the message ids reported as failures."""
    spec = aws.stack.function("drainer")
    handler = load_handler(spec)
    failures: list[str] = []
    url = aws.queue_urls["DrainQueue"]
    for _ in range(rounds):
        messages = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", []
        )
        if not messages:
            break
        response = handler(sqs_event(aws, messages), context_for(spec))
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        failures.extend(failed)
        for m in messages:
            if m["MessageId"] not in failed:
                aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            else:
                aws.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
    return failures


def run_queue_ids(aws: AwsStack) -> list[str]:
    return [m["runId"] for m in aws.bodies("RunQueue")]


def test_drainer_materialises_a_buffered_run_once(aws: AwsStack, burst: Tenant, call_api: Any) -> None:
    run_id = post(call_api, burst, payload={"n": 1}, options={"idempotencyKey": "k"})
    assert run_drainer(aws) == []
    run = get(call_api, burst, run_id)
    assert (run["status"], run["buffered"], run["payload"]) == ("QUEUED", False, {"n": 1})
    assert run_queue_ids(aws) == [run_id]
    entry = get_buffer().get_entry("org_a", run_id)
    assert entry is not None and entry.materialised
    again = call_api(
        "POST",
        "/api/v1/tasks/hello/trigger",
        json_body={"options": {"idempotencyKey": "k"}},
        headers=burst.headers,
    )
    assert again.json() == {"id": run_id, "isCached": True}, "the engine owns the key after the ack"


def test_a_redelivered_signal_never_makes_a_second_run(aws: AwsStack, burst: Tenant, call_api: Any) -> None:
    run_id = post(call_api, burst)
    signal = aws.receive_all("DrainQueue")
    handler = load_handler(aws.stack.function("drainer"))
    ctx = context_for(aws.stack.function("drainer"))
    for _ in range(2):
        assert handler(sqs_event(aws, signal), ctx) == {"batchItemFailures": []}
    assert run_queue_ids(aws) == [run_id]


def test_crash_after_create_before_ack_yields_one_run(
    aws: AwsStack, burst: Tenant, call_api: Any, configure: Configure
) -> None:
    run_id = post(call_api, burst)
    buffer = get_buffer()
    entry = pop_one(buffer)
    assert entry is not None
    drain_module._create_run(entry, entry.parsed_snapshot())  # the create lands, then the drainer dies
    buffer.client.zadd(buffer.keys_for("org_a").draining, {run_id: 0})  # long ago
    configure(mollifier_draining_abandon_s=1)
    from sluice import mollifier

    assert mollifier.sweep().reclaimed == 1
    aws.receive_all("DrainQueue")  # the original signal was consumed by the dead drainer; the sweep sent one
    aws.sqs.purge_queue(QueueUrl=aws.queue_urls["DrainQueue"])
    from sluice.mollifier.signals import send_signal

    send_signal(run_id, "org_a", "env_a")
    assert run_drainer(aws) == []
    assert run_queue_ids(aws) == [run_id]
    assert get(call_api, burst, run_id)["buffered"] is False


def test_retryable_errors_requeue_then_the_run_fails_visibly(
    aws: AwsStack, burst: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_trigger = drain_module.engine.trigger
    calls: list[RunError | None] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("error"))
        if kwargs.get("error") is None:
            raise ServiceUnavailable("the run store is unavailable")
        return real_trigger(*args, **kwargs)

    monkeypatch.setattr(drain_module.engine, "trigger", flaky)
    run_id = post(call_api, burst)
    assert run_drainer(aws) == []
    assert calls.count(None) == 3, "SLUICE_MOLLIFIER_MAX_ATTEMPTS handler executions"
    run = get(call_api, burst, run_id)
    assert (run["status"], run["buffered"]) == ("FAILED", False)
    assert (
        run["error"]["code"] == "MOLLIFIER_DRAIN_FAILED"
        and "max_attempts_exhausted" in run["error"]["message"]
    )
    assert run_queue_ids(aws) == [], "a failed run is not enqueued for execution"


def test_a_requeue_sends_a_replacement_signal_with_the_retry_delay(
    aws: AwsStack, burst: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch, configure: Configure
) -> None:
    configure(mollifier_retry_delay_s=7)
    sent: list[tuple[int, str | None]] = []

    def send(*a: Any, delay_s: int = 0, entry: Any = None) -> None:
        sent.append((delay_s, entry and entry.snapshot))

    monkeypatch.setattr(drain_module, "send_signal", send)
    monkeypatch.setattr(
        drain_module.engine, "trigger", lambda *a, **k: (_ for _ in ()).throw(ServiceUnavailable("x"))
    )
    run_id = post(call_api, burst)
    buffer = get_buffer()
    entry = pop_one(buffer)
    assert entry is not None
    assert drain_module.process_entries(buffer, [entry], drain_module.get_settings()) == ["requeued"]
    assert sent == [(7, entry.snapshot)], "the replacement signal carries the entry"
    stored = buffer.get_entry("org_a", run_id)
    assert stored is not None and (stored.status, stored.attempts) == ("QUEUED", 1)


def test_a_non_retryable_error_fails_at_once(
    aws: AwsStack, burst: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_trigger = drain_module.engine.trigger
    calls: list[Any] = []

    def reject(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("error"))
        if kwargs.get("error") is None:
            raise Unprocessable("the task does not accept this", code="rejected")
        return real_trigger(*args, **kwargs)

    monkeypatch.setattr(drain_module.engine, "trigger", reject)
    run_id = post(call_api, burst)
    run_drainer(aws)
    assert calls.count(None) == 1
    assert "non_retryable" in get(call_api, burst, run_id)["error"]["message"]


def test_an_entry_the_engine_cannot_record_stays_readable_as_failed(
    aws: AwsStack, burst: Tenant, call_api: Any
) -> None:
    run_id = post(call_api, burst)
    buffer = get_buffer()
    buffer.client.hset(buffer.keys_for("org_a").entry(run_id), "snapshot", "{not json")
    assert run_drainer(aws) == []
    run = get(call_api, burst, run_id)
    assert (run["status"], run["buffered"]) == ("FAILED", True)
    assert run["error"]["code"] == "MOLLIFIER_DRAIN_FAILED"


def test_an_expired_idempotency_key_is_dropped_before_replay(
    aws: AwsStack, burst: Tenant, call_api: Any
) -> None:
    run_id = post(call_api, burst, options={"idempotencyKey": "k", "idempotencyKeyTTL": "1ms"})
    time.sleep(0.01)
    run_drainer(aws)
    run = get(call_api, burst, run_id)
    assert (run["buffered"], run["idempotencyKey"]) == (False, None)


def test_redis_down_creates_the_signals_own_run_from_the_entry_it_carries(
    aws: AwsStack, burst: Tenant, call_api: Any, configure: Configure
) -> None:
    run_ids = [post(call_api, burst, payload={"n": n}) for n in range(3)]
    from devstack.services import free_port
    from sluice.mollifier.signals import send_signal
    from sluice.redis import reset_redis

    configure(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    reset_redis()
    assert run_drainer(aws, rounds=1) == []
    for n, run_id in enumerate(run_ids):
        run = get(call_api, burst, run_id)
        assert (run["buffered"], run["payload"]) == (False, {"n": n})

    send_signal("run_old", "org_a", "env_a")  # a signal of an older release carries no entry
    assert len(run_drainer(aws, rounds=1)) == 1, "it fails, so that SQS redelivers it"


def test_a_light_org_materialises_early_behind_a_heavy_org_with_many_envs(
    aws: AwsStack, buffer_redis: RedisClient, configure: Configure, call_api: Any
) -> None:
    configure(mollifier_enabled=True, mollifier_trip_threshold=0)
    heavy = [make_tenant("org_heavy", f"env_h{i}", mollifierEnabled=True) for i in range(10)]
    light = make_tenant("org_light", "env_l", mollifierEnabled=True)
    for i in range(8):
        for tenant in heavy:
            post(call_api, tenant, payload=i)
    light_ids = {post(call_api, light, payload=i) for i in range(5)}  # its signals come last
    assert run_drainer(aws, rounds=100) == []
    # The order the drainer created them in (RunQueue's is the dispatcher's, whose parallel
    # batches reorder runs of different ids).
    records = aws.run_records(set(run_queue_ids(aws)))
    order = [r["dynamodb"]["Keys"]["runId"]["S"] for r in records if r["eventName"] == "INSERT"]
    assert len(order) == 85
    last_light = max(order.index(run_id) for run_id in light_ids)
    assert last_light < 20, f"the light org's last run was #{last_light} of 85"


def test_the_signal_carries_its_entry(
    aws: AwsStack, burst: Tenant, call_api: Any, buffer: MollifierBuffer
) -> None:
    run_id = post(call_api, burst, payload={"secret": "s"})
    body = json.loads(aws.receive_all("DrainQueue")[0]["Body"])
    entry = buffer.get_entry("org_a", run_id)
    assert entry is not None
    assert body == {
        "runId": run_id,
        "orgId": "org_a",
        "envId": "env_a",
        "shard": buffer.keys_for("org_a").shard,
        "entry": {
            "taskId": "hello",
            "createdAt": body["entry"]["createdAt"],
            "snapshot": entry.snapshot,
            "snapshotRef": None,
        },
    }
    assert datetime.fromisoformat(body["entry"]["createdAt"]) == entry.createdAt


# --- whole batches -----------------------------------------------------------------------------------
def deliver(aws: AwsStack, messages: list[dict[str, Any]]) -> set[str]:
    """One drainer invocation on these DrainQueue messages; returns the message ids that failed."""
    spec = aws.stack.function("drainer")
    response = load_handler(spec)(sqs_event(aws, messages), context_for(spec))
    return {f["itemIdentifier"] for f in response["batchItemFailures"]}


def signals_by_run(aws: AwsStack) -> dict[str, dict[str, Any]]:
    return {json.loads(m["Body"])["runId"]: m for m in aws.receive_all("DrainQueue")}


def test_a_batch_creates_its_runs_concurrently(
    aws: AwsStack, burst: Tenant, call_api: Any, configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(sqs_record_concurrency=10)
    run_ids = [post(call_api, burst, payload=i) for i in range(10)]
    # Every create waits for all ten: the batch only completes if they run at the same time.
    barrier = threading.Barrier(10, timeout=10)
    real_trigger = drain_module.engine.trigger

    def meet(*args: Any, **kwargs: Any) -> Any:
        barrier.wait()
        return real_trigger(*args, **kwargs)

    monkeypatch.setattr(drain_module.engine, "trigger", meet)
    assert deliver(aws, list(signals_by_run(aws).values())) == set()
    assert sorted(run_queue_ids(aws)) == sorted(run_ids)


@pytest.fixture
def single_redis(aws: AwsStack, redis_client: Any, configure: Configure) -> Tenant:
    configure(mollifier_enabled=True, mollifier_trip_threshold=0, mollifier_retry_delay_s=0)
    return make_tenant("org_a", "env_a", mollifierEnabled=True)


@pytest.mark.parametrize("batch", [1, 10])
def test_a_drained_batch_takes_three_redis_round_trips(
    aws: AwsStack, single_redis: Tenant, call_api: Any, batch: int
) -> None:
    post(call_api, single_redis)
    assert run_drainer(aws) == []  # the scripts are loaded on the server, as in a warm drainer
    run_ids = [post(call_api, single_redis, payload=i) for i in range(batch)]
    with round_trips(get_buffer().client) as count:
        assert deliver(aws, list(signals_by_run(aws).values())) == set()
    assert count == [3], "organization counts, the pop scripts, the acks"
    assert all(get(call_api, single_redis, run_id)["buffered"] is False for run_id in run_ids)


def test_a_record_fails_only_when_its_own_entry_failure_cannot_be_recorded(
    aws: AwsStack, burst: Tenant, call_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_ids = [post(call_api, burst, payload=i) for i in range(4)]
    doomed = run_ids[1]
    real_trigger = drain_module.engine.trigger

    def store_down_for_doomed(*args: Any, **kwargs: Any) -> Any:
        if kwargs["run_id"] == doomed:
            raise ServiceUnavailable("the run store is unavailable")
        return real_trigger(*args, **kwargs)

    buffer = get_buffer()
    real_requeue = buffer.requeue

    def requeue(entry: Any, **kwargs: Any) -> int:
        if entry.runId == doomed:
            raise RedisConnectionError("Redis went away")
        return real_requeue(entry, **kwargs)

    monkeypatch.setattr(drain_module.engine, "trigger", store_down_for_doomed)
    monkeypatch.setattr(buffer, "requeue", requeue)
    signals = signals_by_run(aws)
    assert deliver(aws, list(signals.values())) == {signals[doomed]["MessageId"]}
    assert sorted(run_queue_ids(aws)) == sorted(set(run_ids) - {doomed})
    stored = buffer.get_entry("org_a", doomed)
    assert stored is not None and stored.status == "DRAINING", "the stale sweep reclaims it"


def test_a_record_fails_only_when_its_own_entry_cannot_be_settled(
    aws: AwsStack,
    buffer_redis: RedisClient,
    configure: Configure,
    call_api: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(mollifier_enabled=True, mollifier_trip_threshold=0)
    tenant_a = make_tenant("org_a", "env_a", mollifierEnabled=True)
    tenant_b = make_tenant("org_b", "env_b", mollifierEnabled=True)
    a1, a2 = post(call_api, tenant_a), post(call_api, tenant_a)
    b1, _ = post(call_api, tenant_b), post(call_api, tenant_b)
    signals = signals_by_run(aws)
    # org_a's two signals: a fair pop of two serves a1 and b1, so a2's signal settles a2 (still
    # buffered: it sends a fresh signal carrying it), and that send fails.
    sqs = sluice_aws.sqs()
    real_send_batch = sqs.send_message_batch

    def refuse_a2(**kwargs: Any) -> Any:
        refused = [e for e in kwargs["Entries"] if json.loads(e["MessageBody"])["runId"] == a2]
        kept = [e for e in kwargs["Entries"] if e not in refused]
        response = real_send_batch(**{**kwargs, "Entries": kept}) if kept else {"Successful": []}
        failed = [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in refused]
        return {**response, "Failed": failed}

    monkeypatch.setattr(sqs, "send_message_batch", refuse_a2)
    assert deliver(aws, [signals[a1], signals[a2]]) == {signals[a2]["MessageId"]}
    assert sorted(run_queue_ids(aws)) == sorted([a1, b1])
    stored = get_buffer().get_entry("org_a", a2)
    assert stored is not None and stored.status == "QUEUED", "its own signal, redelivered, carries it"


def test_runs_a_killed_drainer_popped_are_made_by_the_next_sweep_and_drain(
    aws: AwsStack, burst: Tenant, call_api: Any, configure: Configure
) -> None:
    """The drainer pops a batch and is killed before creating any run: its signals stay invisible
    (DrainQueue's visibility timeout), its entries DRAINING. Once SLUICE_MOLLIFIER_DRAINING_ABANDON_S
    passed, one sweep and one drain make every run."""
    run_ids = [post(call_api, burst) for _ in range(5)]
    dead_signals = aws.sqs.receive_message(QueueUrl=aws.queue_urls["DrainQueue"], MaxNumberOfMessages=10)
    assert len(dead_signals["Messages"]) == 5
    assert len(get_buffer().pop_batch(5)) == 5  # then the drainer is killed
    configure(mollifier_draining_abandon_s=1)
    time.sleep(1.1)
    from sluice import mollifier

    assert mollifier.sweep().reclaimed == 5
    assert run_drainer(aws, rounds=1) == []
    assert sorted(run_queue_ids(aws)) == sorted(run_ids)
    assert all(get(call_api, burst, run_id)["buffered"] is False for run_id in run_ids)


# --- cancel of a run still in the buffer: the drainer then makes no live run of it ---------------
def cancel(call_api: Any, tenant: Tenant, run_id: str) -> Any:
    return call_api("POST", f"/api/v2/runs/{run_id}/cancel", headers=tenant.headers)


def test_a_buffered_run_is_canceled_and_the_drainer_never_enqueues_it(
    aws: AwsStack,
    burst: Tenant,
    call_api: Any,
) -> None:
    run_id = post(call_api, burst, payload={"n": 1}, options={"idempotencyKey": "k", "tags": ["t"]})
    assert get(call_api, burst, run_id)["buffered"] is True

    answer = cancel(call_api, burst, run_id)

    assert (answer.status, answer.json()) == (200, {"id": run_id})
    run = get(call_api, burst, run_id)
    shown = (run["status"], run["buffered"], run["payload"], run["tags"])
    assert shown == ("CANCELED", False, {"n": 1}, ["t"])
    assert run_drainer(aws) == []
    assert get(call_api, burst, run_id)["status"] == "CANCELED"
    assert run_queue_ids(aws) == [], "a canceled run is never sent to RunQueue"
    entry = get_buffer().get_entry("org_a", run_id)
    assert entry is None or entry.materialised, "the drainer acked the entry"
    assert cancel(call_api, burst, run_id).status == 200, "idempotent"
    again = post(call_api, burst, options={"idempotencyKey": "k"})
    assert again == run_id, "the key names the canceled run, as it would a run canceled in the engine"


def test_a_run_popped_by_the_drainer_but_not_yet_created_is_canceled(
    aws: AwsStack,
    burst: Tenant,
    call_api: Any,
) -> None:
    run_id = post(call_api, burst)
    popped = pop_one(get_buffer())
    assert popped is not None and popped.runId == run_id and popped.status == "DRAINING"

    assert cancel(call_api, burst, run_id).status == 200

    assert get(call_api, burst, run_id)["status"] == "CANCELED"


def test_cancel_after_the_drainer_created_the_run_cancels_that_run(
    aws: AwsStack,
    burst: Tenant,
    call_api: Any,
) -> None:
    run_id = post(call_api, burst)
    assert run_drainer(aws) == []
    assert get(call_api, burst, run_id)["status"] == "QUEUED"

    assert cancel(call_api, burst, run_id).status == 200

    assert get(call_api, burst, run_id)["status"] == "CANCELED"
