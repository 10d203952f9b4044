"""The Redis burst buffer: atomic Lua transitions over per-environment queues, sharded by org.

Lifecycle of an entry: ``accept`` (QUEUED) -> ``pop`` (DRAINING, in the draining set) -> ``ack``
(materialised, kept ``SLUICE_MOLLIFIER_ACK_GRACE_S`` for reads) | ``requeue`` (QUEUED again, at the
pop end, attempts + 1) | ``fail`` (FAILED, readable until ``SLUICE_MOLLIFIER_FAILED_TTL_S``).
Entries have no TTL while QUEUED or DRAINING: the drainer is the only way out, and the stale sweep
watches for a drainer that stopped.

Fair order. Each shard keeps a ring of organizations with queued entries and, per organization, a
ring of its environments. A pop rotates the organization ring by one (``LMOVE`` tail -> head, atomic,
so concurrent drainers each get the next organization), then that organization's environment ring,
then pops the environment's oldest entry. An organization with fifty environments therefore gets
one turn per rotation, the same as an organization with one, and its environments share that turn.

Across shards, ``pop_next`` probes shards from a per-process cursor and pops from the first
non-empty one, then moves the cursor past it (round robin), so every non-empty shard gets an equal
share of a drainer's pops whatever order the drain signals arrive in. A signal is a token meaning
"one entry waits", not a pointer to its entry: fairness then does not depend on the order in which
SQS delivers signals (SQS fair queues help in AWS; devstack's emulation has none). The cost is up
to ``shards`` empty probes of one round trip each when the buffer is nearly empty.

Cluster safety. Every script declares every key it touches in KEYS, and they share the shard's
hash tag. The two keys a script cannot know in advance (the run at the head of a queue, the run an
idempotency key is bound to) are read first, passed in, and re-checked inside the script, which
answers ``moved`` / ``retry`` when they changed in between (optimistic concurrency).
"""

from __future__ import annotations

import random
import threading
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from redis.commands.core import Script

from sluice.config import get_settings
from sluice.engine import RunError
from sluice.mollifier.errors import AcceptContention, BufferContention
from sluice.mollifier.keys import ShardKeys, shard_of
from sluice.mollifier.models import AcceptResult, BufferEntry, Snapshot, TripResult
from sluice.redis import RedisClient, get_redis, load_script

SCRIPTS = (
    "accept",
    "pop",
    "prune",
    "requeue",
    "ack",
    "fail",
    "claim",
    "publish",
    "release",
    "del_if_equals",
    "evaluate_trip",
)
# A pop step that finds an orphan or an emptied ring consumes it; the bound keeps one call short when
# a shard is full of orphans (the next signal continues from there).
MAX_POP_STEPS = 64
# A step that loses a race to another drainer retries without counting as a step: another drainer
# made progress. This cap only stops a pathological livelock, as a retryable error.
MAX_POP_RACES = 1024
MAX_ACCEPT_RETRIES = 16
DUPLICATE_IDEMPOTENCY = "duplicate_idempotency:"


def text(value: object) -> str | None:
    """A reply of a client built with ``decode_responses=True`` (redis-py types it bytes | str)."""
    return None if value is None else str(value)


def texts(values: object) -> list[str]:
    return [str(v) for v in cast(list[object], values)]


def text_map(values: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in cast(dict[object, object], values).items()}


def _micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


class MollifierBuffer:
    """The buffer over one Redis (single node or cluster). Thread-safe; build it once per process."""

    def __init__(self, client: RedisClient, shards: int, *, ack_grace_s: int, failed_ttl_s: int) -> None:
        self.client = client
        self.shards = shards
        self.ack_grace_s = ack_grace_s
        self.failed_ttl_s = failed_ttl_s
        self._scripts: dict[str, Script] = {
            name: load_script(client, "sluice.mollifier", name) for name in SCRIPTS
        }
        self._next_shard = random.randrange(shards)
        self._rotation_lock = threading.Lock()

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self._scripts[name](keys=keys, args=args)

    def keys_for(self, org_id: str) -> ShardKeys:
        return ShardKeys(shard_of(org_id, self.shards))

    # --- intake -----------------------------------------------------------------------------------
    def accept(
        self,
        *,
        run_id: str,
        org_id: str,
        env_id: str,
        snapshot: Snapshot,
        created_at: datetime,
    ) -> AcceptResult:
        """Buffer a trigger. Idempotent on run id; with an idempotency key, the first run wins.

        Returns:
            ``accepted``; ``duplicate_run_id`` (the run id is buffered already, in any state);
            ``duplicate_idempotency`` with the run that owns the key.
        """
        keys = self.keys_for(org_id)
        key = snapshot.body.options.idempotencyKey
        base = [keys.entry(run_id), keys.queue(env_id), keys.org_envs(org_id), keys.orgs]
        args = [
            run_id,
            env_id,
            org_id,
            snapshot.taskId,
            snapshot.model_dump_json(),
            created_at.isoformat(),
            str(_micros(created_at)),
        ]
        for _ in range(MAX_ACCEPT_RETRIES):
            if key is None:
                reply = self._run("accept", base, args)
            else:
                lookup = keys.idempotency(env_id, snapshot.taskId, key)
                bound = text(self.client.get(lookup)) or ""
                bound_entry = keys.entry(bound) if bound else keys.entry(run_id)
                reply = self._run("accept", [*base, lookup, bound_entry], [*args, bound])
            if reply == "retry":
                continue
            if reply.startswith(DUPLICATE_IDEMPOTENCY):
                return AcceptResult("duplicate_idempotency", reply.removeprefix(DUPLICATE_IDEMPOTENCY))
            return AcceptResult(reply, run_id)
        raise AcceptContention(f"The idempotency binding of run {run_id} kept changing; retry shortly")

    def get_entry(self, org_id: str, run_id: str) -> BufferEntry | None:
        fields = text_map(self.client.hgetall(self.keys_for(org_id).entry(run_id)))
        return BufferEntry.from_hash(fields) if fields else None

    def lookup_idempotency(self, org_id: str, env_id: str, task_id: str, key: str) -> BufferEntry | None:
        """The buffered run that owns the key; a binding whose entry is gone is dropped (self-heal)."""
        keys = self.keys_for(org_id)
        lookup = keys.idempotency(env_id, task_id, key)
        run_id = text(self.client.get(lookup))
        if not run_id:
            return None
        entry = self.get_entry(org_id, run_id)
        if entry is None:
            self.delete_if_equals(lookup, run_id)
        return entry

    def delete_if_equals(self, key: str, value: str) -> bool:
        return bool(self._run("del_if_equals", [key], [value]))

    # --- draining ---------------------------------------------------------------------------------
    def pop_next(self) -> BufferEntry | None:
        """The next entry in fair order across all shards, marked DRAINING; None when empty."""
        with self._rotation_lock:
            start = self._next_shard
        for step in range(self.shards):
            shard = (start + step) % self.shards
            entry = self.pop_from_shard(shard)
            if entry is not None:
                # Round robin: the next pop starts after the shard that served this one.
                with self._rotation_lock:
                    self._next_shard = (shard + 1) % self.shards
                return entry
        return None

    def pop_from_shard(self, shard: int) -> BufferEntry | None:
        """The next entry of one shard in fair order (organizations, then environments)."""
        keys = ShardKeys(shard)
        steps = races = 0
        while steps < MAX_POP_STEPS:
            steps += 1
            org_id = text(self.client.lmove(keys.orgs, keys.orgs, "RIGHT", "LEFT"))
            if org_id is None:
                return None
            org_envs = keys.org_envs(org_id)
            env_id = text(self.client.lmove(org_envs, org_envs, "RIGHT", "LEFT"))
            if env_id is None:
                self._run("prune", [org_envs, keys.orgs], [org_id])
                continue
            queue = keys.queue(env_id)
            run_id = text(self.client.lindex(queue, -1))
            if run_id is None:
                self._run("prune", [org_envs, keys.orgs, queue], [org_id, env_id])
                continue
            pop_keys = [queue, keys.entry(run_id), keys.draining, org_envs, keys.orgs]
            reply = self._run("pop", pop_keys, [run_id, env_id, org_id])
            if reply[0] == "popped":
                flat = iter(reply[1:])
                return BufferEntry.from_hash(dict(zip(flat, flat, strict=True)))
            if reply[0] == "moved":
                races += 1
                if races >= MAX_POP_RACES:
                    raise BufferContention(f"lost {races} pop races in shard {shard}")
                steps -= 1
        return None

    def ack(self, entry: BufferEntry) -> bool:
        """The run exists in the engine: keep the entry ``SLUICE_MOLLIFIER_ACK_GRACE_S`` for reads."""
        return bool(self._run("ack", self._terminal_keys(entry), [entry.runId, self.ack_grace_s]))

    def fail(self, entry: BufferEntry, error: RunError) -> bool:
        """Keep the entry as FAILED (readable) when the engine cannot record the failed run."""
        args = [entry.runId, error.model_dump_json(), self.failed_ttl_s]
        return bool(self._run("fail", self._terminal_keys(entry), args))

    def requeue(self, entry: BufferEntry, *, popped_before_ms: int | None = None) -> int:
        """Back to the pop end of its queue with attempts + 1; 0 when it is no longer DRAINING
        (or, with ``popped_before_ms``, was popped again after that instant)."""
        keys = self.keys_for(entry.orgId)
        requeue_keys = [
            keys.entry(entry.runId),
            keys.queue(entry.envId),
            keys.org_envs(entry.orgId),
            keys.orgs,
            keys.draining,
        ]
        max_score = "+inf" if popped_before_ms is None else popped_before_ms
        return int(self._run("requeue", requeue_keys, [entry.runId, entry.envId, entry.orgId, max_score]))

    def _terminal_keys(self, entry: BufferEntry) -> list[str]:
        keys = self.keys_for(entry.orgId)
        base = [keys.entry(entry.runId), keys.draining]
        return [*base, entry.idempotencyLookupKey] if entry.idempotencyLookupKey else base

    # --- pre-gate claim ---------------------------------------------------------------------------
    def claim(self, claim_key: str, token: str, ttl_s: int) -> str:
        """``claimed``, ``pending`` or ``resolved:<runId>``."""
        return str(self._run("claim", [claim_key], [token, ttl_s]))

    def publish_claim(self, claim_key: str, token: str, run_id: str, ttl_s: int) -> bool:
        return bool(self._run("publish", [claim_key], [token, run_id, ttl_s]))

    def release_claim(self, claim_key: str, token: str) -> bool:
        return bool(self._run("release", [claim_key], [token]))

    # --- trip evaluator ---------------------------------------------------------------------------
    def evaluate_trip(
        self, org_id: str, env_id: str, *, window_ms: int, threshold: int, hold_ms: int
    ) -> TripResult:
        keys = self.keys_for(org_id)
        count, tripped = self._run(
            "evaluate_trip", [keys.rate(env_id), keys.tripped(env_id)], [window_ms, threshold, hold_ms]
        )
        return TripResult(int(count), bool(tripped))


@lru_cache(maxsize=4)
def _buffer_for(client: RedisClient, shards: int, ack_grace_s: int, failed_ttl_s: int) -> MollifierBuffer:
    return MollifierBuffer(client, shards, ack_grace_s=ack_grace_s, failed_ttl_s=failed_ttl_s)


def get_buffer() -> MollifierBuffer:
    """The process-wide buffer over ``sluice.redis.get_redis()`` (scripts registered once)."""
    s = get_settings()
    return _buffer_for(get_redis(), s.mollifier_shards, s.mollifier_ack_grace_s, s.mollifier_failed_ttl_s)
