"""Every buffer script on a real redis-server and on a three-node cluster (no CROSSSLOT)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import groupby

import pytest
import redis
from redis.crc import key_slot
from redis.exceptions import RedisError

from devstack.redis_cluster import RedisCluster
from devstack.testing.round_trips import round_trips
from sluice.auth import tenant_key
from sluice.config import reload_settings
from sluice.engine import RunError
from sluice.mollifier import BufferEntry, MollifierBuffer, get_buffer
from sluice.mollifier.buffer import MAX_POP_STEPS
from sluice.mollifier.errors import AcceptContention
from sluice.mollifier.keys import ShardKeys, shard_of
from sluice.redis import RedisClient, reset_redis
from tests.unit.mollifier.conftest import accept, pop_one, snapshot

TENANT = tenant_key("org_a", "env_a")


def keys(buffer: MollifierBuffer, org: str = "org_a") -> ShardKeys:
    return buffer.keys_for(org)


def pop_all(buffer: MollifierBuffer) -> list[str]:
    popped = []
    while (entry := pop_one(buffer)) is not None:
        popped.append(entry.runId)
    return popped


# --- accept -----------------------------------------------------------------------------------------
def test_accept_writes_entry_enqueues_and_tracks_env(buffer: MollifierBuffer) -> None:
    assert accept(buffer, "run_1", payload={"n": 1}) == "accepted"
    k = keys(buffer)
    entry = buffer.get_entry("org_a", "run_1")
    assert entry is not None and entry.status == "QUEUED" and entry.attempts == 0
    assert entry.parsed_snapshot().body.payload == {"n": 1}
    assert buffer.client.lrange(k.queue("org_a", "env_a"), 0, -1) == ["run_1"]
    assert buffer.client.lrange(k.org_envs("org_a"), 0, -1) == ["env_a"]
    assert buffer.client.lrange(k.orgs, 0, -1) == ["org_a"]


def test_entry_has_no_ttl_on_accept_and_keeps_none_across_pop(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    assert buffer.client.ttl(keys(buffer).entry("run_1")) == -1
    assert pop_one(buffer) is not None
    assert buffer.client.ttl(keys(buffer).entry("run_1")) == -1


def test_duplicate_run_id_is_refused_without_double_enqueue_or_overwrite(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", payload="first")
    assert accept(buffer, "run_1", payload="second") == "duplicate_run_id"
    assert buffer.client.llen(keys(buffer).queue("org_a", "env_a")) == 1
    entry = buffer.get_entry("org_a", "run_1")
    assert entry is not None and entry.parsed_snapshot().body.payload == "first"


def test_accept_refused_while_entry_is_draining_or_inside_ack_grace(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = pop_one(buffer)
    assert entry is not None
    assert accept(buffer, "run_1") == "duplicate_run_id"
    buffer.ack(entry)
    assert accept(buffer, "run_1") == "duplicate_run_id"


# --- pop --------------------------------------------------------------------------------------------
def test_pop_returns_next_queued_entry_and_transitions_to_draining(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = pop_one(buffer)
    assert entry is not None and entry.runId == "run_1" and entry.status == "DRAINING"
    stored = buffer.get_entry("org_a", "run_1")
    assert stored is not None and stored.status == "DRAINING"


def test_pop_returns_none_when_empty(buffer: MollifierBuffer) -> None:
    assert pop_one(buffer) is None


def test_pop_is_fifo_within_an_environment(buffer: MollifierBuffer) -> None:
    for run_id in ("run_c", "run_a", "run_b"):
        accept(buffer, run_id)
    assert pop_all(buffer) == ["run_c", "run_a", "run_b"]


def test_parallel_pops_on_one_env_never_return_the_same_entry(buffer: MollifierBuffer) -> None:
    for i in range(40):
        accept(buffer, f"run_{i:02}")
    popped: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while (entry := pop_one(buffer)) is not None:
            with lock:
                popped.append(entry.runId)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(popped) == [f"run_{i:02}" for i in range(40)]


def test_pop_round_trips_payloads_with_quotes_backslashes_control_chars_and_unicode(
    buffer: MollifierBuffer,
) -> None:
    payload = {"s": 'q"uote\\back\x00\x1f\n', "u": "żółw 🐢", "n": [1, 2.5, None, True]}
    accept(buffer, "run_1", payload=payload)
    entry = pop_one(buffer)
    assert entry is not None and entry.parsed_snapshot().body.payload == payload


def test_pop_skips_orphan_queue_references(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    buffer.client.delete(keys(buffer).entry("run_1"))
    assert pop_one(buffer) is None
    assert buffer.client.llen(keys(buffer).queue("org_a", "env_a")) == 0
    assert buffer.client.llen(keys(buffer).orgs) == 0


def test_pop_skips_orphans_then_returns_the_first_valid_entry_behind_them(buffer: MollifierBuffer) -> None:
    for run_id in ("run_1", "run_2", "run_3"):
        accept(buffer, run_id)
    buffer.client.delete(keys(buffer).entry("run_1"), keys(buffer).entry("run_2"))
    entry = pop_one(buffer)
    assert entry is not None and entry.runId == "run_3"


def test_pop_prunes_env_and_org_rings_only_on_the_draining_pop(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    accept(buffer, "run_2")
    k = keys(buffer)
    pop_one(buffer)
    assert buffer.client.lrange(k.org_envs("org_a"), 0, -1) == ["env_a"]
    pop_one(buffer)
    assert buffer.client.llen(k.org_envs("org_a")) == 0
    assert buffer.client.llen(k.orgs) == 0


# --- ack --------------------------------------------------------------------------------------------
def test_ack_marks_materialised_and_applies_the_grace_ttl(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = pop_one(buffer)
    assert entry is not None and buffer.ack(entry)
    stored = buffer.get_entry("org_a", "run_1")
    assert stored is not None and stored.materialised
    assert 0 < buffer.client.ttl(keys(buffer).entry("run_1")) <= buffer.ack_grace_s
    assert buffer.client.zcard(keys(buffer).draining) == 0


def test_ack_on_missing_entry_is_a_noop(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = pop_one(buffer)
    assert entry is not None
    buffer.client.delete(keys(buffer).entry("run_1"))
    assert not buffer.ack(entry)
    assert not buffer.client.exists(keys(buffer).entry("run_1"))


# --- requeue ----------------------------------------------------------------------------------------
def test_requeue_increments_attempts_restores_queued_and_keeps_created_at(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = pop_one(buffer)
    assert entry is not None
    assert buffer.requeue(entry) == 1
    stored = buffer.get_entry("org_a", "run_1")
    assert stored is not None and stored.status == "QUEUED" and stored.attempts == 1
    assert stored.createdAt == entry.createdAt
    assert buffer.client.zcard(keys(buffer).draining) == 0


def test_requeued_entry_pops_ahead_of_newer_items(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    accept(buffer, "run_2")
    first = pop_one(buffer)
    assert first is not None and first.runId == "run_1"
    accept(buffer, "run_3")
    buffer.requeue(first)
    assert pop_all(buffer) == ["run_1", "run_2", "run_3"]


def test_requeue_on_missing_or_not_draining_entry_is_a_noop(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = pop_one(buffer)
    assert entry is not None
    assert buffer.requeue(entry) == 1
    assert buffer.requeue(entry) == 0, "a second requeue would put the run in the queue twice"
    assert buffer.client.llen(keys(buffer).queue("org_a", "env_a")) == 1
    buffer.client.delete(keys(buffer).entry("run_1"))
    assert buffer.requeue(entry) == 0


def test_requeue_re_adds_env_and_org_to_the_rings(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = pop_one(buffer)
    assert entry is not None
    assert buffer.client.llen(keys(buffer).orgs) == 0
    buffer.requeue(entry)
    assert buffer.client.lrange(keys(buffer).orgs, 0, -1) == ["org_a"]
    assert buffer.client.lrange(keys(buffer).org_envs("org_a"), 0, -1) == ["env_a"]


def test_requeue_with_cutoff_leaves_an_entry_popped_after_it(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = pop_one(buffer)
    assert entry is not None
    score = buffer.client.zscore(keys(buffer).draining, "run_1")
    assert score is not None
    assert buffer.requeue(entry, popped_before_ms=int(score) - 1) == 0
    assert buffer.requeue(entry, popped_before_ms=int(score)) == 1


# --- fail -------------------------------------------------------------------------------------------
def test_fail_keeps_a_readable_failed_entry_out_of_every_queue(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    entry = pop_one(buffer)
    assert entry is not None
    assert buffer.fail(entry, RunError(code="X", message="boom"))
    stored = buffer.get_entry("org_a", "run_1")
    assert stored is not None and stored.status == "FAILED"
    assert stored.lastError == RunError(code="X", message="boom")
    assert 0 < buffer.client.ttl(keys(buffer).entry("run_1")) <= buffer.failed_ttl_s
    assert buffer.client.zcard(keys(buffer).draining) == 0
    assert pop_one(buffer) is None


def test_fail_on_missing_entry_is_a_noop_and_creates_no_partial_hash(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = pop_one(buffer)
    assert entry is not None
    buffer.client.delete(keys(buffer).entry("run_1"))
    assert not buffer.fail(entry, RunError(code="X", message="boom"))
    assert not buffer.client.exists(keys(buffer).entry("run_1"))


def test_fail_drops_the_idempotency_lookup(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    entry = pop_one(buffer)
    assert entry is not None
    buffer.fail(entry, RunError(code="X", message="boom"))
    assert buffer.lookup_idempotency("org_a", "env_a", "hello", "k") is None
    assert accept(buffer, "run_2", idempotencyKey="k") == "accepted"


# --- idempotency lookup -----------------------------------------------------------------------------
def test_accept_with_key_binds_the_lookup_with_no_ttl(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    lookup = keys(buffer).idempotency(TENANT, "hello", "k")
    assert buffer.client.get(lookup) == "run_1"
    assert buffer.client.ttl(lookup) == -1


def test_second_accept_with_same_key_returns_the_winner(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    result = buffer.accept(
        run_id="run_2",
        org_id="org_a",
        env_id="env_a",
        snapshot=snapshot(idempotencyKey="k"),
        created_at=datetime.now(UTC),
    )
    assert (result.kind, result.run_id) == ("duplicate_idempotency", "run_1")
    assert buffer.get_entry("org_a", "run_2") is None


def test_lookup_hits_a_buffered_run_and_misses_without_binding(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    hit = buffer.lookup_idempotency("org_a", "env_a", "hello", "k")
    assert hit is not None and hit.runId == "run_1"
    assert buffer.lookup_idempotency("org_a", "env_a", "hello", "other") is None


def test_lookup_self_heals_when_the_bound_entry_is_gone(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    buffer.client.delete(keys(buffer).entry("run_1"))
    assert buffer.lookup_idempotency("org_a", "env_a", "hello", "k") is None
    assert buffer.client.get(keys(buffer).idempotency(TENANT, "hello", "k")) is None


def test_accept_self_heals_a_stale_lookup_and_still_dedups_a_live_one(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    assert accept(buffer, "run_2", idempotencyKey="k") == "duplicate_idempotency"
    buffer.client.delete(keys(buffer).entry("run_1"))
    assert accept(buffer, "run_3", idempotencyKey="k") == "accepted"
    assert buffer.client.get(keys(buffer).idempotency(TENANT, "hello", "k")) == "run_3"


def test_ack_drops_the_lookup_only_if_it_still_names_the_run(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    entry = pop_one(buffer)
    assert entry is not None
    lookup = keys(buffer).idempotency(TENANT, "hello", "k")
    buffer.client.set(lookup, "run_newer")
    buffer.ack(entry)
    assert buffer.client.get(lookup) == "run_newer"
    buffer.client.set(lookup, "run_1")
    buffer.ack(entry)
    assert buffer.client.get(lookup) is None


def test_concurrent_same_key_accepts_bind_exactly_one_run(buffer: MollifierBuffer) -> None:
    winners: list[str] = []
    lock = threading.Lock()

    def go(i: int) -> None:
        result = buffer.accept(
            run_id=f"run_{i}",
            org_id="org_a",
            env_id="env_a",
            snapshot=snapshot(idempotencyKey="k"),
            created_at=datetime.now(UTC),
        )
        with lock:
            winners.append(result.run_id)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(winners)) == 1
    assert buffer.client.llen(keys(buffer).queue("org_a", "env_a")) == 1


def test_composite_keys_that_would_alias_unencoded_do_not_collide(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", env_id="a:b", task_id="c", idempotencyKey="d")
    assert accept(buffer, "run_2", env_id="a", task_id="b:c", idempotencyKey="d") == "accepted"
    assert keys(buffer).idempotency("a:b", "c", "d") != keys(buffer).idempotency("a", "b:c", "d")


# --- claims -----------------------------------------------------------------------------------------
def test_claim_first_caller_claims_second_is_pending_then_resolved(buffer: MollifierBuffer) -> None:
    key = keys(buffer).claim(TENANT, "hello", "k")
    assert buffer.claim(key, "t1", 30) == "claimed"
    assert buffer.claim(key, "t2", 30) == "pending"
    assert buffer.claim(key, "t1", 30) == "claimed"
    assert buffer.publish_claim(key, "t1", "run_1", 30)
    assert buffer.claim(key, "t2", 30) == "resolved:run_1"


def test_release_or_publish_with_the_wrong_token_is_a_noop(buffer: MollifierBuffer) -> None:
    key = keys(buffer).claim(TENANT, "hello", "k")
    buffer.claim(key, "t1", 30)
    assert not buffer.release_claim(key, "t2")
    assert not buffer.publish_claim(key, "t2", "run_x", 30)
    assert buffer.client.get(key) == "pending:t1"
    assert buffer.release_claim(key, "t1")
    assert buffer.claim(key, "t2", 30) == "claimed"


def test_stale_release_after_ttl_expiry_does_not_erase_a_fresh_claim(buffer: MollifierBuffer) -> None:
    key = keys(buffer).claim(TENANT, "hello", "k")
    buffer.claim(key, "old", 1)
    buffer.client.delete(key)  # what the TTL does
    assert buffer.claim(key, "new", 30) == "claimed"
    assert not buffer.release_claim(key, "old")
    assert buffer.client.get(key) == "pending:new"


# --- draining tracker ---------------------------------------------------------------------------------
def test_pop_records_a_recent_positive_score_in_the_draining_set(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    pop_one(buffer)
    score = buffer.client.zscore(keys(buffer).draining, "run_1")
    assert score is not None and abs(score / 1000 - time.time()) < 60


def test_pop_requeue_pop_is_tracked_at_the_latest_pop(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = pop_one(buffer)
    assert entry is not None
    first = buffer.client.zscore(keys(buffer).draining, "run_1")
    buffer.requeue(entry)
    assert buffer.client.zscore(keys(buffer).draining, "run_1") is None
    time.sleep(0.002)
    pop_one(buffer)
    second = buffer.client.zscore(keys(buffer).draining, "run_1")
    assert first is not None and second is not None and second > first


# --- fair order ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shards", [1, 8])
def test_light_org_is_not_starved_by_a_heavy_org_with_many_envs(
    buffer_redis: RedisClient, configure: Callable[..., None], shards: int
) -> None:
    configure(mollifier_shards=shards)
    buf = get_buffer()
    for env in range(20):
        for i in range(10):
            accept(buf, f"run_h{env:02}_{i}", org_id="org_heavy", env_id=f"env_h{env:02}")
    for i in range(5):
        accept(buf, f"run_l{i}", org_id="org_light", env_id="env_l")
    first = [pop_one(buf) for _ in range(12)]
    light = [e for e in first if e is not None and e.orgId == "org_light"]
    assert len(light) == 5, "the light org gets every other turn, not 1 in 21"


def test_a_heavy_org_with_many_envs_rotates_its_envs_round_robin(buffer: MollifierBuffer) -> None:
    for env in range(4):
        for i in range(3):
            accept(buffer, f"run_{env}_{i}", env_id=f"env_{env}")
    envs = [e.envId for e in (pop_one(buffer) for _ in range(8)) if e is not None]
    assert sorted(envs[:4]) == ["env_0", "env_1", "env_2", "env_3"]
    assert sorted(envs[4:]) == ["env_0", "env_1", "env_2", "env_3"]


def test_orgs_in_different_shards_share_the_drainer_equally(
    buffer_redis: RedisClient, configure: Callable[..., None]
) -> None:
    from sluice.mollifier import get_buffer

    configure(mollifier_shards=8)
    buf = get_buffer()
    a, b = "org_a", next(f"org_{i}" for i in range(100) if shard_of(f"org_{i}", 8) != shard_of("org_a", 8))
    for i in range(30):
        accept(buf, f"run_a{i}", org_id=a, env_id="env_a")
        accept(buf, f"run_b{i}", org_id=b, env_id="env_b")
    orgs = [e.orgId for e in (pop_one(buf) for _ in range(20)) if e is not None]
    assert abs(orgs.count(a) - orgs.count(b)) <= 1


# --- batch pop --------------------------------------------------------------------------------------
def orgs_by_shard(shards: int, *counts: int) -> list[list[str]]:
    """``counts[i]`` organization ids that share a shard, each group in a shard of its own."""
    by_shard: dict[int, list[str]] = {}
    for i in range(200):
        by_shard.setdefault(shard_of(f"org_{i}", shards), []).append(f"org_{i}")
    return [orgs[:count] for orgs, count in zip(by_shard.values(), counts, strict=False)]


def tally(entries: list[BufferEntry], field: str) -> Counter[str]:
    return Counter(str(getattr(entry, field)) for entry in entries)


def test_a_batch_gives_every_organization_an_equal_share_whichever_shard_holds_it(
    buffer_redis: RedisClient, configure: Callable[..., None]
) -> None:
    configure(mollifier_shards=8)
    buf = get_buffer()
    crowded, alone = orgs_by_shard(8, 3, 1)
    for org in [*crowded, *alone]:
        for i in range(10):
            accept(buf, f"run_{org}_{i}", org_id=org, env_id=f"env_{org}")
    assert tally(buf.pop_batch(8), "orgId") == dict.fromkeys([*crowded, *alone], 2)
    assert tally(buf.pop_batch(4), "orgId") == dict.fromkeys([*crowded, *alone], 1)


def test_a_batch_takes_organizations_in_turn_then_their_environments_fifo(
    buffer_redis: RedisClient, configure: Callable[..., None]
) -> None:
    configure(mollifier_shards=8)
    buf = get_buffer()
    (heavy, light), (other,) = orgs_by_shard(8, 2, 1)
    for env in range(4):
        for i in range(5):
            accept(buf, f"run_h{env}_{i}", org_id=heavy, env_id=f"env_h{env}")
    for org in (light, other):
        for i in range(5):
            accept(buf, f"run_{org}_{i}", org_id=org, env_id=f"env_{org}")
    popped = buf.pop_batch(9)
    assert tally(popped, "orgId") == {heavy: 3, light: 3, other: 3}
    assert len(tally([e for e in popped if e.orgId == heavy], "envId")) == 3, "one turn per environment"
    for env, runs in groupby(sorted(popped, key=lambda e: e.envId), key=lambda e: e.envId):
        ids = [e.runId for e in runs]
        assert ids == sorted(ids), f"{env} pops oldest first"
    assert all(e.status == "DRAINING" for e in popped)


def test_a_shard_that_runs_dry_hands_the_rest_of_its_share_to_the_others(
    buffer_redis: RedisClient, configure: Callable[..., None]
) -> None:
    configure(mollifier_shards=8)
    buf = get_buffer()
    (small,), (big,) = orgs_by_shard(8, 1, 1)
    accept(buf, "run_small", org_id=small, env_id="env_s")
    for i in range(10):
        accept(buf, f"run_big_{i}", org_id=big, env_id="env_b")
    assert tally(buf.pop_batch(6), "orgId") == {small: 1, big: 5}
    assert len(buf.pop_batch(10)) == 5
    assert buf.pop_batch(10) == []
    assert all(buf.client.llen(ShardKeys(shard).orgs) == 0 for shard in range(8)), "every ring pruned"


def test_a_shard_whose_pop_came_up_short_leaves_its_turn_to_shards_not_asked_yet(
    buffer_redis: RedisClient, configure: Callable[..., None]
) -> None:
    # Organizations listed in a ring with nothing queued, as a concurrent drainer's pop leaves
    # them for a moment: this shard gets most turns, and its pop finds nothing.
    configure(mollifier_shards=8)
    buf = get_buffer()
    (live,), (ghost,) = orgs_by_shard(8, 1, 1)
    ghosts = ShardKeys(shard_of(ghost, 8)).orgs
    for i in range(5):
        buf.client.rpush(ghosts, *(f"org_gone_{i}_{j}" for j in range(9)))
        accept(buf, f"run_{i}", org_id=live, env_id="env")
        assert [e.runId for e in buf.pop_batch(1)] == [f"run_{i}"]


def test_a_batch_pops_a_requeued_entry_before_newer_ones(buffer: MollifierBuffer) -> None:
    for i in range(1, 5):
        accept(buffer, f"run_{i}")
    first, second = buffer.pop_batch(2)
    buffer.requeue(second)
    buffer.requeue(first)
    assert [e.runId for e in buffer.pop_batch(4)] == ["run_1", "run_2", "run_3", "run_4"]


def test_a_batch_skips_orphans_and_materialised_entries(buffer: MollifierBuffer) -> None:
    for i in range(1, 6):
        accept(buffer, f"run_{i}")
    buffer.client.delete(keys(buffer).entry("run_2"))
    buffer.client.hset(keys(buffer).entry("run_4"), "materialised", "true")
    assert [e.runId for e in buffer.pop_batch(5)] == ["run_1", "run_3", "run_5"]
    assert buffer.client.llen(keys(buffer).queue("org_a", "env_a")) == 0
    assert buffer.client.llen(keys(buffer).orgs) == 0


def test_a_batch_pop_consumes_at_most_max_pop_steps_orphans_per_call(buffer: MollifierBuffer) -> None:
    for i in range(MAX_POP_STEPS + 1):
        accept(buffer, f"run_{i:03}")
    buffer.client.delete(*(keys(buffer).entry(f"run_{i:03}") for i in range(MAX_POP_STEPS)))
    assert buffer.pop_batch(1) == []
    assert buffer.client.llen(keys(buffer).queue("org_a", "env_a")) == 1
    assert [e.runId for e in buffer.pop_batch(1)] == [f"run_{MAX_POP_STEPS:03}"]


@pytest.mark.parametrize("tail", ["", "a", "ab", "żółw", "🐢", "a/b+c=d?", "}{mollifier:1}:x"])
def test_the_pop_script_builds_the_keys_keys_py_builds(buffer: MollifierBuffer, tail: str) -> None:
    # Ids of every length modulo 3 and of multi-byte characters: the script's base64url must be
    # keys.b64, or it would find no environment ring, queue or entry and prune the rings.
    org, env, run = f"org{tail}", f"env{tail}x", f"run{tail}xy"
    accept(buffer, run, org_id=org, env_id=env)
    assert [e.runId for e in buffer.pop_batch(2)] == [run]
    k = buffer.keys_for(org)
    assert buffer.client.llen(k.queue(org, env)) == 0
    assert buffer.client.hget(k.entry(run), "status") == "DRAINING"
    assert buffer.client.llen(k.orgs) == 0


def test_a_batch_pop_takes_two_round_trips_however_many_shards_hold_entries(
    redis_client: RedisClient, configure: Callable[..., None]
) -> None:
    configure(mollifier_shards=8)
    buf = get_buffer()
    orgs = [group[0] for group in orgs_by_shard(8, 1, 1, 1, 1)]
    for org in orgs:
        for i in range(3):
            accept(buf, f"run_{org}_{i}", org_id=org, env_id="env")
    # A script the server has not seen yet costs one load, once (the test below covers it); what
    # is counted here is every pop after that, whichever test ran on this server first.
    for script in buf._scripts.values():
        buf.client.script_load(script.script)
    with round_trips(buf.client) as one_shard:
        assert len(buf.pop_batch(2)) == 2
    with round_trips(buf.client) as four_shards:
        assert tally(buf.pop_batch(8), "orgId") == dict.fromkeys(orgs, 2)
    assert one_shard == four_shards == [2], "organization counts, then every shard's pop script"


def test_batch_pops_and_acks_load_the_scripts_a_restarted_server_lost(buffer: MollifierBuffer) -> None:
    for i in range(1, 4):
        accept(buffer, f"run_{i}")
    buffer.client.script_flush()
    popped = buffer.pop_batch(3)
    assert [e.runId for e in popped] == ["run_1", "run_2", "run_3"]
    buffer.client.script_flush()
    buffer.client.delete(keys(buffer).entry("run_2"))
    assert buffer.ack_all(popped) == [True, False, True]
    assert buffer.client.zcard(keys(buffer).draining) == 0


@pytest.mark.cluster
def test_the_pop_script_does_not_run_while_its_slot_migrates(
    redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pop_batch.lua builds keys it does not declare; mid-migration some are on the other node and
    would read as missing (an empty ring pruned, an entry dropped). Its never-written slot_guard
    makes Redis refuse the script until the slot has moved."""
    redis_cluster.flushall()
    monkeypatch.setenv("SLUICE_REDIS_URL", redis_cluster.url)
    monkeypatch.setenv("SLUICE_REDIS_CLUSTER", "true")
    reload_settings()
    reset_redis()
    buf = get_buffer()
    for i in range(1, 4):
        accept(buf, f"run_{i}")
    first = pop_one(buf)
    assert first is not None and first.runId == "run_1"
    k = keys(buf)
    slot = key_slot(k.orgs.encode())
    nodes = [redis.Redis.from_url(node.url, decode_responses=True) for node in redis_cluster.nodes]
    source = next(n for n in nodes if n.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))
    target = next(n for n in nodes if n is not source)
    try:
        # Half moved: the keys the script declares are on the target, the rest still on the source.
        move_slot(slot, source, target, first_keys=[k.orgs, k.draining])
        with pytest.raises(RedisError):  # TRYAGAIN until redis-py gives up ("TTL exhausted")
            buf.pop_batch(5)
        finish_slot_move(slot, source, target, nodes)
        assert [e.runId for e in buf.pop_batch(5)] == ["run_2", "run_3"], "nothing was pruned or dropped"
    finally:
        finish_slot_move(slot, source, target, nodes)
        move_slot(slot, target, source)  # the layout back for the other tests
        finish_slot_move(slot, target, source, nodes)
        for node in nodes:
            node.close()
        reset_redis()


def node_address(node: redis.Redis) -> tuple[str, int]:
    kwargs = node.connection_pool.connection_kwargs
    return str(kwargs["host"]), int(kwargs["port"])


def move_slot(
    slot: int, source: redis.Redis, target: redis.Redis, first_keys: list[str] | None = None
) -> None:
    """Open a slot migration (``redis-cli --cluster reshard``'s steps) and move ``first_keys``."""
    target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.execute_command("CLUSTER", "MYID"))
    source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.execute_command("CLUSTER", "MYID"))
    if first_keys:
        host, port = node_address(target)
        source.execute_command("MIGRATE", host, port, "", 0, 5000, "KEYS", *first_keys)


def finish_slot_move(slot: int, source: redis.Redis, target: redis.Redis, nodes: list[redis.Redis]) -> None:
    host, port = node_address(target)
    while keys_left := source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
        source.execute_command("MIGRATE", host, port, "", 0, 5000, "KEYS", *keys_left)
    owner = target.execute_command("CLUSTER", "MYID")
    for node in nodes:
        node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner)


def test_accept_that_keeps_losing_the_idempotency_race_is_a_typed_503(
    buffer: MollifierBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(buffer, "_run", lambda *args: "retry")
    with pytest.raises(AcceptContention) as caught:
        accept(buffer, "run_x", idempotencyKey="k")
    assert caught.value.status == 503 and caught.value.headers["Retry-After"]
