"""A bursty 1 kHz stream writer, and two readers that reconnect under it (one from ``$``, one
resuming), for the reader tests and bench/streams.py."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from sluice.streams import StreamAddress, StreamReader, StreamStore
from sluice.streams.keys import StreamKeys

BURST = 10  # entries per burst; a burst every BURST ms makes 1000 entries a second
# Longer than the pause between two bursts, so that a burst is written while a reader is away on
# every reconnection. At 5 ms a reader in step with the writer (a quiet machine) reconnected
# between two bursts each time, and a reader from ``$`` lost nothing to show.
RECONNECT_GAP_S = 2 * BURST / 1000


class BurstyWriter(threading.Thread):
    """Appends ``0..count-1`` in bursts of ``burst`` at ``rate`` entries/s, then closes the stream.
    ``stamps`` maps each value to the wall-clock time its append returned (for latency figures)."""

    def __init__(
        self,
        store: StreamStore,
        address: StreamAddress,
        tenant: str,
        count: int,
        *,
        close: bool = True,
        rate: float | None = 1000.0,
        burst: int = BURST,
    ) -> None:
        super().__init__(daemon=True)
        self.store, self.address, self.tenant, self.count, self.close = store, address, tenant, count, close
        self.rate, self.burst = rate, burst  # rate None: as fast as the store takes it
        self.stamps: dict[int, float] = {}

    def run(self) -> None:
        start = time.monotonic()
        for first in range(0, self.count, self.burst):
            values = range(first, min(first + self.burst, self.count))
            self.store.append(self.address, self.tenant, [("", json.dumps(v)) for v in values])
            now = time.time()
            self.stamps.update(dict.fromkeys(values, now))
            if self.rate is None:
                continue
            pause = start + (first + self.burst) / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        if self.close:
            self.store.close(self.address, self.tenant)


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


def dollar_against_resuming(
    store: StreamStore, events: int, disconnects: int, tenant: str = "org/env"
) -> tuple[int, int]:
    """Events lost by a ``$`` reader and by Sluice's resuming reader, each on its own stream under
    its own 1 kHz bursty writer, with the same cut-off connections and reconnect gaps."""
    dollar, resumed = StreamAddress.run("run_dollar", "out"), StreamAddress.run("run_resume", "out")
    writers = [BurstyWriter(store, address, tenant, events) for address in (dollar, resumed)]
    for writer in writers:
        writer.start()
    naive = naive_dollar_reader(store, dollar, disconnects, gap_s=RECONNECT_GAP_S)
    sluice = resuming_reader(store, resumed, disconnects, gap_s=RECONNECT_GAP_S)
    for writer in writers:
        writer.join()
    assert sluice == sorted(set(sluice)), "the resuming reader repeated or reordered an event"
    return events - len(set(naive)), events - len(sluice)
