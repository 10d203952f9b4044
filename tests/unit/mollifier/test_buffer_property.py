"""Property: random interleavings of accept / pop (batches of 1 to 3) / ack / requeue / fail by
concurrent callers never lose an entry and never hand one entry to two callers at once."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.engine import RunError
from sluice.mollifier import BufferEntry, MollifierBuffer
from sluice.mollifier.keys import ShardKeys
from sluice.redis import RedisClient
from tests.unit.mollifier.conftest import accept, pop_one

OPS = st.sampled_from(["accept", "accept", "pop", "ack", "requeue", "fail"])
TENANTS = [("org_a", "env_a1"), ("org_a", "env_a2"), ("org_b", "env_b1"), ("org_c", "env_c1")]


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    accepted: set[str] = field(default_factory=set)
    held: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)


def caller(buffer: MollifierBuffer, ledger: Ledger, ops: list[tuple[str, int]]) -> None:
    mine: list[BufferEntry] = []
    for op, pick in ops:
        if op == "accept":
            with ledger.lock:
                run_id = f"run_{next(ledger.ids)}"
            org, env = TENANTS[pick % len(TENANTS)]
            assert accept(buffer, run_id, org_id=org, env_id=env) == "accepted"
            with ledger.lock:
                ledger.accepted.add(run_id)
        elif op == "pop":
            for entry in buffer.pop_batch(1 + pick % 3):
                with ledger.lock:
                    if entry.runId in ledger.held or entry.runId in ledger.acked | ledger.failed:
                        ledger.violations.append(f"{entry.runId} delivered twice")
                    ledger.held.add(entry.runId)
                mine.append(entry)
        elif mine:
            entry = mine.pop(pick % len(mine))
            # Released before the call: once requeued, another caller may pop it at once.
            with ledger.lock:
                ledger.held.discard(entry.runId)
                if op == "ack":
                    ledger.acked.add(entry.runId)
                elif op == "fail":
                    ledger.failed.add(entry.runId)
            if op == "ack":
                assert buffer.ack(entry)
            elif op == "fail":
                assert buffer.fail(entry, RunError(code="X", message="x"))
            else:
                assert buffer.requeue(entry) >= 1
    for entry in mine:
        with ledger.lock:
            ledger.held.discard(entry.runId)
        buffer.requeue(entry)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plans=st.lists(st.lists(st.tuples(OPS, st.integers(0, 7)), max_size=25), min_size=2, max_size=4))
def test_interleavings_never_lose_or_duplicate_an_entry(
    buffer_redis: RedisClient, buffer: MollifierBuffer, plans: list[list[tuple[str, int]]]
) -> None:
    _flush(buffer_redis)
    ledger = Ledger()
    threads = [threading.Thread(target=caller, args=(buffer, ledger, plan)) for plan in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.violations == []

    rest: list[str] = []
    while (entry := pop_one(buffer)) is not None:
        rest.append(entry.runId)
    assert len(rest) == len(set(rest)), "an entry sat in a queue twice"
    assert set(rest) | ledger.acked | ledger.failed == ledger.accepted, "an entry was lost"
    assert not set(rest) & (ledger.acked | ledger.failed)
    for shard in range(buffer.shards):
        assert buffer.client.llen(ShardKeys(shard).orgs) == 0, (
            "the rings are pruned once every queue is empty"
        )


def _flush(client: RedisClient) -> None:
    nodes = client.get_primaries() if hasattr(client, "get_primaries") else None
    if nodes:
        client.flushall(target_nodes=nodes)  # type: ignore[call-arg]
    else:
        client.flushall()
