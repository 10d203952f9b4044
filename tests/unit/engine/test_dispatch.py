"""The outbox: one write per trigger, and the dispatcher that puts runs on RunQueue."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from sluice import aws as sluice_aws
from sluice import engine
from sluice.engine import lifecycle, store
from sluice.engine.models import TriggerBody
from sluice.errors import NotFound
from tests.conftest import AwsStack, Tenant, receive_all


class CallCounter:
    """Counts the calls made through the process's real DynamoDB, SQS and S3 clients."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.clients = [sluice_aws.client(service) for service in ("dynamodb", "sqs", "s3")]
        for client in self.clients:
            client.meta.events.register("before-call", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def close(self) -> None:
        for client in self.clients:
            client.meta.events.unregister("before-call", self._count)


@pytest.fixture
def count_calls() -> Iterator[Callable[[], CallCounter]]:
    """Start counting calls from now (the process keeps its clients, so the counting stops after the test)."""
    counters: list[CallCounter] = []

    def start() -> CallCounter:
        counters.append(CallCounter())
        return counters[-1]

    yield start
    for counter in counters:
        counter.close()


def _trigger(tenant: Tenant, **options: Any) -> engine.TriggerResult:
    return engine.trigger(tenant.env, "hello", TriggerBody.model_validate({"payload": 1, "options": options}))


def _queue(aws: AwsStack) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in aws.receive_all("RunQueue")]


def test_a_trigger_is_one_aws_call_without_a_key_with_a_new_key_and_cached(
    aws: AwsStack, tenant: Tenant, count_calls: Callable[[], CallCounter]
) -> None:
    counter = count_calls()
    _trigger(tenant)
    assert counter.calls == ["PutItem"]
    counter.calls.clear()
    first = _trigger(tenant, idempotencyKey="k")
    assert counter.calls == ["TransactWriteItems"]
    counter.calls.clear()
    cached = _trigger(tenant, idempotencyKey="k")
    assert counter.calls == ["TransactWriteItems"]
    assert (cached.id, cached.is_cached, first.is_cached) == (first.id, True, False)


def test_a_redelivered_trigger_with_the_same_run_id_is_answered_from_the_failed_condition(
    aws: AwsStack, tenant: Tenant, count_calls: Callable[[], CallCounter]
) -> None:
    body = TriggerBody.model_validate({"payload": 1})
    engine.trigger(tenant.env, "hello", body, run_id="run_fixed")
    counter = count_calls()
    again = engine.trigger(tenant.env, "hello", body, run_id="run_fixed")
    assert counter.calls == ["PutItem"] and again.is_cached and again.id == "run_fixed"


def test_every_new_run_reaches_run_queue_once_grouped_by_org(aws: AwsStack, tenant: Tenant) -> None:
    ids = {_trigger(tenant).id for _ in range(25)}
    raw = aws.receive_all("RunQueue")
    assert sorted(json.loads(m["Body"])["runId"] for m in raw) == sorted(ids)
    assert {m["Attributes"]["MessageGroupId"] for m in raw} == {tenant.env.org_id}


def test_dispatching_writes_nothing_to_dynamodb(
    aws: AwsStack, tenant: Tenant, count_calls: Callable[[], CallCounter]
) -> None:
    ids = [_trigger(tenant).id for _ in range(12)]
    counter = count_calls()
    assert aws.run_streams() > 0
    # The trigger's PutItem is the run's only write until a worker starts it: the sends are the
    # dispatcher's only calls (how many depends on how ParallelizationFactor split the records).
    assert counter.calls and set(counter.calls) == {"SendMessageBatch"}
    assert {b["runId"] for b in _queue(aws)} == set(ids)


def test_a_failed_run_is_never_sent(aws: AwsStack, tenant: Tenant) -> None:
    body = TriggerBody.model_validate({"payload": 1})
    engine.trigger(tenant.env, "hello", body, error=engine.RunError(code="X", message="no"))
    assert _queue(aws) == []


def test_a_delayed_run_is_sent_with_its_delay(
    aws: AwsStack, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = sluice_aws.sqs()
    seen: list[dict[str, Any]] = []
    real = sqs.send_message_batch

    def spy(**kwargs: Any) -> Any:
        seen.extend(kwargs["Entries"])
        return real(**kwargs)

    monkeypatch.setattr(sqs, "send_message_batch", spy)
    _trigger(tenant, delay="10m")
    parked = _trigger(tenant, delay="2h")
    aws.run_streams()
    assert [590 <= e["DelaySeconds"] <= 600 for e in seen] == [True], "2h is past SQS's ceiling: parked"
    run = engine.get_run(tenant.env, parked.id)
    assert run.delayUntil is not None
    # The run reaper releases it 15 minutes before it is due; then it goes with SQS's ceiling.
    assert lifecycle.release_due(run.delayUntil - timedelta(minutes=15)) == 1
    aws.run_streams()
    assert [e["DelaySeconds"] for e in seen[1:]] == [900]


def test_other_writes_to_a_run_never_resend_it_and_request_dispatch_does(
    aws: AwsStack, tenant: Tenant
) -> None:
    run_id = _trigger(tenant).id
    assert [m["runId"] for m in _queue(aws)] == [run_id]
    table = aws.stack.physical_name("RunsTable")
    aws.dynamodb.update_item(
        TableName=table,
        Key={"runId": {"S": run_id}},
        UpdateExpression="ADD streamKeys :k SET #s = :s, heartbeatAt = :h",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":k": {"SS": ["main"]}, ":s": {"S": "EXECUTING"}, ":h": {"N": "1"}},
    )
    assert _queue(aws) == []  # (what was received before stays invisible; nothing new was sent)
    assert engine.get_run(tenant.env, run_id).status == "EXECUTING"

    engine.request_dispatch(run_id)
    messages = _queue(aws)
    assert [(m["runId"], m["dispatchSeq"]) for m in messages] == [(run_id, 2)]


def test_request_dispatch_of_an_unknown_run_is_not_found(aws: AwsStack) -> None:
    with pytest.raises(NotFound):
        engine.request_dispatch("run_nope")


def test_a_failure_halfway_through_a_send_message_batch_resends_only_what_failed(
    aws: AwsStack, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [_trigger(tenant).id for _ in range(10)]
    sqs = sluice_aws.sqs()
    real = sqs.send_message_batch
    calls: list[int] = []

    def half_fails(**kwargs: Any) -> Any:
        entries = kwargs["Entries"]
        calls.append(len(entries))
        if len(calls) > 1:
            return real(**kwargs)
        keep, fail = entries[:5], entries[5:]
        response = real(**{**kwargs, "Entries": keep})
        response["Failed"] = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "x"} for e in fail
        ]
        return response

    monkeypatch.setattr(sqs, "send_message_batch", half_fails)
    # One dispatcher batch of the ten (the stream mapping would split them ParallelizationFactor ways).
    assert engine.dispatch_records(aws.run_records(ids)) == []
    assert calls == [10, 5]
    messages = receive_all(aws.sqs, aws.queue_urls["RunQueue"], 0)
    assert sorted(json.loads(m["Body"])["runId"] for m in messages) == sorted(ids)


def test_a_batch_that_keeps_failing_reports_the_first_unsent_record_and_sends_nothing_after_it(
    aws: AwsStack, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [_trigger(tenant).id for _ in range(15)]
    records = [r for r in aws.run_records(ids) if r["eventName"] == "INSERT"]
    sqs = sluice_aws.sqs()
    real = sqs.send_message_batch
    state = {"calls": 0}

    def second_chunk_fails(**kwargs: Any) -> Any:
        state["calls"] += 1
        entries = kwargs["Entries"]
        if len(entries) == 10:
            return real(**kwargs)
        return {
            "Successful": [],
            "Failed": [{"Id": e["Id"], "SenderFault": False, "Code": "X"} for e in entries],
        }

    monkeypatch.setattr(sqs, "send_message_batch", second_chunk_fails)
    monkeypatch.setattr("sluice.engine.dispatch.SEND_BACKOFF_S", 0)
    failed = engine.dispatch_records(records)
    assert failed == [records[10]["dynamodb"]["SequenceNumber"]]
    sent = [
        json.loads(m["Body"])["runId"]
        for m in aws.sqs.receive_message(QueueUrl=aws.queue_urls["RunQueue"], MaxNumberOfMessages=10)[
            "Messages"
        ]
    ]
    assert sorted(sent) == sorted(ids[:10])


def test_a_redelivered_stream_batch_makes_no_second_run(aws: AwsStack, tenant: Tenant) -> None:
    ids = [_trigger(tenant).id for _ in range(5)]
    records = aws.run_records(ids)
    assert engine.dispatch_records(records) == []
    assert engine.dispatch_records(records) == []  # the same batch again, as Lambda may redeliver it
    table = aws.stack.physical_name("RunsTable")
    assert aws.dynamodb.scan(TableName=table, Select="COUNT")["Count"] == 5
    assert {m["runId"] for m in _queue(aws)} == set(ids)  # at least once, keyed by run id


def test_the_run_item_carries_its_dispatch_attributes_at_top_level(aws: AwsStack, tenant: Tenant) -> None:
    run_id = _trigger(tenant, delay="1m").id
    item = aws.dynamodb.get_item(
        TableName=aws.stack.physical_name("RunsTable"), Key={"runId": {"S": run_id}}
    )["Item"]
    assert item["status"] == {"S": "DELAYED"} and item["dispatchSeq"] == {"N": "1"}
    assert item["dispatchPending"] == {"BOOL": True} and "delayUntil" in item
    aws.run_streams()
    item = aws.dynamodb.get_item(
        TableName=aws.stack.physical_name("RunsTable"), Key={"runId": {"S": run_id}}
    )["Item"]
    # The dispatcher leaves the item as it was; the worker's start clears the flag (test_lifecycle).
    assert item["dispatchPending"] == {"BOOL": True} and item["dispatchSeq"] == {"N": "1"}
    assert store.run_from_item(item).id == run_id
