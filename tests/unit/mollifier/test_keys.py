"""The key layout: one slot per organization, composite keys that cannot alias or move slot."""

from __future__ import annotations

from redis.crc import key_slot

from sluice.auth import tenant_key
from sluice.mollifier.keys import ShardKeys, b64, shard_of


def org_keys(org: str, shards: int = 8) -> list[str]:
    k = ShardKeys(shard_of(org, shards))
    return [
        k.orgs,
        k.draining,
        k.entry("run_1"),
        k.queue(org, "env_a"),
        k.org_envs(org),
        k.idempotency(tenant_key(org, "env_a"), "task", "key"),
        k.claim(tenant_key(org, "env_a"), "task", "key"),
        k.rate(tenant_key(org, "env_a")),
        k.tripped(tenant_key(org, "env_a")),
    ]


def test_every_key_of_an_organization_hashes_to_one_slot() -> None:
    for org in ("org_a", "org_b", "x" * 300):
        assert len({key_slot(key.encode()) for key in org_keys(org)}) == 1


def test_customer_strings_cannot_move_a_key_to_another_slot() -> None:
    k = ShardKeys(3)
    hostile = k.idempotency("env}{x", "{task}", "}{mollifier:7}")
    assert key_slot(hostile.encode()) == key_slot(k.orgs.encode())


def test_encoded_segments_carry_no_separator_and_do_not_alias() -> None:
    k = ShardKeys(0)
    assert k.idempotency("a:b", "c", "d") != k.idempotency("a", "b:c", "d")
    suffix = k.idempotency("a:b", "c:d", "e:f").removeprefix(f"{k.tag}:idempotency:")
    assert suffix.count(":") == 2
    assert ":" not in b64("a:b:c") and "=" not in b64("ab")


def test_two_organizations_with_one_environment_id_share_no_key() -> None:
    """Environment ids are names two organizations may share; on one shard, their queues,
    idempotency lookups, claims and trip counters are still apart."""
    k = ShardKeys(0)
    a, b = ("org_a", "prod"), ("org_b", "prod")
    assert k.queue(*a) != k.queue(*b)
    for build in (
        lambda t: k.idempotency(t, "task", "key"),
        k.rate,
        k.tripped,
        lambda t: k.claim(t, "t", "k"),
    ):
        assert build(tenant_key(*a)) != build(tenant_key(*b))


def test_shard_of_is_stable_across_processes() -> None:
    assert shard_of("org_a", 8) == 6  # crc32, not the per-process salted hash()
