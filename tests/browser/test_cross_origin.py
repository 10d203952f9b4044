"""A web page on another origin than the stack, in headless Chromium: it follows a run's stream on
both transports (the streamed reader behind its Function URL, the long poll on the HTTP API), sees
every chunk once and in order across a cut connection, and appends to a session's ``in`` channel.
The long poll's latency in a browser is printed beside the streamed one (figures, not asserts)."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from devstack.testing.launcher import DevStack
from sluice.auth import tenant_key
from sluice.streams import StreamAddress, StreamStore
from sluice_client import Sluice
from tests.cutting_proxy import CuttingProxy
from tests.stream_load import BurstyWriter

ORG, ENV = "org_browser", "env_browser"
TENANT = tenant_key(ORG, ENV)
TRANSPORTS = ("streamed", "long_poll")
WAIT_MS = 60_000


def reader_base(stack: DevStack, transport: str) -> str:
    return str(stack.info["streamUrl"]) if transport == "streamed" else stack.api_url


def open_page(page: Any, origin: str) -> None:
    page.goto(f"{origin}/stream.html")
    page.wait_for_function("typeof follow === 'function'")


def received(page: Any) -> list[dict[str, Any]]:
    return page.evaluate("window.received")  # type: ignore[no-any-return]


def wait_for_end(page: Any) -> None:
    page.wait_for_function("document.getElementById('status').textContent === 'ended'", timeout=WAIT_MS)


def new_stream(stack: DevStack, key: str) -> tuple[str, str]:
    """A run of the browser's tenant and the token of its ``out`` stream (what an app's backend
    hands its page: never the API key)."""
    with Sluice(stack.api_url, key) as client:
        run_id = client.trigger("agent").id
        return run_id, client.streams.credentials(run_id, "out").token


@pytest.mark.devstack
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_page_on_another_origin_follows_a_stream_chunk_by_chunk(
    devstack: DevStack, page: Any, page_origin: str, transport: str
) -> None:
    key = devstack.create_key(ORG, ENV)
    run_id, token = new_stream(devstack, key)
    open_page(page, page_origin)
    url = f"{reader_base(devstack, transport)}/realtime/v1/streams/{run_id}/out"
    # No Last-Event-ID: the reader starts at the stream's tail. A long poll answers a keep-alive
    # when its window passes with nothing; the next poll must resume from that answer's cursor.
    page.evaluate("u => follow(u)", f"{url}?token={token}")
    page.wait_for_function("window.opens > 0", timeout=WAIT_MS)

    store = StreamStore(devstack.redis)
    writer = BurstyWriter(store, StreamAddress.run(run_id, "out"), TENANT, 500, burst=5, rate=250)
    writer.start()
    # A person sees the first chunks while the rest are still being written.
    page.locator("#chunks li").first.wait_for(timeout=WAIT_MS)
    assert writer.is_alive(), "the writer finished before the page showed a chunk: nothing was live"
    writer.join()
    wait_for_end(page)

    got = received(page)
    assert [e["data"] for e in got] == list(range(500))
    assert page.locator("#chunks li").count() == 500
    # A fetch with Authorization (so a preflight) reads the cursor header the answer exposes.
    last = got[-1]["id"]
    answer = page.evaluate("([u, t]) => cursorOf(u, t)", [f"{url}?lastEventId={last}", token])
    assert answer == {"status": 200, "cursor": last}
    latencies = sorted(e["at"] - writer.stamps[e["data"]] * 1000 for e in got)
    p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]
    print(f"\nbrowser ({transport}): 500 chunks at 250/s, writer-to-page p50 {p50:.0f} ms, p99 {p99:.0f} ms")


@pytest.mark.devstack
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_cut_connection_resumes_with_no_gap_and_no_duplicate(
    devstack: DevStack, page: Any, page_origin: str, transport: str
) -> None:
    key = devstack.create_key(ORG, ENV)
    run_id, token = new_stream(devstack, key)
    upstream = urlsplit(reader_base(devstack, transport))
    proxy = CuttingProxy((upstream.hostname or "127.0.0.1", upstream.port or 80), cuts=3, min_bytes=400)
    store = StreamStore(devstack.redis)
    address = StreamAddress.run(run_id, "out")
    writer = BurstyWriter(store, address, TENANT, 300, burst=5, rate=200)
    try:
        open_page(page, page_origin)
        # From the start of the stream (the writer may be ahead of the page's first request).
        path = f"/realtime/v1/streams/{run_id}/out?token={token}&lastEventId=0-0"
        page.evaluate("u => follow(u)", proxy.url + path)
        writer.start()
        writer.join()
        wait_for_end(page)
    finally:
        proxy.close()
    got = received(page)
    assert proxy.cuts == 3 and page.evaluate("window.errors") >= 1
    assert [e["data"] for e in got] == list(range(300))
    ids = [e["id"] for e in got]
    assert len(set(ids)) == len(ids)


@pytest.mark.devstack
def test_a_page_appends_to_a_sessions_in_channel_once_per_part_id(
    devstack: DevStack, page: Any, page_origin: str
) -> None:
    key = devstack.create_key(ORG, ENV)
    with Sluice(devstack.api_url, key) as client:
        session = client.sessions.create("chat", "chat-agent", external_id=f"browser-{time.time_ns()}")
    minted = httpx.put(
        devstack.url(f"/realtime/v1/sessions/{session.id}/in"), headers={"authorization": f"Bearer {key}"}
    )
    assert minted.status_code == 200, minted.text
    credentials = minted.json()
    open_page(page, page_origin)
    message = {"role": "user", "text": "hello from the browser"}
    append = [credentials["appendUrl"], credentials["token"], message]
    first, retry = (page.evaluate("([u, t, b]) => call('POST', u, t, b, 'msg-1')", append) for _ in range(2))
    assert first["status"] == 200 and retry["status"] == 200, (first, retry)
    assert json.loads(first["text"])["appended"] == 1
    assert json.loads(retry["text"])["deduplicated"] == 1
    with Sluice(devstack.api_url, key) as client:
        records = list(client.sessions.records(session.id, "in"))
    assert [r.data for r in records] == [message]
