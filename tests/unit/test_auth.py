from __future__ import annotations

import pytest

from sluice.auth import authenticate, bearer_token, clear_auth_cache, hash_key, provision_key, set_org_flags
from sluice.errors import ServiceUnavailable, Unauthorized
from tests.conftest import AwsStack


def test_keys_are_stored_only_as_sha256_hashes(aws: AwsStack) -> None:
    key = provision_key("org_x", "env_x", env_type="PRODUCTION")
    assert key.startswith("sk_prod_")
    items = aws.dynamodb.scan(TableName=aws.stack.physical_name("ApiKeysTable"))["Items"]
    stored = str(items)
    assert key not in stored and hash_key(key) in stored


def test_a_key_resolves_to_its_environment_and_org_flags(aws: AwsStack) -> None:
    key = provision_key("org_x", "env_x", flags={"mollifierEnabled": True})
    env = authenticate({"Authorization": f"Bearer {key}"})
    assert (env.org_id, env.env_id, env.env_type) == ("org_x", "env_x", "DEVELOPMENT")
    assert env.org_flags == {"mollifierEnabled": True}


def test_flag_changes_are_seen_once_the_cache_is_cleared(aws: AwsStack) -> None:
    key = provision_key("org_x", "env_x")
    assert authenticate({"authorization": f"Bearer {key}"}).org_flags == {}
    set_org_flags("org_x", {"mollifierEnabled": "yes"})
    clear_auth_cache()
    assert authenticate({"authorization": f"Bearer {key}"}).org_flags == {"mollifierEnabled": "yes"}


@pytest.mark.parametrize("header", [None, {}, {"authorization": ""}, {"authorization": "Bearer "}])
def test_missing_bearer_token_is_unauthorized(header: dict[str, str] | None) -> None:
    with pytest.raises(Unauthorized):
        bearer_token(header)


def test_key_store_outage_is_service_unavailable(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_API_KEYS_TABLE", "no-such-table")
    from sluice.config import reload_settings

    reload_settings()
    with pytest.raises(ServiceUnavailable):
        authenticate({"authorization": "Bearer sk_dev_anything"})
