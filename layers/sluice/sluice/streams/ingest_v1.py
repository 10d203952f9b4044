"""The trigger.dev SDK's stream writes ("v1" ingest), authenticated by the API key.

    PUT  /realtime/v1/streams/{runId}/{target}/{key}          -> {"version": "v1"}
    POST /realtime/v1/streams/{runId}/{target}/{key}          NDJSON body: one chunk a line
    HEAD /realtime/v1/streams/{runId}/{target}/{key}          -> X-Last-Chunk-Index
    POST /realtime/v1/streams/{runId}/{target}/{key}/append   one chunk, the body's text

``target`` is ``self`` (the run), ``parent`` or ``root`` (its parent, or its first ancestor; the
run itself when it has none). A writer (``X-Client-Id``) numbers its chunks from 0 and, after a
broken connection, asks HEAD for the last index that landed and resends from the next one
(``X-Resume-From-Chunk``): each chunk's part id is ``v1:<client>:<index>``, so a resent chunk
lands once. A body that arrives whole is the writer's source ending, so the stream is closed then,
as the reference platform's ingest closes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from sluice import engine
from sluice.auth import Environment
from sluice.engine.models import Run
from sluice.errors import BadRequest, NotFound
from sluice.streams.errors import RunFinished
from sluice.streams.models import StreamAddress
from sluice.streams.runs import is_final, record_stream_key
from sluice.streams.service import check_part_id, encoded_chunk, run_stream
from sluice.streams.store import get_store

Target = Literal["self", "parent", "root"]
TARGETS: tuple[Target, ...] = ("self", "parent", "root")
# The writer of a request without X-Client-Id.
ANONYMOUS = "anonymous"
# Parents followed to find a root: a chain deeper than this is refused, not walked for ever.
MAX_DEPTH = 16


def _target(value: str) -> Target:
    for target in TARGETS:
        if value == target:
            return target
    raise NotFound(f"No stream target {value!r}: self, parent or root", code="route_not_found")


def target_run(env: Environment, run_id: str, target: str) -> Run:
    """The run a ``target`` of ``run_id`` names, in ``env``.

    Raises:
        NotFound: no such run (or parent) in ``env``, or an unknown target.
    """
    which = _target(target)
    run = _tenant_run(env, run_id)
    if which == "self":
        return run
    for _ in range(MAX_DEPTH):
        if run.parentRunId is None:
            return run
        run = _tenant_run(env, run.parentRunId)
        if which == "parent":
            return run
    raise NotFound(f"Run {run_id} has more than {MAX_DEPTH} ancestors", code="not_found")


def _tenant_run(env: Environment, run_id: str) -> Run:
    run = engine.get_run(env, run_id)
    if run.orgId != env.org_id:  # the same environment name in another organization
        raise NotFound(f"Run {run_id} not found")
    return run


@dataclass(frozen=True)
class SdkStream:
    """A stream as the SDK's write routes name it: the run, the target and the key."""

    env: Environment
    run_id: str
    target: str
    key: str

    def address(self) -> StreamAddress:
        return run_stream(target_run(self.env, self.run_id, self.target).id, self.key)


def create(stream: SdkStream) -> dict[str, str]:
    """Ready the stream for the SDK's writer: the key is recorded on the run, the stream bound to
    the environment. ``{"version": "v1"}`` tells the SDK to use this ingest.

    Raises:
        NotFound, RunFinished, Conflict (``too_many_streams``), ServiceUnavailable.
    """
    run = target_run(stream.env, stream.run_id, stream.target)
    if is_final(run.status):
        raise RunFinished(f"Run {run.id} has finished ({run.status}); its streams are closed")
    record_stream_key(run.id, stream.key)
    get_store().register(run_stream(run.id, stream.key), stream.env.tenant)
    return {"version": "v1"}


def ingest(stream: SdkStream, body: bytes, *, client_id: str | None, resume_from: str | None) -> int:
    """Append the body's chunks (one JSON value a line) from index ``resume_from``, then close
    the stream; the last chunk index that landed.

    Raises:
        BadRequest: a line that is not JSON, a bad ``X-Resume-From-Chunk`` or ``X-Client-Id``.
        ChunkTooLarge, StreamClosed, NotFound, ServiceUnavailable.
    """
    address, tenant = stream.address(), stream.env.tenant
    client = check_part_id(client_id or ANONYMOUS)
    index = _resume_index(resume_from)
    chunks: list[tuple[str, str]] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"Chunk {index} is not JSON: {exc}", code="invalid_ndjson") from exc
        chunks.append((f"v1:{client}:{index}", encoded_chunk(data, f"Chunk {index}")))
        index += 1
    store = get_store()
    store.register(address, tenant)
    # A resend of chunks that landed (the writer never heard back) is answered, not appended: the
    # stream may be closed by then.
    landed = store.chunk_index(address, client)
    fresh = chunks[max(0, landed - (index - len(chunks)) + 1) :]
    if fresh:
        store.append(address, tenant, fresh)
        store.record_chunk_index(address, client, index - 1)
    store.close(address, tenant)
    return max(landed, index - 1)


def append_one(stream: SdkStream, body: bytes) -> dict[str, bool]:
    """``streams.append``: one chunk, the body's text as a string.

    Raises:
        BadRequest: an empty body. ChunkTooLarge, StreamClosed, NotFound, ServiceUnavailable.
    """
    if not body:
        raise BadRequest("The append body is empty", code="empty_body")
    address, store = stream.address(), get_store()
    store.register(address, stream.env.tenant)
    chunk = encoded_chunk(body.decode("utf-8", errors="replace"), "The chunk")
    store.append(address, stream.env.tenant, [("", chunk)])
    return {"ok": True}


def last_chunk_index(stream: SdkStream, client_id: str | None) -> int:
    """The last chunk index that landed from the client; -1 when none."""
    return get_store().chunk_index(stream.address(), check_part_id(client_id or ANONYMOUS))


def _resume_index(value: str | None) -> int:
    text = (value or "").strip()
    if text == "":
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > 15:
        raise BadRequest("X-Resume-From-Chunk must be a non-negative integer", code="invalid_resume_chunk")
    return int(text)
