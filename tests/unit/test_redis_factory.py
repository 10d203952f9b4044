from __future__ import annotations

import pytest
import redis

from sluice.config import reload_settings
from sluice.redis import UNAVAILABLE_ERRORS, get_redis, reset_redis


def test_factory_client_talks_to_the_configured_redis(redis_client: redis.Redis) -> None:
    client = get_redis()
    client.set("k", "v")
    assert redis_client.get("k") == "v"


def test_unreachable_redis_raises_an_unavailable_error_quickly(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devstack.services import free_port

    monkeypatch.setenv("SLUICE_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("SLUICE_REDIS_RETRIES", "0")
    reload_settings()
    reset_redis()
    with pytest.raises(UNAVAILABLE_ERRORS):
        get_redis().ping()
