"""The per-slot cache of stream write credentials (seed 000, reference platform section 3.2).

A slot is ``("run", run_id, key)`` for a run's stream and ``("session", session_id, io)`` for a
session channel. The cache holds the *in-flight* mint (a Future, or an asyncio Task), so
concurrent first writers share one PUT. A mint that fails is never kept; a writer that fails
with the credentials evicts its slot only if the slot still holds the entry it used (a
concurrent caller may already have put a fresh one there). Beyond the reference, credentials
within ``refresh_margin_s`` of expiry are minted afresh before use.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

Slot = tuple[str, str, str]


@dataclass(frozen=True)
class StreamCredentials:
    stream_id: str
    append_url: str
    read_url: str
    token: str
    expires_at: float

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> StreamCredentials:
        return cls(
            body["streamId"], body["appendUrl"], body["readUrl"], body["token"], float(body["expiresAt"])
        )


class _Entry(Protocol):
    def done(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def exception(self) -> BaseException | None: ...
    def result(self) -> StreamCredentials: ...


E = TypeVar("E", bound=_Entry)


class _SlotCache(Generic[E]):
    """What the thread and asyncio caches share: the slots, freshness, identity-checked eviction."""

    def __init__(self, refresh_margin_s: float, clock: Callable[[], float]) -> None:
        self.refresh_margin_s = refresh_margin_s
        self.clock = clock
        self._slots: dict[Slot, E] = {}
        self._lock = threading.Lock()
        self.mints = 0  # how many mints were started (the benchmark and tests read it)

    def _usable(self, entry: E) -> bool:
        if not entry.done():
            return True  # in flight: share it
        if entry.cancelled() or entry.exception() is not None:
            return False
        return entry.result().expires_at - self.clock() > self.refresh_margin_s

    def _current(self, slot: Slot) -> E | None:
        entry = self._slots.get(slot)
        return entry if entry is not None and self._usable(entry) else None

    def evict_if_same(self, slot: Slot, entry: E) -> bool:
        """Drop ``slot`` if it still holds ``entry``; True when it did."""
        with self._lock:
            if self._slots.get(slot) is entry:
                del self._slots[slot]
                return True
            return False

    def peek(self, slot: Slot) -> E | None:
        with self._lock:
            return self._slots.get(slot)

    def reset(self) -> None:
        """Forget every slot (a warm worker between runs must not reuse another run's tokens)."""
        with self._lock:
            self._slots.clear()


class CredentialCache(_SlotCache["Future[StreamCredentials]"]):
    """The cache for threads: the first caller of a slot mints, the others wait on its Future."""

    def __init__(
        self,
        mint: Callable[[Slot], StreamCredentials],
        refresh_margin_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(refresh_margin_s, clock)
        self._mint = mint

    def get(self, slot: Slot) -> Future[StreamCredentials]:
        """The slot's entry, minting once if there is no usable one. Call ``.result()`` on it."""
        with self._lock:
            entry = self._current(slot)
            if entry is not None:
                return entry
            entry = Future()
            self._slots[slot] = entry
            self.mints += 1
        try:
            entry.set_result(self._mint(slot))
        except BaseException as exc:
            entry.set_exception(exc)
            self.evict_if_same(slot, entry)  # a failed mint is never cached
        return entry


class AsyncCredentialCache(_SlotCache["asyncio.Task[StreamCredentials]"]):
    """The cache for asyncio: concurrent tasks await one mint Task per slot."""

    def __init__(
        self,
        mint: Callable[[Slot], Awaitable[StreamCredentials]],
        refresh_margin_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(refresh_margin_s, clock)
        self._mint = mint

    def get(self, slot: Slot) -> asyncio.Task[StreamCredentials]:
        """The slot's entry, starting one mint if there is no usable one. Await it."""
        with self._lock:
            entry = self._current(slot)
            if entry is not None:
                return entry
            entry = asyncio.ensure_future(self._mint(slot))
            self._slots[slot] = entry
            self.mints += 1

        def forget_failure(task: asyncio.Task[StreamCredentials]) -> None:
            if task.cancelled() or task.exception() is not None:
                self.evict_if_same(slot, task)

        entry.add_done_callback(forget_failure)
        return entry
