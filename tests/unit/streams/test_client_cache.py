"""The SDK's per-slot credential cache: the reference's cache cases (spec 3.5) and beyond."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest

from sluice_client import AsyncStreams, Sluice
from sluice_client.credentials import AsyncCredentialCache, CredentialCache, Slot, StreamCredentials
from sluice_client.errors import AuthenticationError
from sluice_client.transport import RetryOptions, Transport

NOW = 1_000_000.0


def creds(slot: Slot, n: int, expires_at: float = NOW + 86_400) -> StreamCredentials:
    _, owner, key = slot
    base = f"http://api/realtime/v1/streams/{owner}/{key}"
    return StreamCredentials(f"runs/{owner}/{key}", f"{base}/append", base, f"tok-{n}", expires_at)


class Minter:
    def __init__(self, fail_first: int = 0, expires_in: float = 86_400, delay_s: float = 0) -> None:
        self.calls: list[Slot] = []
        self.fail_first = fail_first
        self.expires_in = expires_in
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def __call__(self, slot: Slot) -> StreamCredentials:
        with self.lock:
            self.calls.append(slot)
            n = len(self.calls)
        time.sleep(self.delay_s)
        if n <= self.fail_first:
            raise ConnectionError("mint failed")
        return creds(slot, n, NOW + self.expires_in)


RUN_A = ("run", "run_a", "out")


def cache(minter: Minter, margin: float = 300) -> CredentialCache:
    return CredentialCache(minter, refresh_margin_s=margin, clock=lambda: NOW)


def test_dedupes_repeated_calls_for_the_same_run_and_key() -> None:
    minter = Minter()
    c = cache(minter)
    first = c.get(RUN_A)
    assert c.get(RUN_A) is first
    assert first.result().token == "tok-1"
    assert len(minter.calls) == 1


def test_a_separate_mint_for_each_key_of_a_run_and_each_run_of_a_key() -> None:
    minter = Minter()
    c = cache(minter)
    for slot in (RUN_A, ("run", "run_a", "log"), ("run", "run_b", "out"), ("session", "sess_1", "out")):
        c.get(slot)
        c.get(slot)
    assert len(minter.calls) == 4


def test_a_failed_mint_is_evicted_so_the_next_call_mints_again() -> None:
    minter = Minter(fail_first=1)
    c = cache(minter)
    with pytest.raises(ConnectionError):
        c.get(RUN_A).result()
    assert c.peek(RUN_A) is None
    assert c.get(RUN_A).result().token == "tok-2"


def test_reset_clears_every_slot() -> None:
    minter = Minter()
    c = cache(minter)
    c.get(RUN_A)
    c.reset()
    c.get(RUN_A)
    assert len(minter.calls) == 2


def test_evict_if_same_clears_the_matching_entry_so_the_next_call_mints() -> None:
    minter = Minter()
    c = cache(minter)
    entry = c.get(RUN_A)
    assert c.evict_if_same(RUN_A, entry)
    assert c.get(RUN_A) is not entry
    assert len(minter.calls) == 2


def test_evict_if_same_is_a_no_op_when_the_slot_holds_another_entry() -> None:
    minter = Minter()
    c = cache(minter)
    stale = c.get(RUN_A)
    c.evict_if_same(RUN_A, stale)
    fresh = c.get(RUN_A)  # a concurrent writer already minted afresh
    assert not c.evict_if_same(RUN_A, stale)
    assert c.get(RUN_A) is fresh


def test_credentials_near_expiry_are_minted_afresh_before_use() -> None:
    minter = Minter(expires_in=200)  # inside the 300 s margin
    c = cache(minter)
    c.get(RUN_A).result()
    c.get(RUN_A).result()
    assert len(minter.calls) == 2
    roomy = cache(Minter(expires_in=301))
    assert roomy.get(RUN_A) is roomy.get(RUN_A)


def test_32_threads_writing_one_slot_share_one_mint() -> None:
    minter = Minter(delay_s=0.05)
    c = cache(minter)
    barrier = threading.Barrier(32)
    tokens: list[str] = []

    def write() -> None:
        barrier.wait()
        tokens.append(c.get(RUN_A).result().token)

    threads = [threading.Thread(target=write) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(minter.calls) == 1
    assert tokens == ["tok-1"] * 32


def test_32_asyncio_tasks_writing_one_slot_share_one_mint() -> None:
    calls: list[Slot] = []

    async def mint(slot: Slot) -> StreamCredentials:
        calls.append(slot)
        await asyncio.sleep(0.05)
        return creds(slot, len(calls))

    async def main() -> list[str]:
        c = AsyncCredentialCache(mint, clock=lambda: NOW)
        results = await asyncio.gather(*(c.get(RUN_A) for _ in range(32)))
        return [r.token for r in results]

    assert asyncio.run(main()) == ["tok-1"] * 32
    assert len(calls) == 1


def test_an_async_failed_mint_is_never_cached() -> None:
    calls = 0

    async def mint(slot: Slot) -> StreamCredentials:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("down")
        return creds(slot, calls)

    async def main() -> str:
        c = AsyncCredentialCache(mint, clock=lambda: NOW)
        with pytest.raises(ConnectionError):
            await c.get(RUN_A)
        await asyncio.sleep(0)  # the done callback runs
        return (await c.get(RUN_A)).token

    assert asyncio.run(main()) == "tok-2"


class FakeApi:
    """The streams routes as an httpx MockTransport: tokens, 401 for revoked ones, part-id dedup."""

    def __init__(self) -> None:
        self.mints = 0
        self.revoked: set[str] = set()
        self.part_ids: list[str] = []
        self.stored: dict[str, list[Any]] = {}
        self.fail_next_appends = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "PUT":
            self.mints += 1
            base = f"http://api{path}"
            return httpx.Response(
                200,
                json={
                    "streamId": path,
                    "appendUrl": f"{base}/append",
                    "readUrl": base,
                    "token": f"tok-{self.mints}",
                    "expiresAt": time.time() + 86_400,
                },
            )
        token = request.headers["authorization"].removeprefix("Bearer ")
        if token in self.revoked:
            return httpx.Response(401, json={"error": "expired", "code": "stream_token_expired"})
        if self.fail_next_appends:
            self.fail_next_appends -= 1
            return httpx.Response(503, json={"error": "down", "code": "service_unavailable"})
        part = request.headers.get("x-part-id", "")
        self.part_ids.append(part)
        if part and part in self.stored:
            return httpx.Response(200, json={"ids": ["dup"], "appended": 0, "deduplicated": 1})
        self.stored[part] = json.loads(request.content) if request.content else None
        return httpx.Response(200, json={"ids": [f"{len(self.stored)}-0"], "appended": 1, "deduplicated": 0})


def client_for(api: FakeApi) -> Sluice:
    http = httpx.Client(
        base_url="http://api",
        transport=httpx.MockTransport(api.handle),
        headers={"authorization": "Bearer sk_dev_x"},
    )
    retry = RetryOptions(max_attempts=3, min_delay_s=0, randomize=False)
    return Sluice(
        "http://api",
        "sk_dev_x",
        transport=Transport("http://api", "sk_dev_x", http=http, retry=retry, sleep=lambda _: None),
    )


def test_a_hot_loop_writer_mints_once() -> None:
    api = FakeApi()
    client = client_for(api)
    writer = client.streams.writer("run_a", "out")
    for i in range(200):
        writer.append({"i": i})
    client.streams.pipe("run_a", "out", range(100))
    assert api.mints == 1


def test_a_writer_401_evicts_its_slot_and_the_next_write_mints_afresh() -> None:
    api = FakeApi()
    client = client_for(api)
    writer = client.streams.writer("run_a", "out")
    writer.append("first")
    api.revoked.add("tok-1")
    writer.append("second")
    assert api.mints == 2
    assert client.streams.credentials("run_a", "out").token == "tok-2"
    api.revoked.add("tok-2")
    api.revoked.add("tok-3")
    with pytest.raises(AuthenticationError):
        writer.append("refused twice")
    assert client.streams.cache.peek(("run", "run_a", "out")) is None


def test_the_sdks_retries_reuse_the_part_id_so_a_chunk_lands_once() -> None:
    api = FakeApi()
    client = client_for(api)
    api.fail_next_appends = 2
    client.streams.writer("run_a", "out").append({"n": 1})
    assert len(api.part_ids) == 1  # the two 503s never reached the store
    part = api.part_ids[0]
    client.streams.writer("run_a", "out").append({"n": 1}, part_id=part)
    assert list(api.stored) == [part]


def test_the_async_writer_mints_once_for_32_concurrent_tasks() -> None:
    api = FakeApi()

    async def main() -> None:
        http = httpx.AsyncClient(base_url="http://api", transport=httpx.MockTransport(api.handle))
        async with AsyncStreams("http://api", "sk_dev_x", http=http) as streams:
            writer = streams.writer("run_a", "out")
            await asyncio.gather(*(writer.append(i) for i in range(32)))
            api.revoked.add("tok-1")
            await writer.append("after revoke")

    asyncio.run(main())
    assert api.mints == 2
    assert len(api.stored) == 33


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_refused_mint_is_raised_as_it_is_and_not_tried_again_as_a_write(flavour: str) -> None:
    """A write retries once with fresh credentials after a 401 on the write, never after a 401 on
    the mint itself (the API key is wrong: a second mint would be refused the same way)."""
    mints = 0

    def refuse_the_key(request: httpx.Request) -> httpx.Response:
        nonlocal mints
        mints += 1
        return httpx.Response(401, json={"error": "Invalid API key", "code": "unauthorized"})

    if flavour == "sync":
        http = httpx.Client(base_url="http://api", transport=httpx.MockTransport(refuse_the_key))
        client = Sluice("http://api", "k", transport=Transport("http://api", "k", http=http))
        with pytest.raises(AuthenticationError):
            client.streams.writer("run_a", "out").append(1)
    else:

        async def main() -> None:
            http = httpx.AsyncClient(base_url="http://api", transport=httpx.MockTransport(refuse_the_key))
            async with AsyncStreams("http://api", "k", http=http) as streams:
                await streams.writer("run_a", "out").append(1)

        with pytest.raises(AuthenticationError):
            asyncio.run(main())
    assert mints == 1
