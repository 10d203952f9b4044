"""Mollifier fixtures: the buffer on a single redis-server and, for cluster-marked variants, on the
session's three-node Redis Cluster (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from devstack.redis_cluster import RedisCluster
from sluice.config import reload_settings
from sluice.engine import TriggerBody
from sluice.mollifier import BufferEntry, MollifierBuffer, get_buffer
from sluice.mollifier.models import Snapshot
from sluice.redis import RedisClient, get_redis, reset_redis


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.cluster)])
def buffer_redis(
    request: pytest.FixtureRequest, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RedisClient]:
    """An empty Redis (single node, then cluster) that ``SLUICE_REDIS_URL`` points at."""
    if request.param == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        monkeypatch.setenv("SLUICE_REDIS_URL", cluster.url)
        monkeypatch.setenv("SLUICE_REDIS_CLUSTER", "true")
    else:
        plain = redis.Redis.from_url(redis_url)
        plain.flushall()
        plain.close()
        monkeypatch.setenv("SLUICE_REDIS_URL", redis_url)
        monkeypatch.setenv("SLUICE_REDIS_CLUSTER", "false")
    reload_settings()
    reset_redis()
    yield get_redis()
    reset_redis()


@pytest.fixture
def buffer(buffer_redis: RedisClient) -> MollifierBuffer:
    return get_buffer()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set ``SLUICE_<NAME>`` settings for this test (call it after the other fixtures are up)."""

    def set_settings(**values: Any) -> None:
        for name, value in values.items():
            monkeypatch.setenv(
                f"SLUICE_{name.upper()}", str(value).lower() if isinstance(value, bool) else str(value)
            )
        reload_settings()

    return set_settings


def snapshot(task_id: str = "hello", payload: Any = None, **options: Any) -> Snapshot:
    return Snapshot(
        taskId=task_id,
        envType="DEVELOPMENT",
        body=TriggerBody.model_validate({"payload": payload, "options": options}),
    )


def accept(
    buffer: MollifierBuffer, run_id: str, org_id: str = "org_a", env_id: str = "env_a", **kwargs: Any
) -> str:
    return buffer.accept(
        run_id=run_id, org_id=org_id, env_id=env_id, snapshot=snapshot(**kwargs), created_at=datetime.now(UTC)
    ).kind


def pop_one(buffer: MollifierBuffer) -> BufferEntry | None:
    """The next entry in fair order (a batch of one), or None when the buffer is empty."""
    popped = buffer.pop_batch(1)
    return popped[0] if popped else None
