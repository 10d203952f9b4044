"""The streams' use cases, as the HTTP routes call them: mint, append, close, open a reader."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Collection
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sluice import engine, strict_json
from sluice.auth import authenticate
from sluice.auth.api_keys import Environment
from sluice.config import STREAM_KEY_MAX_CHARS, get_settings
from sluice.errors import BadRequest, Conflict, NotFound, SluiceError, issues_from_pydantic
from sluice.streams.errors import ChunkTooLarge, InvalidStreamToken, RunFinished
from sluice.streams.models import AppendResult, Credentials, StreamAddress
from sluice.streams.reader import Start, StreamReader
from sluice.streams.runs import is_final, leased_attempt, record_stream_key
from sluice.streams.store import get_store
from sluice.streams.tokens import is_stream_token, mint_token, verify_token

PART_ID_MAX_CHARS = 256
NDJSON = "application/x-ndjson"


# Printable: a key is part of URLs, Redis keys and log lines, where a space or a control character
# (NUL among them) would be mangled or ambiguous.
STREAM_KEY_PATTERN = rf"^[^\s\x00-\x1f\x7f]{{1,{STREAM_KEY_MAX_CHARS}}}$"
_STREAM_KEY = re.compile(STREAM_KEY_PATTERN)


class NdjsonChunk(BaseModel):
    """One line of an NDJSON append: the chunk, and the part id that makes its retry land once."""

    model_config = ConfigDict(extra="forbid")

    data: Any
    partId: Annotated[str, Field(min_length=1, max_length=PART_ID_MAX_CHARS)] | None = None


def run_stream(run_id: str, key: str) -> StreamAddress:
    """The address of a run's stream, with the key checked.

    Raises:
        BadRequest: an empty or over-long key.
    """
    if not _STREAM_KEY.fullmatch(key):
        raise BadRequest(
            f"A stream key is 1 to {STREAM_KEY_MAX_CHARS} characters, none of them a space or a control"
            " character",
            code="invalid_stream_key",
        )
    return StreamAddress.run(run_id, key)


def run_stream_path(address: StreamAddress) -> str:
    return f"/realtime/v1/streams/{quote(address.owner, safe='')}/{quote(address.key, safe='')}"


def mint(
    env: Environment, address: StreamAddress, *, api_base: str, lease_token: str | None = None
) -> Credentials:
    """Credentials to write (and read) a run's stream; records the key on the run once.

    With ``lease_token`` (a worker's, ``X-Lease-Token``), the token writes for that attempt only:
    the stream's fence is raised to it, so every token of an earlier attempt is refused from now
    on, and this one is refused once a later attempt mints (or the attempt is retried).

    Raises:
        NotFound: no such run in ``env``.
        RunFinished: the run has finished.
        Conflict: ``stale_lease``: ``lease_token`` is not the run's current attempt's.
        ServiceUnavailable: DynamoDB, Redis or Secrets Manager cannot be reached.
    """
    run = engine.get_run(env, address.owner)
    if is_final(run.status):
        raise RunFinished(f"Run {run.id} has finished ({run.status}); its streams are closed")
    attempt = 0
    if lease_token is not None:
        leased = leased_attempt(run.id, lease_token)
        if leased is None:
            raise Conflict(
                f"The lease token is not the current attempt's of run {run.id}", code="stale_lease"
            )
        attempt = leased
        get_store().raise_fence(address, attempt)
    record_stream_key(run.id, address.key)
    return issue_credentials(env, address, run_stream_path(address), api_base=api_base, attempt=attempt)


def issue_credentials(
    env: Environment, address: StreamAddress, path: str, *, api_base: str, attempt: int = 0
) -> Credentials:
    """Bind the stream to ``env``'s tenant and hand out a token for it (for run ``attempt`` when
    not 0), with the URLs under ``path`` (the owner's checks are the caller's: a run's mint, a
    session channel's mint)."""
    settings = get_settings()
    get_store().register(address, env.tenant)
    expires_at = int(time.time()) + settings.stream_token_ttl_s
    read_base = settings.stream_read_url.rstrip("/") or api_base.rstrip("/")
    return Credentials(
        stream_id=address.stream_id,
        append_url=f"{api_base.rstrip('/')}{path}/append",
        read_url=f"{read_base}{path}",
        token=mint_token(env, address, expires_at, attempt=attempt),
        expires_at=expires_at,
    )


def encoded_chunk(data: Any, where: str) -> str:
    text = json.dumps(data, separators=(",", ":"))
    limit = get_settings().stream_chunk_max_bytes
    size = len(text.encode("utf-8"))
    if size > limit:
        raise ChunkTooLarge(f"{where} is {size} bytes; the limit is {limit}")
    return text


def check_part_id(part_id: str | None) -> str:
    if part_id is not None and not 0 < len(part_id) <= PART_ID_MAX_CHARS:
        raise BadRequest(f"X-Part-Id is 1 to {PART_ID_MAX_CHARS} characters", code="invalid_part_id")
    return part_id or ""


def parse_chunks(body: bytes, content_type: str, part_id: str | None) -> list[tuple[str, str]]:
    """``(part id, chunk JSON)`` pairs from an append body, all checked before any is written.

    A JSON body is one chunk (``X-Part-Id`` its part id). An NDJSON body is one
    ``{"data": ..., "partId"?: ...}`` a line; a line without a part id gets ``<X-Part-Id>:<n>``
    (its 0-based position) when the header is given.

    Raises:
        BadRequest: an empty body, invalid JSON, or a malformed line (nothing is appended).
        Unprocessable: ``payload_too_deep``, a JSON body nested over ``strict_json.MAX_DEPTH``.
        ChunkTooLarge: a chunk over SLUICE_STREAM_CHUNK_MAX_BYTES (nothing is appended).
    """
    base = check_part_id(part_id)
    if not body.strip():
        raise BadRequest("The append body is empty", code="empty_body")
    if content_type.split(";", maxsplit=1)[0].strip().lower() != NDJSON:
        data = strict_json.parse(body, "The append body", within_depth=True)
        return [(base, encoded_chunk(data, "The chunk"))]
    chunks: list[tuple[str, str]] = []
    issues: list[dict[str, Any]] = []
    for number, line in enumerate(body.splitlines()):
        if not line.strip():
            continue
        try:
            value = strict_json.parse(line, f"Line {number + 1}", within_depth=True)
            chunk = NdjsonChunk.model_validate(value)
        except ValidationError as exc:
            issues.extend({**issue, "line": number + 1} for issue in issues_from_pydantic(exc.errors()))
            continue
        except SluiceError as exc:
            issues.append({"path": [], "message": exc.message, "type": exc.code, "line": number + 1})
            continue
        index = len(chunks)
        pid = chunk.partId or (f"{base}:{index}" if base else "")
        chunks.append((pid, encoded_chunk(chunk.data, f"The chunk on line {number + 1}")))
    if issues:
        raise BadRequest(
            "The NDJSON body has invalid lines; nothing was appended", code="invalid_ndjson", issues=issues
        )
    return chunks


def append(
    token: str, address: StreamAddress, body: bytes, content_type: str, part_id: str | None = None
) -> AppendResult:
    """Append the body's chunks, in order and atomically.

    Raises:
        InvalidStreamToken: the token does not authorise this stream (401).
        BadRequest, ChunkTooLarge: the body (nothing appended).
        StreamClosed: the stream is closed (409).
        ServiceUnavailable: Redis is down (nothing appended; retry with the same part ids).
    """
    claims = verify_token(token, address)
    return get_store().append(
        address, claims.tenant, parse_chunks(body, content_type, part_id), claims.attempt
    )


def close(token: str, address: StreamAddress) -> bool:
    """Close the stream; False when it was closed already."""
    claims = verify_token(token, address)
    return get_store().close(address, claims.tenant) is not None


def open_reader(
    bearer: str,
    address: StreamAddress,
    start: str | Start | None,
    check_owner: Callable[[Environment], object] | None = None,
    token_for: Collection[StreamAddress] = (),
) -> StreamReader:
    """A reader of a stream, authorised by an API key of its owner's environment or by the
    stream's own token (or a token of one of the streams ``token_for`` names). The cursor is fixed
    here, before the response sends anything. ``check_owner`` raises NotFound when the owner is
    not in the key's environment (default: the owner is a run).

    Raises:
        Unauthorized / InvalidStreamToken: neither a valid API key nor a token for this stream.
        NotFound: the run is not in the API key's environment.
    """
    store = get_store()
    if is_stream_token(bearer):
        claims = verify_token(bearer, address, or_for=token_for)
        # The token's ownership check: the tenant the stream was bound to at its mint.
        if store.tenant(address) not in (None, claims.tenant):
            raise InvalidStreamToken("The stream token was made for another tenant")
    else:
        env = authenticate({"authorization": f"Bearer {bearer}"})
        try:
            (check_owner or (lambda e: engine.get_run(e, address.owner)))(env)
        except NotFound:
            raise NotFound(f"Stream {address.stream_id} not found") from None
    return StreamReader(store, address, start)
