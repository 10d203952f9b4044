"""AWS calls and Redis round trips per operation, counted on the real clients, and the latency
they model in production.

The counts come from botocore's ``before-call`` event on the process's own clients and a wrapper
around the Redis connection pool's ``get_connection`` (one round trip per command or pipeline);
moto and redis-server answer them. The model prices them at DynamoDB write 5 ms / read 3 ms,
SendMessage(Batch) 8 ms, S3 10 ms, Redis 0.5 ms, serially (every call here waits on the previous).
A drained run is counted in a drainer batch of 1 signal and of 10 (the template's BatchSize),
divided by the runs it made; a batch's creates run concurrently, so its wall time is shorter than
the serial model says.

    .venv/bin/python -m bench.engine_calls
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from bench.mollifier_common import local_stack
from devstack.testing.round_trips import round_trips
from sluice import aws as sluice_aws
from sluice import engine
from sluice.auth import Environment
from sluice.batches import CreateBatchRequest, create_batch, ingest_items, parse_body
from sluice.engine import TriggerBody
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


class Calls:
    def __init__(self) -> None:
        self.aws: Counter[str] = Counter()
        self.redis = 0
        self.runs = 1  # what the counts are divided by: the runs the operation made

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

    clients = [sluice_aws.client(name) for name in ("dynamodb", "sqs", "s3")]
    for client in clients:
        client.meta.events.register("before-call", on_call, unique_id="bench-count")
    try:
        with round_trips(get_redis()) as redis_count:
            yield calls
        calls.redis = redis_count[0]
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", unique_id="bench-count")


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


def main() -> None:
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
                measure(f"drained run, batch {size}", lambda size=size: drained(batches[size]), runs=size)
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
