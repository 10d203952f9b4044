"""Every Redis key of a stream, built here and nowhere else.

All keys of one stream carry the same hash tag ``{st:<scope>:<owner>:<key>}`` (segments
base64url, so a customer string can neither alias another key nor move it to another slot): the
append and close scripts touch one cluster slot.

- ``T:data`` STREAM, the chunks; an entry has field ``d`` (the chunk as JSON) or ``e`` (the end).
- ``T:parts`` HASH part id -> entry id, so that a retried append returns the first one's id.
- ``T:meta`` HASH ``tenant`` (``<orgId>/<envId>``, the tenant the stream belongs to), ``closed``,
  and ``v1:<client>`` (the last chunk index a trigger.dev SDK writer appended,
  ``streams.ingest_v1``). The keys themselves name no tenant: a stream's owner (a run or session
  id) is unique across tenants, and the tenant in ``meta`` is checked by every write (in its
  script) and token read.
- ``T:call:<token>`` STRING, one append call's reply for 60 s (a client retry of the call answers it).
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.mollifier.keys import b64
from sluice.streams.models import StreamAddress


@dataclass(frozen=True)
class StreamKeys:
    address: StreamAddress

    @property
    def tag(self) -> str:
        a = self.address
        return f"{{st:{a.scope}:{b64(a.owner)}:{b64(a.key)}}}"

    @property
    def data(self) -> str:
        return f"{self.tag}:data"

    @property
    def parts(self) -> str:
        return f"{self.tag}:parts"

    @property
    def meta(self) -> str:
        return f"{self.tag}:meta"

    def all(self) -> list[str]:
        """In the order the scripts take them as KEYS."""
        return [self.data, self.parts, self.meta]
