"""No accepted run is lost when Redis loses its data: the drain signal carries its entry, so SQS,
not Redis, is the durable copy of a buffered trigger."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.handlers import context_for, load_handler
from devstack.services import Service, start_redis
from sluice.config import reload_settings
from sluice.mollifier import drain as drain_module
from sluice.mollifier import get_buffer
from sluice.redis import RedisClient, reset_redis
from tests.conftest import AwsStack, Tenant, make_tenant
from tests.unit.mollifier.test_drain import run_drainer, sqs_event

Configure = Callable[..., None]


def fire(call_api: Any, tenant: Tenant, start: int, count: int) -> list[tuple[str, bool]]:
    """(id, buffered) of each trigger answered 200; every one must become a run."""
    answers = []
    for i in range(start, start + count):
        res = call_api(
            "POST", "/api/v1/tasks/hello/trigger", json_body={"payload": {"i": i}}, headers=tenant.headers
        )
        assert res.status == 200, res.body
        answers.append((res.json()["id"], "notice" in res.json()))
    return answers


def assert_each_is_exactly_one_run(
    aws: AwsStack, call_api: Any, tenant: Tenant, ids: list[str], *others: tuple[Tenant, list[str]]
) -> None:
    """Every id (of ``tenant``, then of each of ``others``) is exactly one run, on RunQueue."""
    for _ in range(5):  # re-signals carry entries that waited their fair turn
        run_drainer(aws, rounds=50)
    owners = [(tenant, ids), *others]
    ids = [run_id for _, owned in owners for run_id in owned]
    for owner, run_id in ((owner, run_id) for owner, owned in owners for run_id in owned):
        res = call_api("GET", f"/api/v1/runs/{run_id}", headers=owner.headers)
        assert res.status == 200, f"{run_id}: {res.body}"
        assert res.json()["buffered"] is False
    table = aws.stack.physical_name("RunsTable")
    assert aws.dynamodb.scan(TableName=table, Select="COUNT")["Count"] == len(ids)
    sent = [m["runId"] for m in aws.bodies("RunQueue")]
    assert sorted(set(sent)) == sorted(ids)  # each on RunQueue, at least once, keyed by run id


@pytest.fixture
def tripped(aws: AwsStack, buffer_redis: RedisClient, configure: Configure) -> Tenant:
    configure(mollifier_enabled=True, mollifier_trip_threshold=0, mollifier_retry_delay_s=0)
    return make_tenant("org_a", "env_a", mollifierEnabled=True)


def test_flushall_halfway_through_a_burst_loses_no_accepted_run(
    aws: AwsStack, tripped: Tenant, buffer_redis: RedisClient, call_api: Any
) -> None:
    first = fire(call_api, tripped, 0, 15)
    assert all(buffered for _, buffered in first), "the environment is tripped"
    run_drainer(aws, rounds=1)  # some are drained before the loss
    buffer_redis.flushall()
    second = fire(call_api, tripped, 15, 15)
    assert_each_is_exactly_one_run(aws, call_api, tripped, [rid for rid, _ in first + second])


def test_flushall_while_a_batch_creates_its_runs_loses_no_accepted_run(
    aws: AwsStack,
    buffer_redis: RedisClient,
    configure: Configure,
    call_api: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch of one organization's signals pops in fair order, so it works the other
    organization's entries too and leaves some of its own buffered; Redis loses everything while
    the batch creates its runs. The acks find nothing, the signals whose entries were not popped
    create them from their carried copies, and the other organization's signals, still queued,
    find their runs made."""
    configure(mollifier_enabled=True, mollifier_trip_threshold=0, mollifier_retry_delay_s=0)
    busy = make_tenant("org_a", "env_a", mollifierEnabled=True)
    other = make_tenant("org_b", "env_b", mollifierEnabled=True)
    busy_ids = [rid for rid, _ in fire(call_api, busy, 0, 6)]
    other_ids = [rid for rid, _ in fire(call_api, other, 6, 3)]
    messages = aws.receive_all("DrainQueue")
    busy_signals = [m for m in messages if json.loads(m["Body"])["orgId"] == "org_a"]
    real_trigger = drain_module.engine.trigger
    lost = threading.Event()

    def flush_then_create(*args: Any, **kwargs: Any) -> Any:
        if not lost.is_set():
            lost.set()
            buffer_redis.flushall()
        return real_trigger(*args, **kwargs)

    monkeypatch.setattr(drain_module.engine, "trigger", flush_then_create)
    spec = aws.stack.function("drainer")
    response = load_handler(spec)(sqs_event(aws, busy_signals), context_for(spec))
    assert response == {"batchItemFailures": []}
    assert lost.is_set()
    table = aws.stack.physical_name("RunsTable")
    made = aws.dynamodb.scan(TableName=table, Select="COUNT")["Count"]
    assert made == 9, "3 + 3 popped, and the 3 own entries not popped made from their signals' copies"
    url = aws.queue_urls["DrainQueue"]
    for m in messages:  # the batch's signals are deleted; the others go back on the queue
        handle = m["ReceiptHandle"]
        if m in busy_signals:
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
        else:
            aws.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    assert_each_is_exactly_one_run(aws, call_api, busy, busy_ids, (other, other_ids))


@pytest.fixture
def own_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Service]]:
    """A redis-server of this test's own, which the test kills and restarts empty."""
    servers = [start_redis()]
    monkeypatch.setenv("SLUICE_REDIS_URL", servers[0].url)
    monkeypatch.setenv("SLUICE_REDIS_CLUSTER", "false")
    monkeypatch.setenv("SLUICE_REDIS_SOCKET_TIMEOUT_MS", "200")
    reload_settings()
    reset_redis()
    yield servers
    for server in servers:
        server.stop()
    reset_redis()


def test_a_killed_and_restarted_empty_redis_loses_no_accepted_run(
    aws: AwsStack, own_redis: list[Service], configure: Configure, call_api: Any
) -> None:
    configure(mollifier_enabled=True, mollifier_trip_threshold=0, mollifier_retry_delay_s=0)
    tenant = make_tenant("org_a", "env_a", mollifierEnabled=True)
    first = fire(call_api, tenant, 0, 10)
    assert all(buffered for _, buffered in first)
    port = int(own_redis[0].url.rsplit(":", 1)[1].split("/")[0])
    own_redis[0].stop()

    down = call_api("GET", f"/api/v1/runs/{first[0][0]}", headers=tenant.headers)
    assert down.status == 503 and down.json()["code"] == "service_unavailable"
    during = fire(call_api, tenant, 10, 5)  # the gate fails open: these pass through
    assert not any(buffered for _, buffered in during)

    own_redis.append(start_redis(port=port))
    assert get_buffer().client.dbsize() == 0
    assert_each_is_exactly_one_run(aws, call_api, tenant, [rid for rid, _ in first + during])


def test_a_signal_whose_pop_served_another_entry_carries_its_own_on(
    aws: AwsStack, tripped: Tenant, buffer_redis: RedisClient, call_api: Any
) -> None:
    """The drainer pops in fair order, not its signal's entry: before the signal is deleted, its
    entry gets a fresh signal carrying it, so a later Redis loss still loses nothing."""
    (older, _), (newer, _) = fire(call_api, tripped, 0, 2)
    messages = aws.receive_all("DrainQueue")
    newer_signal = [m for m in messages if json.loads(m["Body"])["runId"] == newer]
    for m in messages:  # leave the older entry's own signal on the queue
        if m not in newer_signal:
            aws.sqs.change_message_visibility(
                QueueUrl=aws.queue_urls["DrainQueue"], ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
    spec = aws.stack.function("drainer")
    response = load_handler(spec)(sqs_event(aws, newer_signal), context_for(spec))
    assert response == {"batchItemFailures": []}
    url = aws.queue_urls["DrainQueue"]
    aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=newer_signal[0]["ReceiptHandle"])
    assert get_buffer().get_entry("org_a", older).materialised  # the pop served the older entry

    carriers = [json.loads(m["Body"]) for m in aws.receive_all("DrainQueue")]
    assert newer in [c["runId"] for c in carriers if c.get("entry")]
    # Put the live signals back (receiving hid them) and lose Redis.
    aws.sqs.purge_queue(QueueUrl=url)
    for body in carriers:
        aws.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    buffer_redis.flushall()
    assert_each_is_exactly_one_run(aws, call_api, tripped, [older, newer])
