"""A stream's identity, its chunks and events, and what the routes answer.

The ``*Answer`` models are the JSON bodies the routes send, and what openapi.json documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, JsonValue

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


class AppendAnswer(BaseModel):
    ids: list[str]  # every chunk's entry id, in order (a deduplicated chunk's: where it first landed)
    appended: int
    deduplicated: int  # chunks whose part id had landed before: not appended again


@dataclass(frozen=True)
class AppendResult:
    ids: list[str]
    deduplicated: int

    def to_api(self) -> dict[str, Any]:
        appended = len(self.ids) - self.deduplicated
        return AppendAnswer(ids=self.ids, appended=appended, deduplicated=self.deduplicated).model_dump()


class CloseAnswer(BaseModel):
    closed: Literal[True]
    alreadyClosed: bool


class MintAnswer(BaseModel):
    streamId: str
    appendUrl: str
    readUrl: str  # the streamed reader (a Function URL) when deployed, else this API's long poll
    token: str  # for ``Authorization: Bearer`` on appends, closes and reads of this stream only
    expiresAt: int  # Unix seconds


@dataclass(frozen=True)
class Credentials:
    """What a mint answers: where to write and read, and the token that authorises it."""

    stream_id: str
    append_url: str
    read_url: str
    token: str
    expires_at: int

    def to_api(self) -> dict[str, Any]:
        return MintAnswer(
            streamId=self.stream_id,
            appendUrl=self.append_url,
            readUrl=self.read_url,
            token=self.token,
            expiresAt=self.expires_at,
        ).model_dump()


class StreamRecord(BaseModel):
    id: str
    data: JsonValue


class RecordsAnswer(BaseModel):
    """A non-waiting read: the records after a cursor as far as they go now."""

    records: list[StreamRecord]
    closed: bool  # the stream is closed and every record up to its end is in ``records``
    hasMore: bool  # a page limit cut ``records`` short: ask again after the last id
