"""Realtime streams end to end on devstack: the SDK writes over the HTTP API, and readers follow
on both transports (the streamed reader at ``streamUrl``, the long poll on the HTTP API)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from devstack.testing.launcher import DevStack
from sluice.auth import tenant_key
from sluice.streams import StreamAddress, StreamStore
from sluice_client import RetryOptions, Sluice
from tests.cutting_proxy import CuttingProxy
from tests.stream_load import BurstyWriter

ORG, ENV = "org_streams_e2e", "env_streams_e2e"
FAST_RECONNECTS = RetryOptions(max_attempts=10, min_delay_s=0.005, randomize=False)


def base_url(stack: DevStack, transport: str) -> str:
    return str(stack.info["streamUrl"]) if transport == "streamed" else stack.api_url


@pytest.mark.devstack
@pytest.mark.parametrize("transport", ["streamed", "long_poll"])
def test_sdk_writes_and_reads_a_stream(devstack: DevStack, transport: str) -> None:
    key = devstack.create_key(ORG, ENV)
    stream_url = str(devstack.info["streamUrl"]) if transport == "streamed" else None
    with Sluice(devstack.api_url, key, stream_url=stream_url) as client:
        run_id = client.trigger("agent", {"prompt": "hi"}).id
        credentials = client.streams.credentials(run_id, "ai")
        assert credentials.read_url.startswith(str(devstack.info["streamUrl"]))
        writer = client.streams.writer(run_id, "ai")
        writer.append({"delta": "Hel"})
        writer.append_many([{"delta": "lo"}, {"delta": "!"}])
        client.streams.pipe(run_id, "ai", ({"n": i} for i in range(5)), close=True)
        messages = list(client.streams.read(run_id, "ai", last_event_id="0-0"))
        assert client.streams.cache.mints == 1
    assert [m.data for m in messages] == [
        {"delta": "Hel"},
        {"delta": "lo"},
        {"delta": "!"},
        *({"n": i} for i in range(5)),
    ]
    assert len({m.id for m in messages}) == len(messages)


@pytest.mark.devstack
@pytest.mark.parametrize("transport", ["streamed", "long_poll"])
def test_a_1khz_writer_reaches_a_reader_cut_off_50_times_exactly_once_in_order(
    devstack: DevStack, transport: str
) -> None:
    key = devstack.create_key(ORG, ENV)
    upstream = urlsplit(base_url(devstack, transport))
    proxy = CuttingProxy((upstream.hostname or "127.0.0.1", upstream.port or 80), cuts=50)
    via_proxy = proxy.url + upstream.path.rstrip("/")
    events = 3000
    with Sluice(devstack.api_url, key, stream_url=via_proxy) as client:
        run_id = client.trigger("agent").id
        client.streams.credentials(run_id, "out")  # binds the stream to the tenant
        store = StreamStore(devstack.redis)
        writer = BurstyWriter(store, StreamAddress.run(run_id, "out"), tenant_key(ORG, ENV), events)
        writer.start()
        got = [m.data for m in client.streams.read(run_id, "out", last_event_id="0-0", retry=FAST_RECONNECTS)]
    writer.join()
    proxy.close()
    assert proxy.cuts == 50
    assert got == list(range(events))
