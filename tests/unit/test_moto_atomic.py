"""devstack.moto_atomic on moto in-process: a cancelled transaction still rolls the table and its
stream back, and the rollback state shares the stream's records instead of copying them; SQS
hands out messages without computing the queue's attributes, and still keeps the retention
period."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models import dynamodb_backends
from moto.sqs.models import Queue, sqs_backends

from devstack.template import REGION
from tests.conftest import AwsStack


def _table(aws: AwsStack) -> tuple[str, Any]:
    name = aws.stack.physical_name("RunsTable")
    return name, dynamodb_backends[aws.stack.account][REGION].get_table(name)


def _put(name: str, run_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": name,
            "Item": {"runId": {"S": run_id}, **extra},
            "ConditionExpression": "attribute_not_exists(runId)",
        }
    }


def _stream(aws: AwsStack, name: str) -> list[tuple[str, str]]:
    """(event, run id) of every record on the table's stream (``aws`` trimmed it for this test)."""
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    arn = aws.dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    return [(r["eventName"], r["dynamodb"]["Keys"]["runId"]["S"]) for r in records]


def test_a_cancelled_transaction_leaves_the_table_and_its_stream_as_they_were(aws: AwsStack) -> None:
    name, _ = _table(aws)
    aws.dynamodb.transact_write_items(TransactItems=[_put(name, "run_a")])
    with pytest.raises(ClientError, match="TransactionCanceled"):
        aws.dynamodb.transact_write_items(TransactItems=[_put(name, "run_b"), _put(name, "run_a")])
    assert "Item" not in aws.dynamodb.get_item(TableName=name, Key={"runId": {"S": "run_b"}})
    aws.dynamodb.transact_write_items(TransactItems=[_put(name, "run_c")])
    assert _stream(aws, name) == [("INSERT", "run_a"), ("INSERT", "run_c")]


def test_the_rollback_state_shares_the_streams_records(aws: AwsStack) -> None:
    # A deep copy of every record made each transaction cost ~42 us per record the table had
    # ever streamed.
    name, table = _table(aws)
    for n in range(3):
        aws.dynamodb.transact_write_items(TransactItems=[_put(name, f"run_{n}")])
    backup = copy.deepcopy(table)
    assert backup.stream_shard.table is backup and backup.items is not table.items
    assert backup.stream_shard.items == table.stream_shard.items
    assert all(a is b for a, b in zip(backup.stream_shard.items, table.stream_shard.items, strict=True))
    backup.stream_shard.items.append(None)
    assert len(table.stream_shard.items) == 3


def test_sqs_hands_out_messages_without_computing_the_queues_attributes(
    aws: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attributes count every message of the queue: computed for each message handed out,
    # a receive from a queue nobody drains cost O(depth) per message.
    computed: list[str] = []
    attributes = Queue.attributes

    def counted(queue: Queue) -> Any:
        computed.append(queue.name)
        return attributes.fget(queue)  # type: ignore[attr-defined]

    monkeypatch.setattr(Queue, "attributes", property(counted))
    url = aws.queue_urls["RunQueue"]
    entries = [{"Id": str(i), "MessageBody": str(i)} for i in range(10)]
    aws.sqs.send_message_batch(QueueUrl=url, Entries=entries)
    computed.clear()
    got = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == [str(i) for i in range(10)]
    assert computed == []


def test_sqs_still_withholds_messages_past_the_retention_period(aws: AwsStack) -> None:
    url = aws.queue_urls["RunQueue"]
    aws.sqs.send_message(QueueUrl=url, MessageBody="kept")
    queue = sqs_backends[aws.stack.account][REGION].get_queue(url.rsplit("/", 1)[1])
    [message] = queue._messages
    message.sent_timestamp -= (int(queue.message_retention_period) - 60) * 1000
    got = aws.sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
    assert [m["Body"] for m in got] == ["kept"]
    message.sent_timestamp -= 120 * 1000
    assert aws.sqs.receive_message(QueueUrl=url).get("Messages", []) == []


def test_concurrent_updates_of_one_item_all_apply(aws: AwsStack) -> None:
    # moto's UpdateItem deep-copies the item it read before taking any lock: another thread adding
    # an attribute to that item meanwhile failed the copy ("dictionary changed size during
    # iteration", a 500 from the streams API's racing mints).
    name, _ = _table(aws)
    aws.dynamodb.put_item(TableName=name, Item={"runId": {"S": "run_busy"}})

    def add(thread: int) -> None:
        for n in range(40):
            aws.dynamodb.update_item(
                TableName=name,
                Key={"runId": {"S": "run_busy"}},
                UpdateExpression="SET #a = :v",
                ExpressionAttributeNames={"#a": f"a{thread}_{n}"},
                ExpressionAttributeValues={":v": {"N": "1"}},
            )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(add, range(8)))
    item = aws.dynamodb.get_item(TableName=name, Key={"runId": {"S": "run_busy"}})["Item"]
    assert len(item) == 1 + 8 * 40
