"""The thread an event source's poller runs on: started once, polling until asked to stop,
pausing when a poll found nothing and after a failed AWS call.

``devstack.pollers.SqsPoller`` and ``devstack.streams.StreamPoller`` say only what one poll is.
"""

from __future__ import annotations

import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

# After a failed call (the emulator restarting, say): long enough not to spin, short enough that
# a restarted emulator is used again within a second.
RETRY_PAUSE_S = 1.0


class PollingThread(ABC):
    """One poller's thread. ``idle_s``: the pause after a poll that found nothing, doubling while
    polls find nothing up to ``idle_max_s``; ``join_s``: how long :meth:`stop` waits for the poll
    in progress."""

    idle_s = 0.0
    idle_max_s = 0.0
    join_s = 5.0

    def __init__(self, kind: str, label: str) -> None:
        self._kind = kind
        self._label = label
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"devstack-{kind}-{label.replace('/', '-')}", daemon=True
        )

    @abstractmethod
    def poll_once(self) -> bool:
        """One poll; True when it found work, so the next one follows at once."""

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.join_s)

    def _log(self, text: str) -> None:
        sys.stderr.write(f"devstack {self._kind} {self._label}: {text}\n")

    def _run(self) -> None:
        idle = self.idle_s
        while not self._stop.is_set():
            try:
                busy = self.poll_once()
            except (BotoCoreError, ClientError) as exc:
                if not self._stop.is_set():
                    self._log(f"poll failed, retrying in {RETRY_PAUSE_S:g}s: {exc}")
                    self._stop.wait(RETRY_PAUSE_S)
                continue
            if busy:
                idle = self.idle_s
            else:
                self._stop.wait(idle)
                idle = min(idle * 2, max(self.idle_s, self.idle_max_s))


def stop_all(pollers: Sequence[PollingThread]) -> None:
    """Stop pollers together: each may be in a long poll, so waiting for them one by one adds up."""
    for poller in pollers:
        poller.request_stop()
    for poller in pollers:
        poller.stop()
