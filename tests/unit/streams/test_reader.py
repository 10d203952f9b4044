"""The reader core: a concrete cursor from the first moment, never ``$`` (seed 004)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from redis.connection import Connection
from redis.exceptions import TimeoutError as RedisTimeoutError

from sluice import streams
from sluice.errors import BadRequest
from sluice.redis import RedisClient
from sluice.streams import (
    RecordsAnswer,
    Start,
    StreamAddress,
    StreamEvent,
    StreamReader,
    StreamStore,
    get_store,
    parse_start,
)
from sluice.streams.keys import StreamKeys

ADDRESS = StreamAddress.run("run_reader", "out")


@pytest.fixture
def store(redis_client: Any) -> StreamStore:
    return get_store()


def add(store: StreamStore, *values: Any) -> list[str]:
    return store.append(ADDRESS, "env", [("", json.dumps(v)) for v in values]).ids


def drain(reader: StreamReader, polls: int = 3) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    for _ in range(polls):
        events.extend(reader.poll(block_ms=10))
    return events


def test_an_entry_added_exactly_when_the_first_blocking_read_returns_empty_is_delivered(
    store: StreamStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seed 004's race, made deterministic: the writer's XADD lands in the gap between an empty
    blocking read and the next one. A cursor of ``$`` would be re-resolved past it."""
    reader = StreamReader(store, ADDRESS)
    real_read = store.read_after
    calls = 0

    def read_then_write_in_the_gap(*args: Any, **kwargs: Any) -> list[StreamEvent]:
        nonlocal calls
        calls += 1
        events = real_read(*args, **kwargs)
        if calls == 1:
            assert events == []
            add(store, "in-the-gap")
        return events

    monkeypatch.setattr(store, "read_after", read_then_write_in_the_gap)
    assert reader.poll(block_ms=50) == []
    assert [e.data for e in reader.poll(block_ms=50)] == ["in-the-gap"]


def test_an_entry_added_between_the_snapshot_and_the_first_byte_is_delivered(store: StreamStore) -> None:
    """From the tail (``from=latest``) the reader snapshots it when it is made (before the
    response sends anything); an entry added before its first read is after the snapshot, so it
    is delivered."""
    add(store, "before")
    reader = StreamReader(store, ADDRESS, Start(latest=True))
    add(store, "after-snapshot")
    assert [e.data for e in drain(reader)] == ["after-snapshot"]


def test_without_a_cursor_a_read_starts_at_the_beginning(store: StreamStore) -> None:
    """As the reference platform and its SDK read: chunks written before the read are delivered."""
    add(store, "a", "b")
    reader = StreamReader(store, ADDRESS)
    assert reader.start_cursor == "0-0"
    add(store, "c")
    assert [e.data for e in drain(reader)] == ["a", "b", "c"]


def test_a_chunk_count_skips_that_many_chunks(store: StreamStore) -> None:
    """The trigger.dev SDK's ``startIndex: n`` (1-based) sends ``Last-Event-ID: n - 1``."""
    add(store, *range(5))
    assert [e.data for e in drain(StreamReader(store, ADDRESS, Start(skip=2)))] == [2, 3, 4]
    # More than the stream holds: the skip goes on into chunks written later.
    reader = StreamReader(store, ADDRESS, Start(skip=6))
    assert drain(reader) == []
    add(store, 5, 6)
    assert [e.data for e in drain(reader)] == [6]


@pytest.mark.parametrize(
    ("last_event_id", "start", "expected"),
    [
        (None, None, Start()),
        ("", "latest", Start(latest=True)),
        (None, "LATEST", Start(latest=True)),
        ("7", None, Start(skip=7)),
        ("7", "latest", Start(skip=7)),  # an explicit position wins, as in the SDK
        ("1700000000000-3", "latest", "1700000000000-3"),
    ],
)
def test_parse_start(last_event_id: str | None, start: str | None, expected: str | Start) -> None:
    assert parse_start(last_event_id, start) == expected


@pytest.mark.parametrize("bad", ["-1", "1.5", "x", "1" * 16, "1-2-3"])
def test_parse_start_refuses_other_cursors(bad: str) -> None:
    with pytest.raises(BadRequest):
        parse_start(bad, None)


def test_an_empty_stream_snapshots_0_0_so_the_first_entry_is_delivered(store: StreamStore) -> None:
    reader = StreamReader(store, ADDRESS)
    assert reader.cursor == "0-0"
    add(store, "first")
    assert [e.data for e in drain(reader)] == ["first"]


def test_the_reader_never_reads_dollar(store: StreamStore, monkeypatch: pytest.MonkeyPatch) -> None:
    cursors: list[str] = []
    real_read = store.read_after

    def spy(address: StreamAddress, last_id: str, **kwargs: Any) -> list[StreamEvent]:
        cursors.append(last_id)
        return real_read(address, last_id, **kwargs)

    monkeypatch.setattr(store, "read_after", spy)
    reader = StreamReader(store, ADDRESS)
    for i in range(5):
        reader.poll(block_ms=5)
        add(store, i)
    assert "$" not in cursors
    assert len(cursors) == 5


def test_reading_stops_at_the_end_entry(store: StreamStore) -> None:
    reader = StreamReader(store, ADDRESS)
    add(store, 1)
    store.close(ADDRESS, "env")
    events = drain(reader)
    assert [(e.data, e.end) for e in events] == [(1, False), (None, True)]
    assert reader.ended
    assert reader.poll(block_ms=5) == []


def test_a_blocking_read_wakes_for_a_concurrent_writer(store: StreamStore) -> None:
    reader = StreamReader(store, ADDRESS)
    timer = threading.Timer(0.05, add, args=(store, "late"))
    timer.start()
    try:
        events = reader.poll(block_ms=2000)
    finally:
        timer.cancel()
    assert [e.data for e in events] == ["late"]


@pytest.fixture
def cluster_store(redis_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[StreamStore]:
    from sluice.config import reload_settings
    from sluice.redis import reset_redis

    redis_cluster.flushall()
    monkeypatch.setenv("SLUICE_REDIS_URL", redis_cluster.url)
    monkeypatch.setenv("SLUICE_REDIS_CLUSTER", "true")
    reload_settings()
    reset_redis()
    yield get_store()
    reset_redis()


@pytest.mark.cluster
def test_append_close_and_read_run_on_a_three_node_cluster(cluster_store: StreamStore) -> None:
    client: RedisClient = cluster_store.client
    slots = {client.keyslot(key) for key in StreamKeys(ADDRESS).all()}  # type: ignore[union-attr]
    assert len(slots) == 1
    reader = StreamReader(cluster_store, ADDRESS)
    chunks = [(f"p{i}", json.dumps(i)) for i in range(20)]
    cluster_store.append(ADDRESS, "env", chunks)
    assert cluster_store.append(ADDRESS, "env", chunks).deduplicated == 20
    cluster_store.close(ADDRESS, "env")
    events = drain(reader)
    assert [e.data for e in events[:-1]] == list(range(20))
    assert events[-1].end
    # Streams of many owners spread over the nodes and all work.
    for n in range(30):
        address = StreamAddress.run(f"run_{n}", "out")
        cluster_store.append(address, "env", [("", "1")])
        assert cluster_store.tail(address) is not None


# --- the drained read: what is there now, in pages ------------------------------------------------


def pages(store: StreamStore) -> list[RecordsAnswer]:
    """Every page of a drained read from the start, each asked after the last id of the one before."""
    found = [streams.drain(StreamReader(store, ADDRESS, "0-0"))]
    while found[-1].hasMore:
        found.append(streams.drain(StreamReader(store, ADDRESS, found[-1].records[-1].id)))
    return found


def test_a_drained_read_never_blocks(store: StreamStore, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[int | None] = []
    real_read = store.read_after

    def spy(address: StreamAddress, last_id: str, **kwargs: Any) -> list[StreamEvent]:
        waits.append(kwargs["block_ms"])
        return real_read(address, last_id, **kwargs)

    monkeypatch.setattr(store, "read_after", spy)
    assert streams.drain(StreamReader(store, ADDRESS, "0-0")).records == []
    add(store, 1, 2)
    assert [r.data for r in streams.drain(StreamReader(store, ADDRESS, "0-0")).records] == [1, 2]
    assert waits and set(waits) == {None}


def test_drained_pages_hold_at_most_records_max(store: StreamStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sluice.streams.reader.RECORDS_MAX", 3)
    add(store, *range(7))
    got = pages(store)
    assert [len(p.records) for p in got] == [3, 3, 1]
    assert [p.hasMore for p in got] == [True, True, False]
    assert [r.data for p in got for r in p.records] == list(range(7))


def test_drained_pages_hold_at_most_records_max_bytes_but_at_least_one_record(
    store: StreamStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sluice.streams.reader.RECORDS_MAX_BYTES", 25)
    add(store, "a" * 10, "b" * 10, "c" * 10, "d" * 40)  # 12, 12, 12 and 42 bytes as JSON
    got = pages(store)
    assert [[r.data[0] for r in p.records] for p in got] == [["a", "b"], ["c"], ["d"]]


def test_a_drained_read_says_closed_only_when_its_page_reaches_the_end(
    store: StreamStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sluice.streams.reader.RECORDS_MAX", 2)
    add(store, 1, 2, 3)
    store.close(ADDRESS, "env")
    got = pages(store)
    assert [(len(p.records), p.closed, p.hasMore) for p in got] == [(2, False, True), (1, True, False)]


def test_an_append_whose_reply_timed_out_is_retried_by_the_client_without_appending_twice(
    store: StreamStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py retries a call whose reply timed out, though Redis ran it: the retry must not
    append the chunks again (a CI run once read ten chunks twice this way)."""
    address = StreamAddress.run("run_timed_out_reply", "out")
    real_read = Connection.read_response
    lost: list[bool] = []

    def lose_the_first_reply(self: Connection, *args: Any, **kwargs: Any) -> Any:
        reply = real_read(self, *args, **kwargs)
        if not lost and isinstance(reply, list) and reply and reply[0] == "ok":
            lost.append(True)
            raise RedisTimeoutError("Timeout reading from socket")
        return reply

    monkeypatch.setattr(Connection, "read_response", lose_the_first_reply)
    result = store.append(address, "env_a", [("", json.dumps(n)) for n in range(3)])
    assert lost == [True]
    monkeypatch.setattr(Connection, "read_response", real_read)
    entries = store.client.xrange(StreamKeys(address).data)
    assert [json.loads(fields["d"]) for _, fields in entries] == [0, 1, 2]
    assert result.ids == [entry_id for entry_id, _ in entries]
