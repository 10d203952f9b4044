"""Under a bursty 1 kHz writer, readers that are cut off again and again: Sluice's reader gets
every event exactly once, in order; a reader that starts again from ``$`` loses events."""

from __future__ import annotations

import time
from typing import Any

from sluice.client import RetryOptions, Sluice
from sluice.streams import StreamAddress, StreamReader, get_store
from sluice.streams.keys import StreamKeys
from tests.cutting_proxy import CuttingProxy
from tests.stream_load import BurstyWriter
from tests.unit.streams.conftest import StreamsApi, new_run

EVENTS = 3000
DISCONNECTS = 50


def test_the_streamed_reader_gets_every_event_once_in_order_through_50_forced_disconnects(
    api: StreamsApi, stream_app_url: str
) -> None:
    run_id = new_run(api.tenant)
    api.token(run_id)
    host, port = stream_app_url.removeprefix("http://").split(":")
    proxy = CuttingProxy((host, int(port)), cuts=DISCONNECTS)
    writer = BurstyWriter(get_store(), StreamAddress.run(run_id, "out"), api.tenant.env.env_id, EVENTS)
    fast_reconnects = RetryOptions(max_attempts=10, min_delay_s=0.005, randomize=False)
    with Sluice("http://127.0.0.1:9", api.tenant.api_key, stream_url=proxy.url) as client:
        writer.start()
        got = [m.data for m in client.streams.read(run_id, "out", last_event_id="0-0", retry=fast_reconnects)]
    writer.join()
    proxy.close()
    assert proxy.cuts == DISCONNECTS
    assert got == list(range(EVENTS))


def naive_dollar_reader(store: Any, address: StreamAddress, disconnects: int, gap_s: float) -> list[Any]:
    """The seed's bug as a client sees it: every (re)connection reads from ``$``. Same
    connections and gaps as ``resuming_reader``; the last connection reads until the end."""
    key = StreamKeys(address).data
    got: list[Any] = []
    for connection in range(disconnects + 1):
        last_id, polls, idle = "$", 0, 0
        while polls < 3 or (connection == disconnects and idle < 20):
            reply = store.blocking.xread({key: last_id}, count=100, block=50)
            polls += 1
            idle = 0 if reply else idle + 1
            for entry_id, fields in reply[0][1] if reply else []:
                last_id = entry_id
                if "e" in fields:
                    return got
                got.append(int(fields["d"]))
        time.sleep(gap_s)  # reconnecting
    return got


def resuming_reader(store: Any, address: StreamAddress, disconnects: int, gap_s: float) -> list[Any]:
    """Sluice's reader with the same connections and gaps, resuming from the last id."""
    got: list[Any] = []
    cursor = "0-0"
    for connection in range(disconnects + 1):
        reader = StreamReader(store, address, cursor)
        polls = 0
        # A short connection (a few reads, then cut off); the last one reads to the end.
        while not reader.ended and (polls < 3 or connection == disconnects):
            got.extend(e.data for e in reader.poll(block_ms=50) if not e.end)
            polls += 1
        if reader.ended:
            break
        cursor = reader.cursor
        time.sleep(gap_s)
    return got


def test_a_reader_that_rereads_dollar_loses_events_where_sluices_reader_loses_none(redis_client: Any) -> None:
    store = get_store()
    dollar, resumed = StreamAddress.run("run_dollar", "out"), StreamAddress.run("run_resume", "out")
    writers = [BurstyWriter(store, address, "env", 2000) for address in (dollar, resumed)]
    for writer in writers:
        writer.start()
    naive = naive_dollar_reader(store, dollar, DISCONNECTS, gap_s=0.005)
    sluice = resuming_reader(store, resumed, DISCONNECTS, gap_s=0.005)
    for writer in writers:
        writer.join()
    assert sluice == list(range(2000))
    lost = len(set(range(2000)) - set(naive))
    assert lost > 0, "a reader starting from $ on every connection should have missed events"
