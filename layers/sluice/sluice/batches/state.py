"""Per-item ingest state in Redis: which indexes are enqueued, processed and failed.

Why Redis and not DynamoDB: each item needs an atomic "add this index and count the set" on
state shared by every Lambda handling the batch. In DynamoDB that is either a transaction that
also bumps a counter on the batch record, and concurrent transactions on one item fail with
TransactionConflict at exactly the concurrency phase 2 runs at, or a set on the record, which a
100 000-item staged batch would push past the 400 KB item limit. A Redis SET per batch does it
in one sub-millisecond Lua call, for a group of items at once, with all of a batch's keys in one
cluster slot.

What makes that safe: an index is added to ``enqueued`` only after its message is durably on
BatchItemQueue, so a crash in between leaves the index unmarked and the retried phase 2 sends it
again (batch_runs makes at most one run per index, whatever arrives twice). The batch record
(status, seal, completion) stays in DynamoDB, where every transition is a conditional write.

Redis unavailable means 503: dedup and counting cannot be done without it, and nothing is marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import cache

from sluice.batches import keys
from sluice.config import get_settings
from sluice.redis import OnceScript, RedisClient, get_redis, unavailable_as_503


def redis_errors() -> AbstractContextManager[None]:
    return unavailable_as_503("batch state store")


@cache
def _mark_script(client: RedisClient) -> OnceScript:
    # Once: a retried SADD would answer that none of the items was new.
    return OnceScript(client, "sluice.batches", "mark")


def _mark(set_keys: list[str], indexes: Sequence[int]) -> tuple[int, int]:
    client = get_redis()
    with redis_errors():
        added, count = _mark_script(client)(keys=set_keys, args=[get_settings().batch_state_ttl_s, *indexes])
    return int(added), int(count)


def enqueued_among(batch_id: str, indexes: Sequence[int]) -> set[int]:
    """Which of ``indexes`` are enqueued already (one round trip for all of them)."""
    if not indexes:
        return set()
    with redis_errors():
        flags = get_redis().smismember(keys.enqueued(batch_id), [str(i) for i in indexes])
    return {index for index, flag in zip(indexes, flags, strict=True) if flag}


def mark_enqueued(batch_id: str, indexes: Sequence[int]) -> int:
    """Record that the items' messages are on the queue; returns how many were not recorded yet."""
    return _mark([keys.enqueued(batch_id)], indexes)[0]


def enqueued_count(batch_id: str) -> int:
    with redis_errors():
        return int(get_redis().scard(keys.enqueued(batch_id)))


def mark_processed(batch_id: str, index: int, failed: bool) -> int:
    """Record that the item's run exists; returns how many items of the batch have one."""
    sets = [keys.processed(batch_id), keys.failed(batch_id)] if failed else [keys.processed(batch_id)]
    return _mark(sets, [index])[1]


def processed_counts(batch_id: str) -> tuple[int, int]:
    """(processed, failed) item counts."""
    client = get_redis()
    with redis_errors():
        pipe = client.pipeline(transaction=False)
        pipe.scard(keys.processed(batch_id))
        pipe.scard(keys.failed(batch_id))
        processed, failed = pipe.execute()
    return int(processed), int(failed)


def clear(batch_id: str) -> None:
    """Drop a finished batch's sets (they would expire anyway)."""
    with redis_errors():
        get_redis().delete(keys.enqueued(batch_id), keys.processed(batch_id), keys.failed(batch_id))
