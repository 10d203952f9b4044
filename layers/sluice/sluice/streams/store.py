"""Redis storage of streams: append, close, snapshot the tail, read after an id.

Every call either completes or raises ``ServiceUnavailable``: the scripts check before they write,
so a failed append has written nothing, and its retry (with the same part ids) lands once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any

from sluice import observability
from sluice.config import get_settings
from sluice.errors import Conflict
from sluice.redis import OnceScript, RedisClient, build_client, get_redis, load_script, unavailable_as_503
from sluice.streams.errors import InvalidStreamToken, StreamClosed
from sluice.streams.keys import StreamKeys
from sluice.streams.models import AppendResult, StreamAddress, StreamEvent

DATA_FIELD = "d"
END_FIELD = "e"
# The meta hash's field naming the stream's tenant (``sluice.auth.tenant_key``); also the scripts'
# answer when a writer's token names another tenant.
TENANT_FIELD = "tenant"


def redis_errors() -> AbstractContextManager[None]:
    return unavailable_as_503("stream store")


def _event(entry_id: str, fields: dict[str, str]) -> StreamEvent:
    if END_FIELD in fields:
        return StreamEvent(entry_id, end=True)
    return StreamEvent(entry_id, data=json.loads(fields[DATA_FIELD]))


class StreamStore:
    def __init__(self, client: RedisClient, blocking: RedisClient | None = None) -> None:
        self.client = client
        # XREAD BLOCK outlasts the ordinary socket timeout, so blocking reads get their own client.
        self.blocking = blocking or client
        self._append = OnceScript(client, "sluice.streams", "append")
        self._close = OnceScript(client, "sluice.streams", "close")
        # Raising a fence is a max: running it twice is harmless, so a plain script.
        self._fence = load_script(client, "sluice.streams", "fence")

    def register(self, address: StreamAddress, tenant: str) -> None:
        """Bind the stream to its tenant (a mint does this before handing out a token)."""
        meta = StreamKeys(address).meta
        with redis_errors():
            self.client.hsetnx(meta, TENANT_FIELD, tenant)
            self.client.expire(meta, get_settings().stream_ttl_s)

    def record_chunk_index(self, address: StreamAddress, client_id: str, index: int) -> None:
        """Remember the last chunk index a writer's client appended (``streams.ingest_v1``)."""
        with redis_errors():
            self.client.hset(StreamKeys(address).meta, f"v1:{client_id}", str(index))

    def chunk_index(self, address: StreamAddress, client_id: str) -> int:
        """The last chunk index the client appended; -1 when none."""
        with redis_errors():
            value: str | None = self.client.hget(StreamKeys(address).meta, f"v1:{client_id}")  # type: ignore[assignment]
        return int(value) if value is not None else -1

    def tenant(self, address: StreamAddress) -> str | None:
        with redis_errors():
            tenant: str | None = self.client.hget(StreamKeys(address).meta, TENANT_FIELD)  # type: ignore[assignment]
        return tenant

    def append(
        self, address: StreamAddress, tenant: str, chunks: Sequence[tuple[str, str]], attempt: int = 0
    ) -> AppendResult:
        """Append ``(part id or "", chunk JSON)`` pairs in order, in one script call.

        ``attempt``: the run attempt the writer's token was minted for (0: none), held to the
        stream's fence (``raise_fence``).

        Raises:
            StreamClosed: the stream is closed (nothing appended).
            InvalidStreamToken: the stream belongs to another tenant (nothing appended).
            Conflict: ``stale_lease``: ``attempt`` is older than the fence (nothing appended).
            ServiceUnavailable: Redis is down (nothing appended, or all of it: retry with part ids).
        """
        settings = get_settings()
        args: list[Any] = [tenant, settings.stream_max_len, settings.stream_ttl_s, attempt]
        for part_id, data in chunks:
            args.extend((part_id, data))
        with redis_errors():
            reply = self._append(keys=StreamKeys(address).all(), args=args, client=self.client)
        status = reply[0]
        if status == "closed":
            raise StreamClosed(f"Stream {address.stream_id} is closed")
        if status == TENANT_FIELD:
            raise InvalidStreamToken("The stream token was made for another tenant")
        if status == "stale":
            raise Conflict(
                f"The stream token's attempt {attempt} is no longer the run's current attempt",
                code="stale_lease",
            )
        result = AppendResult(ids=[str(i) for i in reply[2:]], deduplicated=int(reply[1]))
        observability.count("StreamAppends", len(result.ids) - result.deduplicated)
        return result

    def raise_fence(self, address: StreamAddress, attempt: int) -> None:
        """Refuse, from now on, appends with tokens of attempts before ``attempt``."""
        with redis_errors():
            self._fence(
                keys=[StreamKeys(address).meta],
                args=[attempt, get_settings().stream_ttl_s],
                client=self.client,
            )

    def close(self, address: StreamAddress, tenant: str = "") -> str | None:
        """Close the stream; the end entry's id, or None if it was closed already.

        ``tenant`` empty: the platform closes it (a run finished), whatever its tenant.
        """
        with redis_errors():
            reply = self._close(
                keys=StreamKeys(address).all(), args=[tenant, get_settings().stream_ttl_s], client=self.client
            )
        if reply[0] == TENANT_FIELD:
            raise InvalidStreamToken("The stream token was made for another tenant")
        return str(reply[1]) or None

    def tail(self, address: StreamAddress) -> StreamEvent | None:
        """The newest entry (``XREVRANGE + - COUNT 1``), or None for an empty or missing stream."""
        with redis_errors():
            newest: Any = self.client.xrevrange(StreamKeys(address).data, count=1)
        return _event(str(newest[0][0]), newest[0][1]) if newest else None

    def read_after(
        self, address: StreamAddress, last_id: str, *, block_ms: int | None, count: int = 100
    ) -> list[StreamEvent]:
        """Entries after ``last_id`` (at most ``count``), waiting up to ``block_ms`` for the first."""
        with redis_errors():
            reply: Any = self.blocking.xread({StreamKeys(address).data: last_id}, count=count, block=block_ms)
        if not reply:
            return []
        entries = reply[0][1]  # [[key, [(id, fields), ...]]]
        return [_event(str(entry_id), fields) for entry_id, fields in entries]


@lru_cache(maxsize=1)
def _store(client: RedisClient) -> StreamStore:
    settings = get_settings()
    blocking_timeout_ms = settings.sse_block_ms + max(settings.redis_socket_timeout_ms, 1000)
    blocking = build_client(settings.model_copy(update={"redis_socket_timeout_ms": blocking_timeout_ms}))
    return StreamStore(client, blocking)


def get_store() -> StreamStore:
    """The process-wide store on the process-wide Redis client (and one for blocking reads)."""
    return _store(get_redis())
