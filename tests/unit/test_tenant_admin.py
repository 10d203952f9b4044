"""Tenant administration (sluice.auth.admin) on moto: organizations, environments, API keys and
organization flags, and what authentication makes of them."""

from __future__ import annotations

import functools
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from cachetools import TTLCache

from sluice.auth import api_keys, authenticate, clear_auth_cache, provision_key
from sluice.auth.admin import (
    AlreadyExists,
    AlreadyRevoked,
    InvalidInput,
    NotFound,
    TenantAdmin,
)
from sluice.config import reload_settings
from sluice.errors import Unauthorized
from tests.conftest import AwsStack

BAD_IDS = ["", "a/b", "x" * 65, "a b", "é", "a#b", "org\n"]


@pytest.fixture
def admin(aws: AwsStack) -> TenantAdmin:
    return TenantAdmin.from_settings()


@pytest.fixture
def env_a(admin: TenantAdmin) -> tuple[str, str]:
    admin.create_organization("org_a")
    admin.create_environment("org_a", "prod", "PRODUCTION")
    return "org_a", "prod"


def items(aws: AwsStack) -> list[dict[str, Any]]:
    return list(aws.dynamodb.scan(TableName=aws.stack.physical_name("ApiKeysTable"))["Items"])


def auth_cache_ttl(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setenv("SLUICE_AUTH_CACHE_TTL_S", str(seconds))
    reload_settings()
    clear_auth_cache()


def auth(api_key: str) -> api_keys.Environment:
    return authenticate({"authorization": f"Bearer {api_key}"})


def test_an_organization_is_created_once(admin: TenantAdmin) -> None:
    admin.create_organization("org_a")
    admin.update_flags("org_a", {"mollifierEnabled": True})
    with pytest.raises(AlreadyExists, match="org_a"):
        admin.create_organization("org_a")
    assert admin.get_flags("org_a") == {"mollifierEnabled": True}  # not overwritten


def test_an_environment_needs_its_organization_and_is_created_once(admin: TenantAdmin, aws: AwsStack) -> None:
    with pytest.raises(NotFound, match="organization"):
        admin.create_environment("org_a", "prod")
    assert items(aws) == []
    admin.create_organization("org_a")
    admin.create_environment("org_a", "prod", "production")
    with pytest.raises(AlreadyExists, match="prod"):
        admin.create_environment("org_a", "prod", "DEVELOPMENT")
    key = admin.create_key("org_a", "prod")
    assert key.info.env_type == "PRODUCTION" and key.api_key.startswith("sk_prod_")


def test_two_organizations_may_each_have_an_environment_of_the_same_name(admin: TenantAdmin) -> None:
    for org in ("org_a", "org_b"):
        admin.create_organization(org)
        admin.create_environment(org, "prod")
    a, b = admin.create_key("org_a", "prod"), admin.create_key("org_b", "prod")
    assert (auth(a.api_key).tenant, auth(b.api_key).tenant) == ("org_a/prod", "org_b/prod")
    assert [k.key_id for k in admin.list_keys("org_a", "prod")] == [a.info.key_id]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_are_refused_and_nothing_is_written(admin: TenantAdmin, aws: AwsStack, bad: str) -> None:
    with pytest.raises(InvalidInput, match="organization id"):
        admin.create_organization(bad)
    admin.create_organization("org_a")
    with pytest.raises(InvalidInput, match="environment id"):
        admin.create_environment("org_a", bad)
    with pytest.raises(InvalidInput):
        admin.create_key("org_a", bad)
    with pytest.raises(InvalidInput):
        admin.list_keys(bad, "prod")
    with pytest.raises(InvalidInput):
        admin.update_flags(bad, {"x": 1})
    assert [item["pk"]["S"] for item in items(aws)] == ["ORG#org_a"]


def test_an_environment_type_must_be_one_of_the_four(admin: TenantAdmin) -> None:
    admin.create_organization("org_a")
    with pytest.raises(InvalidInput, match="PRODUCTION"):
        admin.create_environment("org_a", "prod", "PROD")


def test_a_key_needs_an_existing_environment(admin: TenantAdmin, aws: AwsStack) -> None:
    with pytest.raises(NotFound, match="environment"):
        admin.create_key("org_a", "prod")
    admin.create_organization("org_a")
    with pytest.raises(NotFound, match="environment"):
        admin.create_key("org_a", "prod")
    assert not any(item["pk"]["S"].startswith("KEY#") for item in items(aws))


def test_a_key_is_stored_hashed_and_listed_without_its_secret(
    admin: TenantAdmin, aws: AwsStack, env_a: tuple[str, str]
) -> None:
    first = admin.create_key(*env_a)
    second = admin.create_key(*env_a)
    stored = json.dumps(items(aws))
    assert first.api_key not in stored and api_keys.hash_key(first.api_key) in stored

    listed = admin.list_keys(*env_a)
    shown = json.dumps([info.to_json(time.time()) for info in listed])
    by_id = {info.key_id: info for info in listed}
    assert set(by_id) == {first.info.key_id, second.info.key_id} and len(listed) == 2
    assert first.api_key not in shown and api_keys.hash_key(first.api_key) not in shown
    assert by_id[first.info.key_id].start == first.api_key[: len("sk_prod_") + 4]
    assert by_id[first.info.key_id].revoked_at is None and by_id[first.info.key_id].active(time.time())
    assert auth(first.api_key).tenant == "org_a/prod"


def test_listing_an_environment_that_does_not_exist_is_not_found(
    admin: TenantAdmin, env_a: tuple[str, str]
) -> None:
    assert admin.list_keys(*env_a) == []
    with pytest.raises(NotFound):
        admin.list_keys("org_a", "staging")


def test_a_revoked_key_is_refused_at_once_without_the_auth_cache(
    admin: TenantAdmin, env_a: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    auth_cache_ttl(monkeypatch, 0)
    key, other = admin.create_key(*env_a), admin.create_key(*env_a)
    assert auth(key.api_key).env_id == "prod"
    revoked = admin.revoke_key(*env_a, key.info.key_id)
    assert revoked.revoked_at is not None and not revoked.active(time.time())
    with pytest.raises(Unauthorized, match="revoked"):
        auth(key.api_key)
    assert auth(other.api_key).env_id == "prod"  # only that key
    listed = {info.key_id: info.revoked_at is not None for info in admin.list_keys(*env_a)}
    assert listed == {key.info.key_id: True, other.info.key_id: False}


def test_a_revoked_key_lingers_only_for_the_auth_cache_ttl(
    admin: TenantAdmin, env_a: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the README promises: a warm function refuses a revoked key once its cached
    resolution expires, SLUICE_AUTH_CACHE_TTL_S after it resolved it."""
    now = [1000.0]
    monkeypatch.setattr(api_keys, "TTLCache", functools.partial(TTLCache, timer=lambda: now[0]))
    auth_cache_ttl(monkeypatch, 30)
    key = admin.create_key(*env_a)
    auth(key.api_key)  # cached from t=1000
    admin.revoke_key(*env_a, key.info.key_id)
    now[0] += 29.9
    assert auth(key.api_key).env_id == "prod"
    now[0] += 0.2
    with pytest.raises(Unauthorized, match="revoked"):
        auth(key.api_key)


def test_revoking_twice_or_a_key_of_another_environment_is_refused(
    admin: TenantAdmin, env_a: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    auth_cache_ttl(monkeypatch, 0)
    admin.create_environment("org_a", "dev")
    key = admin.create_key(*env_a)
    with pytest.raises(NotFound):
        admin.revoke_key("org_a", "dev", key.info.key_id)
    with pytest.raises(NotFound):
        admin.revoke_key(*env_a, "key_0000000000000000")
    assert auth(key.api_key).env_id == "prod"
    admin.revoke_key(*env_a, key.info.key_id)
    with pytest.raises(AlreadyRevoked, match="revoked already, since 20"):
        admin.revoke_key(*env_a, key.info.key_id)


def test_rotation_replaces_a_key_at_once_by_default(
    admin: TenantAdmin, env_a: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    auth_cache_ttl(monkeypatch, 0)
    old = admin.create_key(*env_a)
    new, replaced = admin.rotate_key(*env_a, old.info.key_id)
    assert auth(new.api_key).tenant == "org_a/prod" and new.api_key.startswith("sk_prod_")
    with pytest.raises(Unauthorized):
        auth(old.api_key)
    assert replaced.key_id == old.info.key_id and replaced.revoked_at is not None
    with pytest.raises(AlreadyRevoked):
        admin.rotate_key(*env_a, old.info.key_id)
    assert [info.key_id for info in admin.list_keys(*env_a) if info.revoked_at is None] == [new.info.key_id]


def test_rotation_with_a_grace_period_keeps_the_old_key_until_it_ends(
    admin: TenantAdmin, aws: AwsStack, env_a: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    auth_cache_ttl(monkeypatch, 0)
    old = admin.create_key(*env_a)
    new, replaced = admin.rotate_key(*env_a, old.info.key_id, grace=timedelta(hours=1))
    assert replaced.revoked_at is not None and replaced.revoked_at >= time.time() + 3590
    assert auth(old.api_key).env_id == auth(new.api_key).env_id == "prod"
    with pytest.raises(AlreadyRevoked):  # rotated already: rotate the new one
        admin.rotate_key(*env_a, old.info.key_id)
    admin.revoke_key(*env_a, old.info.key_id)  # ends the grace now
    with pytest.raises(Unauthorized):
        auth(old.api_key)

    # A grace that ended (rotated by an admin whose clock is two hours behind).
    earlier = TenantAdmin(aws.dynamodb, admin.table, clock=lambda: time.time() - 7200)
    other = admin.create_key(*env_a)
    earlier.rotate_key(*env_a, other.info.key_id, grace=timedelta(hours=1))
    with pytest.raises(Unauthorized):
        auth(other.api_key)


def test_a_rotation_that_loses_to_a_revoke_makes_no_key(
    admin: TenantAdmin, env_a: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = admin.create_key(*env_a)
    seen = admin._key_item(*env_a, old.info.key_id)  # as the rotation read it, before the revoke
    admin.revoke_key(*env_a, old.info.key_id)
    monkeypatch.setattr(admin, "_key_item", lambda *_: seen)
    with pytest.raises(AlreadyRevoked, match="meanwhile"):
        admin.rotate_key(*env_a, old.info.key_id)
    assert [info.key_id for info in admin.list_keys(*env_a)] == [old.info.key_id]


def test_flags_are_set_merged_unset_and_replaced(admin: TenantAdmin, env_a: tuple[str, str]) -> None:
    key = admin.create_key(*env_a)
    assert admin.get_flags("org_a") == {}
    assert admin.update_flags("org_a", {"mollifierEnabled": True, "limit": 5}) == {
        "mollifierEnabled": True,
        "limit": 5,
    }
    assert admin.update_flags("org_a", {"limit": 6}) == {"mollifierEnabled": True, "limit": 6}
    assert admin.update_flags("org_a", unset=["limit", "absent"]) == {"mollifierEnabled": True}
    clear_auth_cache()
    assert auth(key.api_key).org_flags == {"mollifierEnabled": True}
    assert admin.update_flags("org_a", {"only": "this"}, replace=True) == {"only": "this"}
    assert admin.get_flags("org_a") == {"only": "this"}


def test_flags_of_an_organization_that_does_not_exist_are_not_found(
    admin: TenantAdmin, aws: AwsStack
) -> None:
    for call in (
        lambda: admin.get_flags("org_x"),
        lambda: admin.update_flags("org_x", {"a": 1}),
        lambda: admin.update_flags("org_x", {"a": 1}, replace=True),
    ):
        with pytest.raises(NotFound):
            call()
    assert items(aws) == []


def test_a_flag_written_meanwhile_is_kept(admin: TenantAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    admin.create_organization("org_a")
    read = admin._organization
    calls = []

    def read_then_another_writer(org_id: str) -> dict[str, Any]:
        item = read(org_id)
        if not calls:  # between this read and its write, another operator sets a flag
            calls.append(org_id)
            TenantAdmin.from_settings().update_flags(org_id, {"theirs": 1})
        return item

    monkeypatch.setattr(admin, "_organization", read_then_another_writer)
    assert admin.update_flags("org_a", {"mine": 2}) == {"theirs": 1, "mine": 2}
    assert admin.get_flags("org_a") == {"theirs": 1, "mine": 2}


def test_provision_key_makes_what_is_missing_and_reuses_what_exists(aws: AwsStack) -> None:
    first = provision_key("org_p", "env_p", flags={"mollifierEnabled": True})
    second = provision_key("org_p", "env_p")
    assert auth(first).tenant == auth(second).tenant == "org_p/env_p"
    assert auth(second).org_flags == {"mollifierEnabled": True}
    with pytest.raises(InvalidInput, match="DEVELOPMENT"):
        provision_key("org_p", "env_p", env_type="PRODUCTION")
    with pytest.raises(InvalidInput):
        provision_key("org/p", "env_p")
