"""Under a bursty 1 kHz writer, readers that are cut off again and again: Sluice's reader gets
every event exactly once, in order; a reader that starts again from ``$`` loses events."""

from __future__ import annotations

from typing import Any

from sluice.streams import StreamAddress, get_store
from sluice_client import RetryOptions, Sluice
from tests.cutting_proxy import CuttingProxy
from tests.stream_load import BurstyWriter, dollar_against_resuming
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
    writer = BurstyWriter(get_store(), StreamAddress.run(run_id, "out"), api.tenant.env.tenant, EVENTS)
    fast_reconnects = RetryOptions(max_attempts=10, min_delay_s=0.005, randomize=False)
    with Sluice("http://127.0.0.1:9", api.tenant.api_key, stream_url=proxy.url) as client:
        writer.start()
        got = [m.data for m in client.streams.read(run_id, "out", last_event_id="0-0", retry=fast_reconnects)]
    writer.join()
    proxy.close()
    assert proxy.cuts == DISCONNECTS
    assert got == list(range(EVENTS))


def test_a_reader_that_rereads_dollar_loses_events_where_sluices_reader_loses_none(redis_client: Any) -> None:
    # The writer outlasts the $ reader's 50 connections and gaps (~2.5 s), so that it reconnects
    # while events still come.
    lost_dollar, lost_sluice = dollar_against_resuming(get_store(), EVENTS, DISCONNECTS)
    assert lost_sluice == 0
    assert lost_dollar > 0, "a reader starting from $ on every connection should have missed events"
