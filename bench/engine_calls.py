"""AWS calls and Redis round trips per operation, counted on the real clients, and the latency
they model in production.

The counts come from botocore's ``before-call`` event on the process's own clients and a wrapper
around the Redis connection pool's ``get_connection`` (one round trip per command or pipeline);
moto and redis-server answer them. The model prices them at DynamoDB write 5 ms / read 3 ms,
SendMessage(Batch) 8 ms, S3 10 ms, Redis 0.5 ms, serially (every call here waits on the previous).
A drained run is counted in a drainer batch of 1 signal and of 10 (the template's BatchSize),
divided by the runs it made; a batch's creates run concurrently, so its wall time is shorter than
the serial model says.

Then, before and after side by side (``bench.baseline``: this tree and where it left ``main``,
each in a fresh interpreter): DynamoDB writes and write capacity units per run from trigger to
start for each path, the dispatcher's sends included, and the dispatcher's CPU per run for a
stream batch of 100 with AWS stubbed (``bench.stub_aws``: Sluice and botocore, no moto). WCU are
DynamoDB's billing rule applied to the items written: 1 per started KB, twice that inside a
transaction, an update billed on the item it leaves.

    .venv/bin/python -m bench.engine_calls [--baseline <ref>]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import boto3

from bench.baseline import before_and_after
from bench.mollifier_common import ENDPOINT, local_stack
from bench.stub_aws import stubbed
from devstack.testing.round_trips import round_trips
from sluice import aws as sluice_aws
from sluice import batches, engine
from sluice.auth import Environment
from sluice.batches import CreateBatchRequest, create_batch, ingest_items, parse_body
from sluice.engine import TriggerBody, lifecycle
from sluice.mollifier import DrainSignal, drain_batch, get_buffer
from sluice.mollifier.models import Snapshot
from sluice.mollifier.signals import carried
from sluice.redis import get_redis

COST_MS = {
    "PutItem": 5.0,
    "UpdateItem": 5.0,
    "TransactWriteItems": 5.0,  # one round trip; DynamoDB bills it as two writes per item
    "GetItem": 3.0,
    "SendMessage": 8.0,
    "SendMessageBatch": 8.0,
    "PutObject": 10.0,
}
REDIS_MS = 0.5
# Modelled latency before the outbox, for the ratio: the table (measured the same way on
# the previous engine); the cached trigger was PutItem (lost) + GetItem x2 + UpdateItem (lost claim).
BEFORE_MS = {
    "trigger, no key": 26.0,
    "trigger, new key": 31.0,
    "trigger, cached key": 16.0,
    "drained run": 32.0,
    # Measured the same way on f6500b7, per item of a 100-item request: SendMessage x1 and
    # 2.07 Redis round trips (SISMEMBER, the mark script), the request's seal shared by its items.
    "batch item": 9.2,
}
DRAIN_BATCHES = (1, 10)
BATCH_ITEMS = 100  # items of one phase-2 request


WRITES = ("PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem", "DeleteItem")
DISPATCH_BATCH = 100  # the dispatcher's BatchSize
CPU_ROUNDS = 5


def _size(value: Any) -> int:
    """DynamoDB's size of an attribute value in bytes (its documented rule, closely enough)."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return len(v.lstrip("-").replace(".", "")) // 2 + 2
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_size({kind[0]: x}) for x in v)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _size(x) for k, x in v.items())
    return 3 + sum(1 + _size(x) for x in v)  # L


def item_kb(item: dict[str, Any]) -> int:
    return max(1, math.ceil(sum(len(k.encode()) + _size(v) for k, v in item.items()) / 1024))


class Calls:
    def __init__(self) -> None:
        self.aws: Counter[str] = Counter()
        self.redis = 0
        self.runs = 1  # what the counts are divided by: the runs the operation made
        self.wcu = 0.0
        self.updated: list[tuple[str, dict[str, Any]]] = []  # (table, key): billed once read back

    def on_params(self, model: Any, params: dict[str, Any]) -> None:
        name = model.name
        if name == "PutItem":
            self.wcu += item_kb(params["Item"])
        elif name == "TransactWriteItems":
            for action in params["TransactItems"]:
                if "Put" in action:
                    self.wcu += 2 * item_kb(action["Put"]["Item"])
                elif "Update" in action:
                    self.updated += [(action["Update"]["TableName"], action["Update"]["Key"])] * 2
                else:
                    self.wcu += 2
        elif name == "UpdateItem":
            self.updated.append((params["TableName"], params["Key"]))
        elif name == "BatchWriteItem":
            for requests in params["RequestItems"].values():
                self.wcu += sum(
                    item_kb(r["PutRequest"]["Item"]) if "PutRequest" in r else 1 for r in requests
                )

    def settle(self, dynamodb: Any) -> None:
        """Bill the updates on the items they left."""
        for table, key in self.updated:
            item = dynamodb.get_item(TableName=table, Key=key).get("Item")
            self.wcu += item_kb(item) if item else 1
        self.updated.clear()

    def writes(self) -> float:
        return sum(n for op, n in self.aws.items() if op in WRITES) / self.runs

    def per_run(self) -> tuple[dict[str, float], float]:
        return {op: n / self.runs for op, n in self.aws.items()}, self.redis / self.runs

    def model_ms(self) -> float:
        aws, redis = self.per_run()
        return sum(COST_MS.get(op, 5.0) * n for op, n in aws.items()) + REDIS_MS * redis


@contextmanager
def counting() -> Iterator[Calls]:
    calls = Calls()

    def on_call(model: Any, **_: Any) -> None:
        calls.aws[model.name] += 1

    def on_params(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.on_params(model, params)

    clients = [sluice_aws.client(name) for name in ("dynamodb", "sqs", "s3")]
    for client in clients:
        client.meta.events.register("before-call", on_call, unique_id="bench-count")
        client.meta.events.register("before-parameter-build", on_params, unique_id="bench-params")
    try:
        with round_trips(get_redis()) as redis_count:
            yield calls
        calls.redis = redis_count[0]
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", unique_id="bench-count")
            client.meta.events.unregister("before-parameter-build", unique_id="bench-params")


def measure(name: str, action: Callable[[], Any], runs: int = 1) -> tuple[str, Calls]:
    with counting() as calls:
        action()
    calls.runs = runs
    return name, calls


def buffered_signals(env: Environment, count: int) -> list[DrainSignal]:
    """``count`` buffered triggers and their drain signals, each carrying its entry as intake's do."""
    buffer = get_buffer()
    body = TriggerBody(payload={"n": 1})
    signals = []
    for _ in range(count):
        run_id = engine.new_run_id()
        buffer.accept(
            run_id=run_id,
            org_id=env.org_id,
            env_id=env.env_id,
            snapshot=Snapshot(taskId="hello", envType="DEVELOPMENT", body=body),
            created_at=datetime.now(UTC),
        )
        entry = buffer.get_entry(env.org_id, run_id)
        assert entry is not None
        shard = buffer.keys_for(env.org_id).shard
        signals.append(
            DrainSignal(runId=run_id, orgId=env.org_id, envId=env.env_id, shard=shard, entry=carried(entry))
        )
    return signals


def drained(signals: list[DrainSignal]) -> None:
    assert drain_batch(signals) == ["drained"] * len(signals)


def batch_items(env: Environment) -> None:
    batch_id = create_batch(env, CreateBatchRequest(runCount=BATCH_ITEMS)).batch.id
    lines = [json.dumps({"index": i, "task": "hello", "payload": {"n": i}}) for i in range(BATCH_ITEMS)]
    body = "\n".join(lines).encode() + b"\n"
    result = ingest_items(env, batch_id, parse_body(body))
    assert result.sealed and result.itemsAccepted == BATCH_ITEMS


class Stream:
    """RunsTable's stream as the dispatcher's mapping hands it over: the records it has not
    handed yet that the template's filter matches (a write that asks for a send)."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.streams = boto3.client("dynamodbstreams", region_name=dynamodb.meta.region_name)
        self.arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self.seen: set[str] = set()

    def new_records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for shard in self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]:
            iterator = self.streams.get_shard_iterator(
                StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while (page := self.streams.get_records(ShardIterator=iterator, Limit=1000))["Records"]:
                records += page["Records"]
                iterator = page["NextShardIterator"]
        fresh = [r for r in records if r["dynamodb"]["SequenceNumber"] not in self.seen]
        self.seen.update(r["dynamodb"]["SequenceNumber"] for r in fresh)
        return [
            r
            for r in fresh
            if r["eventName"] in ("INSERT", "MODIFY")
            and r["dynamodb"].get("NewImage", {}).get("dispatchPending", {}).get("BOOL") is True
        ]


def to_start(
    name: str, action: Callable[[], Any], runs: int, stream: Stream, dynamodb: Any
) -> tuple[str, Calls]:
    """A path from its request to a run on RunQueue: the action, then the dispatcher's batch."""
    stream.new_records()  # what earlier paths left is not this path's
    with counting() as calls:
        action()
        engine.dispatch_records(stream.new_records())
    calls.runs = runs
    calls.settle(dynamodb)
    return name, calls


def retried(env: Environment, stream: Stream) -> Callable[[], None]:
    """A started run failing with a retry left: the retry's write and its re-send."""
    run_id = engine.trigger(env, "hello", TriggerBody(payload={"n": 1})).id
    engine.dispatch_records(stream.new_records())
    token = lifecycle.start(env, run_id, lifecycle.StartBody()).token

    def fail() -> None:
        body = lifecycle.FailBody.model_validate({"leaseToken": token, "error": {"message": "boom"}})
        lifecycle.fail(env, run_id, body)

    return fail


def dispatcher_cpu_ms(env: Environment, stream: Stream) -> float:
    """CPU per run of one dispatcher batch of DISPATCH_BATCH new runs, AWS stubbed; best of rounds."""
    body = TriggerBody(payload={"n": 1})
    stream.new_records()
    for _ in range(DISPATCH_BATCH):
        engine.trigger(env, "hello", body)
    records = stream.new_records()
    best = math.inf
    with stubbed():
        engine.dispatch_records(records)  # warm: the clients' first calls load their models
        for _ in range(CPU_ROUNDS):
            start = time.process_time()
            engine.dispatch_records(records)
            best = min(best, time.process_time() - start)
    return best * 1000 / len(records)


def batch_item_runs(env: Environment, sqs: Any, queue_url: str) -> Callable[[], None]:
    """A phase-2 request, then ``batch_runs`` creating its items' runs from BatchItemQueue."""

    def action() -> None:
        batch_items(env)
        while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                batches.process_message(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    return action


def child() -> dict[str, Any]:
    """The figures of the tree on the path (see ``bench.baseline``)."""
    with contextlib.redirect_stdout(io.StringIO()), local_stack() as (stack, _, clients):
        dynamodb = clients["dynamodb"]
        stream = Stream(dynamodb, stack.physical_name("RunsTable"))
        env = Environment(org_id="org_bench", env_id="env_bench")
        body = TriggerBody(payload={"n": 1})
        drained(buffered_signals(env, 1))
        signals = buffered_signals(env, 10)
        fail = retried(env, stream)
        counter = iter(range(10**6))
        paths = [
            to_start("no key", lambda: engine.trigger(env, "hello", body), 1, stream, dynamodb),
            to_start(
                "idempotency key",
                lambda: engine.trigger(
                    env,
                    "hello",
                    TriggerBody.model_validate(
                        {"payload": 1, "options": {"idempotencyKey": f"k{next(counter)}"}}
                    ),
                ),
                1,
                stream,
                dynamodb,
            ),
            to_start("buffered (drained, batch 10)", lambda: drained(signals), 10, stream, dynamodb),
            to_start(
                f"batch item ({BATCH_ITEMS} a request)",
                batch_item_runs(env, clients["sqs"], stack.queue_url("BatchItemQueue", ENDPOINT)),
                BATCH_ITEMS,
                stream,
                dynamodb,
            ),
            to_start("retry (fail -> re-sent)", fail, 1, stream, dynamodb),
        ]
        cpu = dispatcher_cpu_ms(env, stream)
    return {
        "paths": {
            name: {"calls": c.per_run()[0], "writes": c.writes(), "wcu": c.wcu / c.runs, "runs": c.runs}
            for name, c in paths
        },
        "dispatcher_cpu_ms": cpu,
    }


def side_by_side(ref: str | None) -> None:
    before, after, short = before_and_after("bench.engine_calls", [], ref)
    print(f"\nDynamoDB writes and WCU per run, trigger to RunQueue (before = {short}, after = this tree)")
    print(f"{'path':<30} {'writes':>13} {'WCU':>13}  calls after")
    for name, now in after["paths"].items():
        was = before["paths"][name]
        calls = ", ".join(f"{op} x{n:g}" for op, n in sorted(now["calls"].items()))
        writes = f"{was['writes']:>5.2f} -> {now['writes']:<5.2f}"
        print(f"{name:<30} {writes} {was['wcu']:>5.2f} -> {now['wcu']:<5.2f}  {calls}")
    b, a = before["dispatcher_cpu_ms"], after["dispatcher_cpu_ms"]
    label = f"dispatcher CPU per run (batch of {DISPATCH_BATCH}, AWS stubbed)"
    print(f"{label}: {b:.3f} ms -> {a:.3f} ms ({a / b:.2f}x)")
    print(json.dumps({"before": before, "after": after}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", help="the commit to compare with (default: merge-base with main)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child()))
        return
    model_table()
    side_by_side(args.baseline)


def model_table() -> None:
    with contextlib.redirect_stdout(io.StringIO()), local_stack():
        env = Environment(org_id="org_bench", env_id="env_bench")
        body = TriggerBody(payload={"n": 1})
        keyed = TriggerBody.model_validate({"payload": 1, "options": {"idempotencyKey": "k"}})
        drained(buffered_signals(env, 1))  # the buffer's scripts loaded, as in a warm drainer
        batches = {size: buffered_signals(env, size) for size in DRAIN_BATCHES}
        rows = [
            measure("trigger, no key", lambda: engine.trigger(env, "hello", body)),
            measure("trigger, new key", lambda: engine.trigger(env, "hello", keyed)),
            measure("trigger, cached key", lambda: engine.trigger(env, "hello", keyed)),
            *(
                measure(f"drained run, batch {size}", partial(drained, batches[size]), runs=size)
                for size in DRAIN_BATCHES
            ),
            measure(f"batch item, {BATCH_ITEMS} a request", lambda: batch_items(env), runs=BATCH_ITEMS),
        ]
    print("Per operation (drained run: per run of its drainer batch; batch item: per item of its request)")
    print(f"{'operation':<26} {'AWS calls':<34} {'Redis':>5} {'model ms':>9} {'before':>8} {'ratio':>6}")
    for name, calls in rows:
        aws, redis = calls.per_run()
        aws_calls = ", ".join(f"{op} x{n:g}" for op, n in sorted(aws.items())) or "-"
        before_ms = BEFORE_MS[name.split(",")[0] if name.startswith(("drained", "batch")) else name]
        print(
            f"{name:<26} {aws_calls:<34} {redis:>5g} {calls.model_ms():>9.1f} "
            f"{before_ms:>8.1f} {calls.model_ms() / before_ms:>6.2f}"
        )
    print(json.dumps({name: {"aws": c.per_run()[0], "redis": c.per_run()[1]} for name, c in rows}))


if __name__ == "__main__":
    main()
