"""devstack's DynamoDB stream event source: ParallelizationFactor, as Lambda's mapping applies it."""

from __future__ import annotations

import threading
from typing import Any

from devstack.runtime import Invocation
from devstack.streams import StreamReader, StreamSource


class OneShard:
    """A DynamoDB Streams client with one shard of ``records``, read from a sequence number on."""

    def __init__(self, keys: list[str]) -> None:
        self.records = [
            {"eventName": "INSERT", "dynamodb": {"Keys": {"runId": {"S": k}}, "SequenceNumber": str(100 + i)}}
            for i, k in enumerate(keys)
        ]

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-0"}]}}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        kind, seq = kwargs["ShardIteratorType"], int(kwargs.get("SequenceNumber", 0))
        start = {"TRIM_HORIZON": 0, "AT_SEQUENCE_NUMBER": seq - 100, "AFTER_SEQUENCE_NUMBER": seq - 99}[kind]
        return {"ShardIterator": str(start)}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        start = int(ShardIterator)
        return {"Records": self.records[start : start + Limit]}


class Table:
    def describe_table(self, TableName: str) -> dict[str, Any]:
        return {"Table": {"LatestStreamArn": "arn:stream"}}


def _reader(keys: list[str], factor: int, batch_size: int = 3) -> StreamReader:
    source = StreamSource(
        name="RunsStream",
        table="Runs",
        batch_size=batch_size,
        starting_position="TRIM_HORIZON",
        report_failures=True,
        max_retries=5,
        parallelization=factor,
    )
    return StreamReader(source, Table(), OneShard(keys), log=lambda _: None)


def _keys(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["Keys"]["runId"]["S"] for r in event["Records"]]


def test_the_factor_splits_a_poll_by_key_into_concurrent_batches_in_order() -> None:
    keys = ["a", "b", "c", "a", "d", "b", "a", "e"]
    reader = _reader(keys, factor=4)
    batches: list[list[str]] = []
    in_flight = threading.Barrier(2, timeout=5)  # the first two batches must be invoked at once

    def invoke(event: dict[str, Any]) -> Invocation:
        batches.append(_keys(event))
        if len(batches) <= 2:
            in_flight.wait()
        return Invocation(result={"batchItemFailures": []})

    # Up to factor x BatchSize records a poll: all 8 here.
    assert reader.poll_once(invoke) == len(keys)
    assert sorted(k for b in batches for k in b) == sorted(keys) and len(batches) > 1
    for batch in batches:
        for key in set(batch):  # one key's records are in one batch, in stream order
            assert [k for k in keys if k == key] == [k for k in batch if k == key]
            assert not any(key in other for other in batches if other is not batch)
    assert reader.poll_once(invoke) == 0


def test_a_factor_of_one_is_one_batch_of_at_most_batch_size() -> None:
    reader = _reader(["a", "b", "c", "d"], factor=1)
    seen: list[list[str]] = []
    reader.poll_once(lambda e: seen.append(_keys(e)) or Invocation(result=None))
    assert seen == [["a", "b", "c"]]


def test_a_failed_record_in_any_batch_is_retried_from_with_everything_after_it() -> None:
    keys = ["a", "b", "c", "d", "e", "f"]
    reader = _reader(keys, factor=3, batch_size=2)
    rounds: list[set[str]] = []

    def invoke(event: dict[str, Any]) -> Invocation:
        rounds[-1].update(_keys(event))
        failures = [
            {"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
            for r in event["Records"]
            if r["dynamodb"]["Keys"]["runId"]["S"] == "d" and len(rounds) == 1
        ]
        return Invocation(result={"batchItemFailures": failures})

    rounds.append(set())
    assert reader.poll_once(invoke) == 3  # a, b, c are behind the checkpoint
    rounds.append(set())
    assert reader.poll_once(invoke) == 3
    assert rounds == [set(keys), {"d", "e", "f"}]
