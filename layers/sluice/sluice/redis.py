"""The one Redis client factory: timeouts, retries, TLS and Lua scripts are decided here.

``SLUICE_REDIS_URL`` is ``redis://`` or ``rediss://`` (TLS, as ElastiCache in-transit encryption
needs); ``SLUICE_REDIS_CLUSTER=true`` makes a cluster client for ElastiCache cluster mode.
"""

from __future__ import annotations

import uuid
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

from sluice import observability
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
        return observability.trace_redis(
            redis.cluster.RedisCluster.from_url(settings.redis_url, retry=retry, **options)
        )
    return observability.trace_redis(
        redis.Redis.from_url(
            settings.redis_url,
            retry=retry,
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            **options,
        )
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


# How long a once-script's reply is kept: longer than the client's retries of one call last
# (SLUICE_REDIS_RETRIES attempts of SLUICE_REDIS_SOCKET_TIMEOUT_MS, with a backoff capped at
# 0.2 s: about 2 s with the defaults), short because a reply (a popped batch) can be large.
ONCE_REPLY_TTL_S = 10
# The script's body runs as a function so that its ``return`` is caught; the call key is taken
# off KEYS first, so that the body sees the KEYS its callers pass (``#KEYS`` included).
_ONCE = """local call_key = table.remove(KEYS)
local replayed = redis.call('GET', call_key)
if replayed then
  return cjson.decode(replayed)
end
local reply = (function()
__BODY__
end)()
redis.call('SET', call_key, cjson.encode(reply), 'EX', __TTL__)
return reply
"""


def call_key(first_key: str) -> str:
    """A fresh key in ``first_key``'s cluster slot (its hash tag, or the whole key as the tag)
    where a once-script keeps its reply."""
    start = first_key.find("{")
    end = first_key.find("}", start + 1)
    tag = first_key[start + 1 : end] if start != -1 and end > start + 1 else first_key
    return f"{{{tag}}}:call:{uuid.uuid4().hex}"


class OnceScript:
    """A script whose effect happens once per call although redis-py retries a command whose
    reply timed out (``SLUICE_REDIS_RETRIES``; Redis may have run it already): each call carries
    a fresh call key (``call_key``), and a second run of the same call answers the first one's
    reply, which the script keeps there for ``ONCE_REPLY_TTL_S``. For scripts that are not
    idempotent: a pop, a counter, a token bucket. The reply must survive JSON (cjson): arrays,
    strings, integers; never nil."""

    def __init__(self, client: RedisClient, package: str, name: str) -> None:
        source = _ONCE.replace("__BODY__", _lua_source(package, name))
        source = source.replace("__TTL__", str(ONCE_REPLY_TTL_S))
        self.script: Script = client.register_script(source)

    def __call__(self, keys: list[str], args: list[Any], client: RedisClient | None = None) -> Any:
        return self.script(keys=self.keys(keys), args=args, client=client)

    @staticmethod
    def keys(keys: list[str]) -> list[str]:
        """``keys`` and a fresh call key (for a call sent by hand, as in a pipeline)."""
        return [*keys, call_key(keys[0])]
