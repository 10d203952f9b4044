"""What takes runs off RunQueue locally, standing in for the platform's task workers.

Without a consumer RunQueue only grows, and moto's SendMessage slows with queue depth (5.5 ms at
0 messages, 107 ms at 4000), so a long local session gets slower by the minute. A consumer is a
function stand-in: the SQS poller that feeds the template's functions feeds it too, so it gets
the same batching, deletes and redelivery. ``count`` drains and counts; ``none`` leaves RunQueue
to whoever reads it (the tests that peek at it). The run-lifecycle work replaces ``count`` with
the SDK's worker helper by adding an entry to :data:`CONSUMERS`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from devstack.runtime import Invocation

RUN_QUEUE = "RunQueue"
DEFAULT_CONSUMER = "count"


class CountingConsumer:
    """Acknowledges every run message and remembers how many it took and the latest run ids."""

    name = "run-consumer"

    def __init__(self, recent: int = 20) -> None:
        self._lock = threading.Lock()
        self.consumed = 0
        self.last_at: float | None = None
        self.recent: deque[str] = deque(maxlen=recent)

    def invoke(self, event: dict[str, Any]) -> Invocation:
        records = event.get("Records") or []
        run_ids = []
        for record in records:
            try:
                run_ids.append(str(json.loads(record.get("body", ""))["runId"]))
            except (ValueError, KeyError, TypeError):
                continue  # counted all the same: the message was on RunQueue
        with self._lock:
            self.consumed += len(records)
            self.last_at = time.time()
            self.recent.extend(run_ids)
        return Invocation(result=None)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "consumer": "count",
                "consumed": self.consumed,
                "lastAt": self.last_at,
                "recentRunIds": list(self.recent),
            }


CONSUMERS: dict[str, Callable[[], CountingConsumer] | None] = {
    "count": CountingConsumer,
    "none": None,
}
