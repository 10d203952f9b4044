"""A bursty 1 kHz stream writer for the reader tests and the benchmark."""

from __future__ import annotations

import json
import threading
import time

from sluice.streams import StreamAddress, StreamStore

BURST = 10  # entries per burst; a burst every BURST ms makes 1000 entries a second


class BurstyWriter(threading.Thread):
    """Appends ``0..count-1`` in bursts at about 1 kHz, then closes the stream. ``stamps`` maps each
    value to the wall-clock time its append returned (for latency figures)."""

    def __init__(
        self, store: StreamStore, address: StreamAddress, env_id: str, count: int, close: bool = True
    ) -> None:
        super().__init__(daemon=True)
        self.store, self.address, self.env_id, self.count, self.close = store, address, env_id, count, close
        self.stamps: dict[int, float] = {}

    def run(self) -> None:
        start = time.monotonic()
        for first in range(0, self.count, BURST):
            values = range(first, min(first + BURST, self.count))
            self.store.append(self.address, self.env_id, [("", json.dumps(v)) for v in values])
            now = time.time()
            self.stamps.update(dict.fromkeys(values, now))
            pause = start + (first + BURST) / 1000 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        if self.close:
            self.store.close(self.address, self.env_id)
