"""Child services (redis-server, moto) watched and restarted when they die.

A stack whose Redis or moto died used to keep saying it was up while every request failed. Now
the stack's main loop calls :meth:`Child.check` twice a second: a dead child is started again on
the same port (so every URL the functions hold stays valid), ``after_restart`` puts back what
the child held (moto's tables, queues, buckets, secrets and API keys) and says what it put back,
and :meth:`Child.health` reports all of it for ``devstack status``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devstack.services import Service

# A child that will not come back is retried, but not in a tight loop.
RETRY_AFTER_S = 2.0


@dataclass
class Child:
    what: str
    service: Service
    start: Callable[[], Service]
    after_restart: Callable[[], dict[str, Any]] | None = None
    log: Callable[[str], None] = print
    restarts: int = 0
    state: str = "up"
    last_error: str | None = None
    restored: dict[str, Any] | None = None
    _retry_at: float = field(default=0.0, repr=False)

    def stop(self) -> None:
        self.service.stop()

    @property
    def pid(self) -> int | None:
        return self.service.process.pid if self.service.process else None

    def alive(self) -> bool:
        return self.service.process is None or self.service.process.poll() is None

    def check(self) -> None:
        """Restart the child if it died; never raises (the stack keeps serving what it can)."""
        if self.state == "up" and self.alive():
            return
        if self.state == "up":
            code = self.service.process.returncode if self.service.process else None
            self.log(f"{self.what} (pid {self.pid}) exited with status {code}: restarting")
            self.state = "restarting"
            self.service.stop()  # its temporary directory
        if time.monotonic() < self._retry_at:
            return
        try:
            if not self.alive():
                self.service = self.start()
            if self.after_restart is not None:
                self.restored = self.after_restart()
        except Exception as exc:  # report and retry later; the stack must not die of it
            self.state = "down"
            self.last_error = repr(exc)
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            self.log(f"{self.what} restart failed, retrying in {RETRY_AFTER_S:g}s: {exc!r}")
            return
        self.restarts += 1
        self.state = "up"
        self.last_error = None
        put_back = f", put back {self.restored}" if self.restored else ""
        self.log(f"{self.what} restarted (pid {self.pid}, {self.service.url}){put_back}")

    def health(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.pid,
            "url": self.service.url,
            "restarts": self.restarts,
            "lastError": self.last_error,
            "restored": self.restored,
        }
