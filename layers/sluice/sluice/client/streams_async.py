"""The asyncio flavour of ``sluice.client.streams``: the same writers and reader on
``httpx.AsyncClient``, with a credential cache whose in-flight mints are asyncio Tasks.

    async with AsyncStreams(api_url, api_key) as streams:
        writer = streams.writer(run_id, "ai")
        await writer.append({"delta": "Hi"})
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from sluice.client.credentials import AsyncCredentialCache, Slot, StreamCredentials
from sluice.client.errors import ApiConnectionError, AuthenticationError
from sluice.client.streams import (
    CURSOR_HEADER,
    DEFAULT_REFRESH_MARGIN_S,
    NDJSON,
    StreamMessage,
    action_url,
    append_headers,
    ndjson_chunks,
    new_part_id,
    run_slot,
    stream_path,
    to_message,
)
from sluice.client.transport import RetryOptions, decode, retry_delay


class AsyncStreamWriter:
    def __init__(self, streams: AsyncStreams, slot: Slot) -> None:
        self._streams = streams
        self.slot = slot

    async def append(self, chunk: Any, part_id: str | None = None) -> list[str]:
        body = json.dumps(chunk).encode()
        return await self._send("append", body, "application/json", part_id or new_part_id())

    async def append_many(self, chunks: Iterable[Any], part_id: str | None = None) -> list[str]:
        return await self._send("append", ndjson_chunks(chunks), NDJSON, part_id or new_part_id())

    async def close(self) -> None:
        await self._send("close", b"", "application/json", None)

    async def _send(self, action: str, body: bytes, content_type: str, part_id: str | None) -> list[str]:
        cache = self._streams.cache
        for attempt in (1, 2):
            entry = cache.get(self.slot)
            credentials = await entry
            headers = append_headers(credentials, content_type, part_id)
            try:
                response = await self._streams.request("POST", action_url(credentials, action), body, headers)
            except (AuthenticationError, ApiConnectionError):
                cache.evict_if_same(self.slot, entry)  # see StreamWriter._send
                if attempt == 2:
                    raise
                continue
            return list(decode(response).get("ids", []))
        raise AssertionError("unreachable")  # pragma: no cover


class AsyncStreams:
    """Run streams for asyncio code: ``writer``, ``pipe``, ``read``, ``reset``."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        stream_url: str | None = None,
        retry: RetryOptions | None = None,
        timeout_s: float = 30.0,
        refresh_margin_s: float = DEFAULT_REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.retry = retry or RetryOptions()
        self.stream_url = stream_url.rstrip("/") if stream_url else None
        self.http = http or httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=timeout_s,
            headers={"authorization": f"Bearer {api_key}", "user-agent": "sluice-python"},
        )
        self.cache = AsyncCredentialCache(self._mint, refresh_margin_s, clock)

    async def __aenter__(self) -> AsyncStreams:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self, method: str, url: str, content: bytes | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """A request with the SDK's retry rules (``Transport.request``'s, for asyncio)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.http.request(method, url, content=content, headers=headers)
            except httpx.TransportError as exc:
                await asyncio.sleep(retry_delay(self.retry, attempt, f"{method} {url}", error=exc))
                continue
            if response.is_success:
                return response
            await asyncio.sleep(retry_delay(self.retry, attempt, f"{method} {url}", response))

    async def _mint(self, slot: Slot) -> StreamCredentials:
        _, run_id, key = slot
        return StreamCredentials.from_api(decode(await self.request("PUT", stream_path(run_id, key))))

    async def credentials(self, run_id: str, key: str) -> StreamCredentials:
        return await self.cache.get(run_slot(run_id, key))

    def writer(self, run_id: str, key: str) -> AsyncStreamWriter:
        return AsyncStreamWriter(self, run_slot(run_id, key))

    async def pipe(
        self, run_id: str, key: str, source: AsyncIterable[Any] | Iterable[Any], *, close: bool = False
    ) -> int:
        """Append every chunk of ``source`` (sync or async iterable) in order; how many."""
        writer = self.writer(run_id, key)
        count = 0
        if isinstance(source, AsyncIterable):
            async for chunk in source:
                await writer.append(chunk)
                count += 1
        else:
            for chunk in source:
                await writer.append(chunk)
                count += 1
        if close:
            await writer.close()
        return count

    def reset(self) -> None:
        self.cache.reset()

    async def read(
        self, run_id: str, key: str, last_event_id: str | None = None
    ) -> AsyncIterator[StreamMessage]:
        """As ``Streams.read``: every chunk once, in order, across reconnects."""
        base = self.stream_url or str(self.http.base_url).rstrip("/")
        url = base + stream_path(run_id, key)
        cursor, failures = last_event_id, 0
        while True:
            headers = {"last-event-id": cursor} if cursor else {}
            try:
                async with aconnect_sse(self.http, "GET", url, headers=headers) as source:
                    response = source.response
                    if not response.is_success:
                        await response.aread()
                        failures += 1
                        await asyncio.sleep(retry_delay(self.retry, failures, f"GET {url}", response))
                        continue
                    cursor = cursor or response.headers.get(CURSOR_HEADER)
                    async for sse in source.aiter_sse():
                        if sse.event == "end":
                            return
                        if message := to_message(sse):
                            cursor, failures = message.id, 0
                            yield message
            except httpx.TransportError as exc:
                failures += 1
                await asyncio.sleep(retry_delay(self.retry, failures, f"GET {url}", error=exc))
