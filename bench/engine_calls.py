"""AWS calls and Redis round trips per operation, counted on the real clients, and the latency
they model in production.

The counts come from botocore's ``before-call`` event on the process's own clients and a wrapper
around the Redis connection pool's ``get_connection`` (one round trip per command or pipeline);
moto and redis-server answer them. The model prices them at DynamoDB write 5 ms / read 3 ms,
SendMessage(Batch) 8 ms, S3 10 ms, Redis 0.5 ms, serially (every call here waits on the previous).

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
from sluice import aws as sluice_aws
from sluice import engine
from sluice.auth import Environment
from sluice.engine import TriggerBody
from sluice.mollifier import DrainSignal, drain_signal, get_buffer
from sluice.mollifier.models import Snapshot
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
}


class Calls:
    def __init__(self) -> None:
        self.aws: Counter[str] = Counter()
        self.redis = 0

    def model_ms(self) -> float:
        return sum(COST_MS.get(op, 5.0) * n for op, n in self.aws.items()) + REDIS_MS * self.redis


@contextmanager
def counting() -> Iterator[Calls]:
    calls = Calls()

    def on_call(model: Any, **_: Any) -> None:
        calls.aws[model.name] += 1

    clients = [sluice_aws.client(name) for name in ("dynamodb", "sqs", "s3")]
    for client in clients:
        client.meta.events.register("before-call", on_call, unique_id="bench-count")
    pool = get_redis().connection_pool
    real_get = pool.get_connection

    def get_connection(*args: Any, **kwargs: Any) -> Any:
        calls.redis += 1
        return real_get(*args, **kwargs)

    pool.get_connection = get_connection  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        pool.get_connection = real_get  # type: ignore[method-assign]
        for client in clients:
            client.meta.events.unregister("before-call", unique_id="bench-count")


def measure(name: str, action: Callable[[], Any]) -> tuple[str, Calls]:
    with counting() as calls:
        action()
    return name, calls


def main() -> None:
    with contextlib.redirect_stdout(io.StringIO()), local_stack():
        env = Environment(org_id="org_bench", env_id="env_bench")
        body = TriggerBody(payload={"n": 1})
        keyed = TriggerBody.model_validate({"payload": 1, "options": {"idempotencyKey": "k"}})
        buffer = get_buffer()
        run_id = engine.new_run_id()
        buffer.accept(
            run_id=run_id,
            org_id=env.org_id,
            env_id=env.env_id,
            snapshot=Snapshot(taskId="hello", envType="DEVELOPMENT", body=body),
            created_at=datetime.now(UTC),
        )
        signal = DrainSignal(runId=run_id, orgId=env.org_id, envId=env.env_id, shard=0)
        rows = [
            measure("trigger, no key", lambda: engine.trigger(env, "hello", body)),
            measure("trigger, new key", lambda: engine.trigger(env, "hello", keyed)),
            measure("trigger, cached key", lambda: engine.trigger(env, "hello", keyed)),
            measure("drained run", lambda: drain_signal(signal)),
        ]
    print(f"{'operation':<22} {'AWS calls':<34} {'Redis':>5} {'model ms':>9} {'before':>8} {'ratio':>6}")
    for name, calls in rows:
        aws_calls = ", ".join(f"{op} x{n}" for op, n in sorted(calls.aws.items())) or "-"
        before_ms = BEFORE_MS[name]
        print(
            f"{name:<22} {aws_calls:<34} {calls.redis:>5} {calls.model_ms():>9.1f} "
            f"{before_ms:>8.1f} {calls.model_ms() / before_ms:>6.2f}"
        )
    print(json.dumps({name: {"aws": dict(c.aws), "redis": c.redis} for name, c in rows}))


if __name__ == "__main__":
    main()
