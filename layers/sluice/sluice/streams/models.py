"""A stream's identity, its chunks and events, and the mint answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Scope = Literal["run", "session"]

# Redis stream ids: 0-0 is "before everything" (the cursor of an empty stream).
START_ID = "0-0"


@dataclass(frozen=True)
class StreamAddress:
    """Which stream: a run's stream ``key``, or (next) a session's ``in``/``out`` channel.

    Everything below the HTTP routes (tokens, Redis keys, the reader) takes an address, so a
    session channel is another ``scope`` and not another copy of the code.
    """

    scope: Scope
    owner: str
    key: str

    @classmethod
    def run(cls, run_id: str, key: str) -> StreamAddress:
        return cls("run", run_id, key)

    @property
    def stream_id(self) -> str:
        return f"{self.scope}s/{self.owner}/{self.key}"


@dataclass(frozen=True)
class Chunk:
    """One value to append; ``part_id`` makes a retried append land once."""

    data: Any
    part_id: str | None = None


@dataclass(frozen=True)
class StreamEvent:
    """An entry as the reader yields it: a data chunk, or the end marker."""

    id: str
    data: Any = None
    end: bool = False


@dataclass(frozen=True)
class AppendResult:
    ids: list[str]
    deduplicated: int

    def to_api(self) -> dict[str, Any]:
        return {
            "ids": self.ids,
            "appended": len(self.ids) - self.deduplicated,
            "deduplicated": self.deduplicated,
        }


@dataclass(frozen=True)
class Credentials:
    """What a mint answers: where to write and read, and the token that authorises it."""

    stream_id: str
    append_url: str
    read_url: str
    token: str
    expires_at: int

    def to_api(self) -> dict[str, Any]:
        return {
            "streamId": self.stream_id,
            "appendUrl": self.append_url,
            "readUrl": self.read_url,
            "token": self.token,
            "expiresAt": self.expires_at,
        }
