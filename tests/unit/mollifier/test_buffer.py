"""Every buffer script on a real redis-server and on a three-node cluster (no CROSSSLOT)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from sluice.engine import RunError
from sluice.mollifier import MollifierBuffer, get_buffer
from sluice.mollifier.errors import AcceptContention
from sluice.mollifier.keys import ShardKeys, shard_of
from sluice.redis import RedisClient
from tests.unit.mollifier.conftest import accept, snapshot


def keys(buffer: MollifierBuffer, org: str = "org_a") -> ShardKeys:
    return buffer.keys_for(org)


def pop_all(buffer: MollifierBuffer) -> list[str]:
    popped = []
    while (entry := buffer.pop_next()) is not None:
        popped.append(entry.runId)
    return popped


# --- accept -----------------------------------------------------------------------------------------
def test_accept_writes_entry_enqueues_and_tracks_env(buffer: MollifierBuffer) -> None:
    assert accept(buffer, "run_1", payload={"n": 1}) == "accepted"
    k = keys(buffer)
    entry = buffer.get_entry("org_a", "run_1")
    assert entry is not None and entry.status == "QUEUED" and entry.attempts == 0
    assert entry.parsed_snapshot().body.payload == {"n": 1}
    assert buffer.client.lrange(k.queue("env_a"), 0, -1) == ["run_1"]
    assert buffer.client.lrange(k.org_envs("org_a"), 0, -1) == ["env_a"]
    assert buffer.client.lrange(k.orgs, 0, -1) == ["org_a"]


def test_entry_has_no_ttl_on_accept_and_keeps_none_across_pop(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    assert buffer.client.ttl(keys(buffer).entry("run_1")) == -1
    assert buffer.pop_next() is not None
    assert buffer.client.ttl(keys(buffer).entry("run_1")) == -1


def test_duplicate_run_id_is_refused_without_double_enqueue_or_overwrite(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", payload="first")
    assert accept(buffer, "run_1", payload="second") == "duplicate_run_id"
    assert buffer.client.llen(keys(buffer).queue("env_a")) == 1
    entry = buffer.get_entry("org_a", "run_1")
    assert entry is not None and entry.parsed_snapshot().body.payload == "first"


def test_accept_refused_while_entry_is_draining_or_inside_ack_grace(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = buffer.pop_next()
    assert entry is not None
    assert accept(buffer, "run_1") == "duplicate_run_id"
    buffer.ack(entry)
    assert accept(buffer, "run_1") == "duplicate_run_id"


# --- pop --------------------------------------------------------------------------------------------
def test_pop_returns_next_queued_entry_and_transitions_to_draining(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = buffer.pop_next()
    assert entry is not None and entry.runId == "run_1" and entry.status == "DRAINING"
    stored = buffer.get_entry("org_a", "run_1")
    assert stored is not None and stored.status == "DRAINING"


def test_pop_returns_none_when_empty(buffer: MollifierBuffer) -> None:
    assert buffer.pop_next() is None


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
        while (entry := buffer.pop_next()) is not None:
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
    entry = buffer.pop_next()
    assert entry is not None and entry.parsed_snapshot().body.payload == payload


def test_pop_skips_orphan_queue_references(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    buffer.client.delete(keys(buffer).entry("run_1"))
    assert buffer.pop_next() is None
    assert buffer.client.llen(keys(buffer).queue("env_a")) == 0
    assert buffer.client.llen(keys(buffer).orgs) == 0


def test_pop_skips_orphans_then_returns_the_first_valid_entry_behind_them(buffer: MollifierBuffer) -> None:
    for run_id in ("run_1", "run_2", "run_3"):
        accept(buffer, run_id)
    buffer.client.delete(keys(buffer).entry("run_1"), keys(buffer).entry("run_2"))
    entry = buffer.pop_next()
    assert entry is not None and entry.runId == "run_3"


def test_pop_prunes_env_and_org_rings_only_on_the_draining_pop(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    accept(buffer, "run_2")
    k = keys(buffer)
    buffer.pop_next()
    assert buffer.client.lrange(k.org_envs("org_a"), 0, -1) == ["env_a"]
    buffer.pop_next()
    assert buffer.client.llen(k.org_envs("org_a")) == 0
    assert buffer.client.llen(k.orgs) == 0


# --- ack --------------------------------------------------------------------------------------------
def test_ack_marks_materialised_and_applies_the_grace_ttl(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = buffer.pop_next()
    assert entry is not None and buffer.ack(entry)
    stored = buffer.get_entry("org_a", "run_1")
    assert stored is not None and stored.materialised
    assert 0 < buffer.client.ttl(keys(buffer).entry("run_1")) <= buffer.ack_grace_s
    assert buffer.client.zcard(keys(buffer).draining) == 0


def test_ack_on_missing_entry_is_a_noop(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = buffer.pop_next()
    assert entry is not None
    buffer.client.delete(keys(buffer).entry("run_1"))
    assert not buffer.ack(entry)
    assert not buffer.client.exists(keys(buffer).entry("run_1"))


# --- requeue ----------------------------------------------------------------------------------------
def test_requeue_increments_attempts_restores_queued_and_keeps_created_at(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = buffer.pop_next()
    assert entry is not None
    assert buffer.requeue(entry) == 1
    stored = buffer.get_entry("org_a", "run_1")
    assert stored is not None and stored.status == "QUEUED" and stored.attempts == 1
    assert stored.createdAt == entry.createdAt
    assert buffer.client.zcard(keys(buffer).draining) == 0


def test_requeued_entry_pops_ahead_of_newer_items(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    accept(buffer, "run_2")
    first = buffer.pop_next()
    assert first is not None and first.runId == "run_1"
    accept(buffer, "run_3")
    buffer.requeue(first)
    assert pop_all(buffer) == ["run_1", "run_2", "run_3"]


def test_requeue_on_missing_or_not_draining_entry_is_a_noop(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = buffer.pop_next()
    assert entry is not None
    assert buffer.requeue(entry) == 1
    assert buffer.requeue(entry) == 0, "a second requeue would put the run in the queue twice"
    assert buffer.client.llen(keys(buffer).queue("env_a")) == 1
    buffer.client.delete(keys(buffer).entry("run_1"))
    assert buffer.requeue(entry) == 0


def test_requeue_re_adds_env_and_org_to_the_rings(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = buffer.pop_next()
    assert entry is not None
    assert buffer.client.llen(keys(buffer).orgs) == 0
    buffer.requeue(entry)
    assert buffer.client.lrange(keys(buffer).orgs, 0, -1) == ["org_a"]
    assert buffer.client.lrange(keys(buffer).org_envs("org_a"), 0, -1) == ["env_a"]


def test_requeue_with_cutoff_leaves_an_entry_popped_after_it(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = buffer.pop_next()
    assert entry is not None
    score = buffer.client.zscore(keys(buffer).draining, "run_1")
    assert score is not None
    assert buffer.requeue(entry, popped_before_ms=int(score) - 1) == 0
    assert buffer.requeue(entry, popped_before_ms=int(score)) == 1


# --- fail -------------------------------------------------------------------------------------------
def test_fail_keeps_a_readable_failed_entry_out_of_every_queue(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    entry = buffer.pop_next()
    assert entry is not None
    assert buffer.fail(entry, RunError(code="X", message="boom"))
    stored = buffer.get_entry("org_a", "run_1")
    assert stored is not None and stored.status == "FAILED"
    assert stored.lastError == RunError(code="X", message="boom")
    assert 0 < buffer.client.ttl(keys(buffer).entry("run_1")) <= buffer.failed_ttl_s
    assert buffer.client.zcard(keys(buffer).draining) == 0
    assert buffer.pop_next() is None


def test_fail_on_missing_entry_is_a_noop_and_creates_no_partial_hash(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = buffer.pop_next()
    assert entry is not None
    buffer.client.delete(keys(buffer).entry("run_1"))
    assert not buffer.fail(entry, RunError(code="X", message="boom"))
    assert not buffer.client.exists(keys(buffer).entry("run_1"))


def test_fail_drops_the_idempotency_lookup(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    entry = buffer.pop_next()
    assert entry is not None
    buffer.fail(entry, RunError(code="X", message="boom"))
    assert buffer.lookup_idempotency("org_a", "env_a", "hello", "k") is None
    assert accept(buffer, "run_2", idempotencyKey="k") == "accepted"


# --- idempotency lookup -----------------------------------------------------------------------------
def test_accept_with_key_binds_the_lookup_with_no_ttl(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    lookup = keys(buffer).idempotency("env_a", "hello", "k")
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
    assert buffer.client.get(keys(buffer).idempotency("env_a", "hello", "k")) is None


def test_accept_self_heals_a_stale_lookup_and_still_dedups_a_live_one(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    assert accept(buffer, "run_2", idempotencyKey="k") == "duplicate_idempotency"
    buffer.client.delete(keys(buffer).entry("run_1"))
    assert accept(buffer, "run_3", idempotencyKey="k") == "accepted"
    assert buffer.client.get(keys(buffer).idempotency("env_a", "hello", "k")) == "run_3"


def test_ack_drops_the_lookup_only_if_it_still_names_the_run(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", idempotencyKey="k")
    entry = buffer.pop_next()
    assert entry is not None
    lookup = keys(buffer).idempotency("env_a", "hello", "k")
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
    assert buffer.client.llen(keys(buffer).queue("env_a")) == 1


def test_composite_keys_that_would_alias_unencoded_do_not_collide(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1", env_id="a:b", task_id="c", idempotencyKey="d")
    assert accept(buffer, "run_2", env_id="a", task_id="b:c", idempotencyKey="d") == "accepted"
    assert keys(buffer).idempotency("a:b", "c", "d") != keys(buffer).idempotency("a", "b:c", "d")


# --- claims -----------------------------------------------------------------------------------------
def test_claim_first_caller_claims_second_is_pending_then_resolved(buffer: MollifierBuffer) -> None:
    key = keys(buffer).claim("env_a", "hello", "k")
    assert buffer.claim(key, "t1", 30) == "claimed"
    assert buffer.claim(key, "t2", 30) == "pending"
    assert buffer.claim(key, "t1", 30) == "claimed"
    assert buffer.publish_claim(key, "t1", "run_1", 30)
    assert buffer.claim(key, "t2", 30) == "resolved:run_1"


def test_release_or_publish_with_the_wrong_token_is_a_noop(buffer: MollifierBuffer) -> None:
    key = keys(buffer).claim("env_a", "hello", "k")
    buffer.claim(key, "t1", 30)
    assert not buffer.release_claim(key, "t2")
    assert not buffer.publish_claim(key, "t2", "run_x", 30)
    assert buffer.client.get(key) == "pending:t1"
    assert buffer.release_claim(key, "t1")
    assert buffer.claim(key, "t2", 30) == "claimed"


def test_stale_release_after_ttl_expiry_does_not_erase_a_fresh_claim(buffer: MollifierBuffer) -> None:
    key = keys(buffer).claim("env_a", "hello", "k")
    buffer.claim(key, "old", 1)
    buffer.client.delete(key)  # what the TTL does
    assert buffer.claim(key, "new", 30) == "claimed"
    assert not buffer.release_claim(key, "old")
    assert buffer.client.get(key) == "pending:new"


# --- draining tracker ---------------------------------------------------------------------------------
def test_pop_records_a_recent_positive_score_in_the_draining_set(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    buffer.pop_next()
    score = buffer.client.zscore(keys(buffer).draining, "run_1")
    assert score is not None and abs(score / 1000 - time.time()) < 60


def test_pop_requeue_pop_is_tracked_at_the_latest_pop(buffer: MollifierBuffer) -> None:
    accept(buffer, "run_1")
    entry = buffer.pop_next()
    assert entry is not None
    first = buffer.client.zscore(keys(buffer).draining, "run_1")
    buffer.requeue(entry)
    assert buffer.client.zscore(keys(buffer).draining, "run_1") is None
    time.sleep(0.002)
    buffer.pop_next()
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
    first = [buf.pop_next() for _ in range(12)]
    light = [e for e in first if e is not None and e.orgId == "org_light"]
    assert len(light) == 5, "the light org gets every other turn, not 1 in 21"


def test_a_heavy_org_with_many_envs_rotates_its_envs_round_robin(buffer: MollifierBuffer) -> None:
    for env in range(4):
        for i in range(3):
            accept(buffer, f"run_{env}_{i}", env_id=f"env_{env}")
    envs = [e.envId for e in (buffer.pop_next() for _ in range(8)) if e is not None]
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
    orgs = [e.orgId for e in (buf.pop_next() for _ in range(20)) if e is not None]
    assert abs(orgs.count(a) - orgs.count(b)) <= 1


def test_accept_that_keeps_losing_the_idempotency_race_is_a_typed_503(
    buffer: MollifierBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(buffer, "_run", lambda *args: "retry")
    with pytest.raises(AcceptContention) as caught:
        accept(buffer, "run_x", idempotencyKey="k")
    assert caught.value.status == 503 and caught.value.headers["Retry-After"]
