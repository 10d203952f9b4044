"""The Redis burst buffer: atomic Lua transitions over per-environment queues, sharded by org.

Lifecycle of an entry: ``accept`` (QUEUED) -> ``pop`` (DRAINING, in the draining set) -> ``ack``
(materialised, kept ``SLUICE_MOLLIFIER_ACK_GRACE_S`` for reads) | ``requeue`` (QUEUED again, at the
pop end, attempts + 1) | ``fail`` (FAILED, readable until ``SLUICE_MOLLIFIER_FAILED_TTL_S``).
Entries have no TTL while QUEUED or DRAINING: the drainer is the only way out, and the stale sweep
watches for a drainer that stopped.

Fair order. Each shard keeps a ring of organizations with queued entries and, per organization, a
ring of its environments. A pop step rotates the organization ring by one (``LMOVE`` tail -> head,
so concurrent drainers each get the next organization), then that organization's environment ring,
then pops the environment's oldest entry. An organization with fifty environments therefore gets
one turn per rotation, the same as an organization with one, and its environments share that turn.

``pop_batch(n)`` pops a drainer's whole batch in three round trips: one pipeline reads every
shard's organization count (``LLEN`` of its ring), one pipeline runs ``pop_batch.lua`` once per
non-empty shard with its share of ``n`` (a cluster pipeline sends each node its part), and the
drain acks in a third. Shares follow the organization counts: the shards' rings, laid end to end,
are walked ``n`` steps from a per-process offset that moves on by ``n``, so every organization gets
an equal turn whichever shard holds it. A shard that runs dry before its share hands the rest to
the shards that did not, in one more pipeline. A signal is a token meaning "one entry waits", not a
pointer to its entry: fairness then does not depend on the order in which SQS delivers signals
(SQS fair queues help in AWS; devstack's emulation has none).

Cluster safety. Every key of a shard carries the shard's hash tag, so each Lua call touches one
slot. Scripts declare their keys in KEYS, with one exception: ``pop_batch.lua`` learns which
environment, queue and entry keys it needs only as it rotates the rings, so it builds them from
prefixes of the shard (``ShardKeys.script_prefixes``) instead; the reference platform's scripts
built keys from prefixes too, which is why its port note assumes a single node. Here the prefixes
carry the hash tag, so the built keys share the declared keys' slot, and the script also declares
``slot_guard``, a key that never exists: while the slot migrates between nodes, Redis answers
ASK / TRYAGAIN for it rather than run a script whose built keys may be half moved. The one key
``accept.lua`` cannot know in advance (the entry of the run an idempotency key is bound to) is read
first, passed in, and re-checked inside the script, which answers ``retry`` when the binding
changed in between (optimistic concurrency).
"""

from __future__ import annotations

import random
import threading
from bisect import bisect_right
from collections import Counter
from datetime import datetime
from functools import lru_cache
from itertools import accumulate, zip_longest
from typing import Any, cast

from aws_lambda_powertools import Logger
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from sluice.auth import tenant_key
from sluice.config import get_settings
from sluice.engine import RunError
from sluice.mollifier.errors import AcceptContention, MalformedEntry
from sluice.mollifier.keys import ShardKeys, shard_of
from sluice.mollifier.models import AcceptResult, BufferEntry, Snapshot, TripResult
from sluice.redis import OnceScript, RedisClient, get_redis, load_script

logger = Logger(service="sluice", child=True)

SCRIPTS = (
    "accept",
    "withdraw",
    "pop_batch",
    "requeue",
    "ack",
    "fail",
    "claim",
    "publish",
    "release",
    "del_if_equals",
    "evaluate_trip",
)
# Not idempotent, so each call carries a call key (sluice.redis.OnceScript): redis-py retries a
# command whose reply timed out, and a second pop would pop more entries (DRAINING with nobody
# working them until the stale sweep), a second requeue answer 0 (no fresh signal), a second trip
# evaluation count the trigger twice. The others are idempotent by construction.
ONCE_SCRIPTS = frozenset({"pop_batch", "requeue", "evaluate_trip"})
# A pop step that finds an orphan or an emptied ring consumes it; the bound keeps one pop_batch.lua
# call short when a shard is full of orphans (the next batch continues from there).
MAX_POP_STEPS = 64
MAX_ACCEPT_RETRIES = 16
DUPLICATE_IDEMPOTENCY = "duplicate_idempotency:"


def text(value: object) -> str | None:
    """A reply of a client built with ``decode_responses=True`` (redis-py types it bytes | str)."""
    return None if value is None else str(value)


def texts(values: object) -> list[str]:
    return [str(v) for v in cast(list[object], values)]


def text_map(values: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in cast(dict[object, object], values).items()}


def _with_call_key(name: str, keys: list[str]) -> list[str]:
    return OnceScript.keys(keys) if name in ONCE_SCRIPTS else keys


def _micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def _entry_or_error(reply: object) -> BufferEntry | Exception | None:
    if isinstance(reply, Exception):
        return reply
    fields = text_map(reply)
    try:
        return BufferEntry.from_hash(fields) if fields else None
    except MalformedEntry as exc:
        return exc


def _popped_entry(flat: object) -> BufferEntry | None:
    """A popped entry's hash; None when it does not parse. It stays DRAINING then: its own signal
    finds it unreadable and creates its run from the copy it carries (see ``drain``)."""
    pairs = iter(texts(flat))
    fields = dict(zip(pairs, pairs, strict=True))
    try:
        return BufferEntry.from_hash(fields)
    except MalformedEntry:
        logger.exception("mollifier.popped_entry_malformed", extra={"runId": fields.get("runId")})
        return None


class MollifierBuffer:
    """The buffer over one Redis (single node or cluster). Thread-safe; build it once per process."""

    def __init__(self, client: RedisClient, shards: int, *, ack_grace_s: int, failed_ttl_s: int) -> None:
        self.client = client
        self.shards = shards
        self.ack_grace_s = ack_grace_s
        self.failed_ttl_s = failed_ttl_s
        self._scripts: dict[str, Script] = {
            name: OnceScript(client, "sluice.mollifier", name).script
            if name in ONCE_SCRIPTS
            else load_script(client, "sluice.mollifier", name)
            for name in SCRIPTS
        }
        # Drainer instances start at different organizations rather than all at the first one.
        self._offset = random.randrange(1 << 30)
        self._rotation_lock = threading.Lock()

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self._scripts[name](keys=_with_call_key(name, keys), args=args)

    def _run_pipelined(self, name: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """One script's calls in one pipeline (a round trip per node); each reply is the script's
        answer or the error that call raised. Raises a Redis error when the pipeline could not be
        sent. By hand rather than through redis-py's ``Script``, which sends ``SCRIPT EXISTS``
        before every pipeline (one more round trip) and does not work in a cluster pipeline: here
        a script the server lost (a restart, a failover) is loaded on its ``NOSCRIPT`` answer, and
        only those calls, which did not run, are sent again."""
        script = self._scripts[name]
        replies: list[Any] = [NoScriptError()] * len(calls)
        for attempt in range(2):
            lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if not lost:
                break
            if attempt:
                script.sha = str(self.client.script_load(script.script))
            pipe = self.client.pipeline(transaction=False)
            for i in lost:
                keys, args = calls[i]
                keys = _with_call_key(name, keys)
                # A command, not ``pipe.evalsha``: redis-py blocks that method in cluster pipelines
                # (for the script loading it cannot do there), and the routing works.
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            for i, reply in zip(lost, pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        return replies

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
        base = [keys.entry(run_id), keys.queue(org_id, env_id), keys.org_envs(org_id), keys.orgs]
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
                lookup = keys.idempotency(tenant_key(org_id, env_id), snapshot.taskId, key)
                bound = text(self.client.get(lookup)) or ""
                bound_entry = keys.entry(bound) if bound else keys.entry(run_id)
                reply = self._run("accept", [*base, lookup, bound_entry], [*args, bound])
            if reply == "retry":
                continue
            if reply.startswith(DUPLICATE_IDEMPOTENCY):
                return AcceptResult("duplicate_idempotency", reply.removeprefix(DUPLICATE_IDEMPOTENCY))
            return AcceptResult(reply, run_id)
        raise AcceptContention(f"The idempotency binding of run {run_id} kept changing; retry shortly")

    def withdraw(self, *, run_id: str, org_id: str, env_id: str, snapshot: Snapshot) -> bool:
        """Remove a just-accepted entry whose drain signal could not be sent (and the idempotency
        binding ``accept`` made for it), unless a drainer took it already.

        Returns:
            True when no copy is left in the buffer; False when a drainer popped it (it becomes
            a run: the caller answers with its id).
        """
        keys = self.keys_for(org_id)
        withdraw_keys = [keys.entry(run_id), keys.queue(org_id, env_id)]
        if (key := snapshot.body.options.idempotencyKey) is not None:
            withdraw_keys.append(keys.idempotency(tenant_key(org_id, env_id), snapshot.taskId, key))
        return bool(self._run("withdraw", withdraw_keys, [run_id]) == "withdrawn")

    def get_entry(self, org_id: str, run_id: str) -> BufferEntry | None:
        fields = text_map(self.client.hgetall(self.keys_for(org_id).entry(run_id)))
        return BufferEntry.from_hash(fields) if fields else None

    def get_entries(self, refs: list[tuple[str, str]]) -> list[BufferEntry | Exception | None]:
        """``get_entry`` of each (orgId, runId) in one pipeline; an entry that could not be read or
        does not parse is its error. Raises a Redis error when the pipeline could not be sent."""
        pipe = self.client.pipeline(transaction=False)
        for org_id, run_id in refs:
            pipe.hgetall(self.keys_for(org_id).entry(run_id))
        return [_entry_or_error(reply) for reply in pipe.execute(raise_on_error=False)]

    def lookup_idempotency(self, org_id: str, env_id: str, task_id: str, key: str) -> BufferEntry | None:
        """The buffered run that owns the key; a binding whose entry is gone is dropped (self-heal)."""
        keys = self.keys_for(org_id)
        lookup = keys.idempotency(tenant_key(org_id, env_id), task_id, key)
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
    def pop_batch(self, count: int) -> list[BufferEntry]:
        """Up to ``count`` entries in fair order across all shards, each marked DRAINING.

        Shards whose pop failed are left out (logged) when others popped: their entries are
        DRAINING already and must be worked. Raises a Redis error when nothing could be read."""
        if count <= 0:
            return []
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.llen(ShardKeys(shard).orgs)
        orgs = {shard: int(n) for shard, n in enumerate(pipe.execute()) if int(n)}
        by_shard: list[list[BufferEntry]] = []
        failures: list[Exception] = []
        wanted = count
        while wanted and orgs:
            shares = self._deal(wanted, orgs)
            replies = self._run_pipelined("pop_batch", [self._pop_call(*share) for share in shares.items()])
            # Next round, if one is needed: the shards not asked yet, and those that gave their
            # whole share and may hold more (one that ran dry, or lost a race, is done).
            orgs = {shard: n for shard, n in orgs.items() if shard not in shares}
            for (shard, share), reply in zip(shares.items(), replies, strict=True):
                if isinstance(reply, Exception):
                    logger.warning("mollifier.pop_failed", extra={"shard": shard, "error": str(reply)})
                    failures.append(reply)
                    continue
                orgs_left, *hashes = reply
                entries = [entry for entry in map(_popped_entry, hashes) if entry is not None]
                by_shard.append(entries)
                wanted -= len(hashes)
                if len(hashes) == share and orgs_left:
                    orgs[shard] = int(orgs_left)
        if failures and not by_shard:
            raise failures[0]
        # Interleaved, so that the shards' entries take turns in the drainer's pool too.
        return [entry for turn in zip_longest(*by_shard) for entry in turn if entry is not None]

    def _deal(self, count: int, orgs: dict[int, int]) -> dict[int, int]:
        """``count`` pops over the shards in proportion to their organization counts (see the
        module docstring); every shard in ``orgs`` has at least one organization."""
        shards = sorted(orgs)
        ends = list(accumulate(orgs[shard] for shard in shards))
        with self._rotation_lock:
            start = self._offset % ends[-1]
            self._offset = start + count
        return dict(Counter(shards[bisect_right(ends, (start + step) % ends[-1])] for step in range(count)))

    def _pop_call(self, shard: int, count: int) -> tuple[list[str], list[Any]]:
        keys = ShardKeys(shard)
        return [keys.orgs, keys.draining, keys.slot_guard], [count, MAX_POP_STEPS, *keys.script_prefixes()]

    def ack(self, entry: BufferEntry) -> bool:
        """The run exists in the engine: keep the entry ``SLUICE_MOLLIFIER_ACK_GRACE_S`` for reads."""
        return bool(self._run("ack", *self._ack_call(entry)))

    def ack_all(self, entries: list[BufferEntry]) -> list[bool | Exception]:
        """``ack`` of every entry in one pipeline; each answer is its ack's, or the error it raised.
        Raises a Redis error when the pipeline could not be sent."""
        replies = self._run_pipelined("ack", [self._ack_call(entry) for entry in entries])
        return [reply if isinstance(reply, Exception) else bool(reply) for reply in replies]

    def _ack_call(self, entry: BufferEntry) -> tuple[list[str], list[Any]]:
        return self._terminal_keys(entry), [entry.runId, self.ack_grace_s]

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
            keys.queue(entry.orgId, entry.envId),
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
        tenant = tenant_key(org_id, env_id)
        count, tripped = self._run(
            "evaluate_trip", [keys.rate(tenant), keys.tripped(tenant)], [window_ms, threshold, hold_ms]
        )
        return TripResult(int(count), bool(tripped))


@lru_cache(maxsize=4)
def _buffer_for(client: RedisClient, shards: int, ack_grace_s: int, failed_ttl_s: int) -> MollifierBuffer:
    return MollifierBuffer(client, shards, ack_grace_s=ack_grace_s, failed_ttl_s=failed_ttl_s)


def get_buffer() -> MollifierBuffer:
    """The process-wide buffer over ``sluice.redis.get_redis()`` (scripts registered once)."""
    s = get_settings()
    return _buffer_for(get_redis(), s.mollifier_shards, s.mollifier_ack_grace_s, s.mollifier_failed_ttl_s)
