"""The one Redis client factory: timeouts, retries, TLS and Lua scripts are decided here.

``SLUICE_REDIS_URL`` is ``redis://`` or ``rediss://`` (TLS, as ElastiCache in-transit encryption
needs); ``SLUICE_REDIS_CLUSTER=true`` makes a cluster client for ElastiCache cluster mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import redis
import redis.cluster
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from sluice.config import Settings, get_settings
from sluice.errors import ServiceUnavailable

RedisClient = redis.Redis | redis.cluster.RedisCluster

# The errors after which Redis is treated as down: callers fail open or answer 503.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    # What a cluster client raises when redirections outlast its TTL, as during a slot migration.
    redis.exceptions.ClusterError,
    # What a cluster client raises when no startup node answers ("cannot be connected").
    redis.exceptions.RedisClusterException,
    OSError,
)


def is_retryable(exc: BaseException) -> bool:
    """Redis is down or failing over (a script error or a wrong type is a bug: not retryable)."""
    return isinstance(exc, UNAVAILABLE_ERRORS)


@contextmanager
def unavailable_as_503(what: str) -> Iterator[None]:
    """Redis being down (``UNAVAILABLE_ERRORS``) becomes a 503 naming ``what`` ("The burst buffer
    is unavailable; retry shortly"); any other error propagates unchanged."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise ServiceUnavailable(f"The {what} is unavailable; retry shortly") from exc


def build_client(settings: Settings) -> RedisClient:
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout_ms / 1000,
        "socket_connect_timeout": settings.redis_connect_timeout_ms / 1000,
        "decode_responses": True,
        "health_check_interval": 30,
    }
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.01), settings.redis_retries)
    if settings.redis_cluster:
        return redis.cluster.RedisCluster.from_url(settings.redis_url, retry=retry, **options)
    return redis.Redis.from_url(
        settings.redis_url,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **options,
    )


@lru_cache(maxsize=1)
def get_redis() -> RedisClient:
    """The process-wide client (a pool underneath), built on first use."""
    return build_client(get_settings())


def reset_redis() -> None:
    get_redis.cache_clear()


@cache
def _lua_source(package: str, name: str) -> str:
    return resources.files(package).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def load_script(client: RedisClient, package: str, name: str) -> Script:
    """A script from ``<package>/lua/<name>.lua``, run by SHA (reloaded on NOSCRIPT by redis-py).

    The source is read from disk once per process; callers keep the returned Script.
    """
    return client.register_script(_lua_source(package, name))
