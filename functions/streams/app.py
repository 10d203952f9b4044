"""Realtime streams on the HTTP API: mint write credentials, append, close, and two reads of run
streams and session channels alike: the long poll (SSE) and the drained records (JSON, never waits);
and the trigger.dev SDK's writes (``streams.ingest_v1``).

The streamed read (the mint's ``readUrl``) is the ``stream_reader`` function behind a Function URL;
this long poll is the fallback for clients that can only reach the HTTP API.
"""

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from sluice import observability, streams
from sluice.api import (
    API_KEY,
    JSON,
    STREAM_TOKEN,
    STREAM_TOKEN_QUERY,
    Param,
    current_environment,
    json_response,
    make_resolver,
    public_base_url,
    request_bytes,
    route_docs,
)
from sluice.auth import bearer_token
from sluice.sessions import realtime
from sluice.streams import ingest_v1
from sluice.streams.models import START_ID
from sluice.streams.service import NDJSON, NdjsonChunk

app = make_resolver()
SSE = "text/event-stream"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
LAST_CHUNK_HEADER = "X-Last-Chunk-Index"
# Opens the reader of one stream for a bearer (API key or stream token) from a cursor.
OpenReader = Callable[[str, str | streams.Start], streams.StreamReader]

TOKEN_ERRORS = ("invalid_stream_token", "stream_token_expired")
BODY_ERRORS = (
    "invalid_encoding",
    "invalid_ndjson",
    "empty_body",
    "invalid_part_id",
    "chunk_too_large",
    "payload_too_deep",
)
# A run stream's mint for a finished run answers run_finished as a 400, which the catalogue lists
# at 409 (the run lifecycle's status), so this route cannot document it.
MINT_ERRORS = ("invalid_stream_key", "not_found", "too_many_streams", "stale_lease")
APPEND_ERRORS = ("invalid_stream_key", *TOKEN_ERRORS, *BODY_ERRORS, "stream_closed", "stale_lease")
LEASE_TOKEN = Param(
    "X-Lease-Token",
    "header",
    "A worker's lease token: the stream token then writes for that attempt only, and is refused"
    " once the attempt is retried or a later attempt mints",
)
CLOSE_ERRORS = ("invalid_stream_key", *TOKEN_ERRORS)
READ_ERRORS = ("invalid_stream_key", "invalid_last_event_id", *TOKEN_ERRORS, "not_found")
CHANNEL_MINT_ERRORS = (
    "session_not_found", "channel_not_found", "secret_key_required", "session_closed", "stale_lease",
)  # fmt: skip
CHANNEL_APPEND_ERRORS = (
    "session_not_found",
    "channel_not_found",
    *TOKEN_ERRORS,
    *BODY_ERRORS,
    "session_closed",
    "stale_lease",
)
CHANNEL_READ_ERRORS = ("session_not_found", "channel_not_found", "invalid_last_event_id", *TOKEN_ERRORS)

# Reads take the API key or the stream's token, as a Bearer or (EventSource cannot set headers)
# as ``?token=``; writes take the token only.
READ_AUTH = (API_KEY, STREAM_TOKEN, STREAM_TOKEN_QUERY)
TOKEN = Param("token", "query", "The stream's token, for a client that cannot set Authorization")
ENTRY_ID = streams.ENTRY_ID_PATTERN
# An entry id to resume after, or a count of chunks to skip (the trigger.dev SDK's startIndex - 1).
CURSOR = r"^(\d{1,19}-\d{1,19}|\d{1,15})$"
LONG_POLL_PARAMS = (
    Param("Last-Event-ID", "header", "Resume after this entry id, or skip this many chunks", pattern=CURSOR),
    Param("lastEventId", "query", "Last-Event-ID, for a client that cannot set it", pattern=CURSOR),
    Param("from", "query", "`latest`: start at the tail instead of the beginning", pattern="^latest$"),
    Param(streams.START_HEADER, "header", "`latest`: as `?from=latest` (the trigger.dev SDK's)"),
    TOKEN,
)
RECORDS_PARAMS = (
    Param("after", "query", "The records after this entry id (default: from the start)", pattern=ENTRY_ID),
    TOKEN,
)
PART_ID = Param(
    "X-Part-Id",
    "header",
    "A retried append with the same part id lands once (an NDJSON line without `partId` gets "
    "`<X-Part-Id>:<n>`, its position)",
)


# The run streams' key, as run_stream checks it.
KEY = Param("key", "path", "The stream's key", pattern=streams.STREAM_KEY_PATTERN)


def append_docs(
    ok_model: type[streams.AppendAnswer], errors: tuple[str, ...], params: tuple[Param, ...] = ()
) -> dict[str, Any]:
    """A JSON body is one chunk (any JSON); an NDJSON body is one ``NdjsonChunk`` a line."""
    return route_docs(
        ok_model=ok_model,
        body={JSON: None, NDJSON: NdjsonChunk},
        params=(*params, PART_ID),
        security=(STREAM_TOKEN,),
        errors=errors,
    )


def long_poll_docs(errors: tuple[str, ...], params: tuple[Param, ...] = ()) -> dict[str, Any]:
    return route_docs(
        ok_type=SSE,
        ok_description="Server-Sent Events: `id:` and `data:` a chunk, `event: end` once closed, "
        "then `retry:` unless the stream ended",
        ok_headers={streams.CURSOR_HEADER: "The entry id this response started after: resume from it"},
        params=(*params, *LONG_POLL_PARAMS),
        security=READ_AUTH,
        errors=errors,
    )


def records_docs(
    errors: tuple[str, ...], operation_id: str, params: tuple[Param, ...] = ()
) -> dict[str, Any]:
    return route_docs(
        ok_model=streams.RecordsAnswer,
        params=(*params, *RECORDS_PARAMS),
        security=READ_AUTH,
        errors=errors,
        operation_id=operation_id,
    )


@app.put(
    "/realtime/v1/streams/<run_id>/<key>",
    **route_docs(ok_model=streams.MintAnswer, params=(KEY, LEASE_TOKEN), errors=MINT_ERRORS),
)
def mint(run_id: str, key: str) -> Response[Any]:
    env = current_environment(app)
    lease_token = app.current_event.headers.get("x-lease-token") or None
    credentials = streams.mint(
        env, run_stream(run_id, key), api_base=public_base_url(app), lease_token=lease_token
    )
    return json_response(200, credentials.to_api())


@app.post(
    "/realtime/v1/streams/<run_id>/<key>/append", **append_docs(streams.AppendAnswer, APPEND_ERRORS, (KEY,))
)
def append(run_id: str, key: str) -> Response[Any]:
    event = app.current_event
    result = streams.append(
        bearer_token(event.headers),
        run_stream(run_id, key),
        request_bytes(app),
        event.headers.get("content-type", ""),
        event.headers.get("x-part-id"),
    )
    return json_response(200, result.to_api())


@app.post(
    "/realtime/v1/streams/<run_id>/<key>/close",
    **route_docs(ok_model=streams.CloseAnswer, params=(KEY,), security=(STREAM_TOKEN,), errors=CLOSE_ERRORS),
)
def close(run_id: str, key: str) -> Response[Any]:
    closed = streams.close(bearer_token(app.current_event.headers), run_stream(run_id, key))
    return json_response(200, streams.CloseAnswer(closed=True, alreadyClosed=not closed).model_dump())


# --- the trigger.dev SDK's writes (``streams.ingest_v1``): API key, {target} = self/parent/root --
# Declared after the routes above: a stream named "append", "close" or "records" is theirs.
SDK_WRITE_ERRORS = ("not_found", "run_finished", "too_many_streams", "invalid_stream_key")
SDK_INGEST_ERRORS = (
    "not_found",
    "invalid_stream_key",
    "invalid_part_id",
    "invalid_resume_chunk",
    "invalid_ndjson",
    "chunk_too_large",
    "stream_closed",
)


class SdkStreamVersion(BaseModel):
    version: str


class SdkAppendAnswer(BaseModel):
    ok: bool


@app.put(
    "/realtime/v1/streams/<run_id>/<target>/<key>",
    **route_docs(ok_model=SdkStreamVersion, errors=SDK_WRITE_ERRORS),
)
def sdk_create_stream(run_id: str, target: str, key: str) -> Response[Any]:
    return json_response(200, ingest_v1.create(sdk_stream(run_id, target, key)))


@app.post(
    "/realtime/v1/streams/<run_id>/<target>/<key>",
    **route_docs(ok_model=SdkAppendAnswer, body={NDJSON: None}, errors=SDK_INGEST_ERRORS),
)
def sdk_ingest(run_id: str, target: str, key: str) -> Response[Any]:
    headers = app.current_event.headers
    last = ingest_v1.ingest(
        sdk_stream(run_id, target, key),
        request_bytes(app),
        client_id=headers.get("x-client-id"),
        resume_from=headers.get("x-resume-from-chunk"),
    )
    return json_response(200, {"ok": True}, headers={LAST_CHUNK_HEADER: str(last)})


@app.route(
    "/realtime/v1/streams/<run_id>/<target>/<key>",
    method="HEAD",
    **route_docs(ok_headers={LAST_CHUNK_HEADER: "the last chunk index from X-Client-Id (-1: none)"}),
)
def sdk_last_chunk(run_id: str, target: str, key: str) -> Response[Any]:
    client = app.current_event.headers.get("x-client-id")
    last = ingest_v1.last_chunk_index(sdk_stream(run_id, target, key), client)
    return Response(status_code=200, headers={LAST_CHUNK_HEADER: str(last)})


@app.post(
    "/realtime/v1/streams/<run_id>/<target>/<key>/append",
    **route_docs(ok_model=SdkAppendAnswer, body_required=True, errors=SDK_INGEST_ERRORS),
)
def sdk_append(run_id: str, target: str, key: str) -> Response[Any]:
    return json_response(200, ingest_v1.append_one(sdk_stream(run_id, target, key), request_bytes(app)))


def sdk_stream(run_id: str, target: str, key: str) -> ingest_v1.SdkStream:
    return ingest_v1.SdkStream(current_environment(app), run_id, target, key)


@app.get("/realtime/v1/streams/<run_id>/<key>", **long_poll_docs(READ_ERRORS, (KEY,)))
def read(run_id: str, key: str) -> Response[Any]:
    return long_poll(run_reader(run_id, key))


@app.get(
    "/realtime/v1/streams/<run_id>/<key>/records", **records_docs(READ_ERRORS, "readStreamRecords", (KEY,))
)
def records(run_id: str, key: str) -> Response[Any]:
    return drained(run_reader(run_id, key))


def run_stream(run_id: str, key: str) -> streams.StreamAddress:
    """The stream a route's path names. Powertools hands over the path's segments as the client
    sent them, percent-encoded (``appendUrl`` and ``readUrl`` encode the key), so the key is
    decoded before it is checked: ``a%00b`` is the key ``a<NUL>b``, not a literal one."""
    return streams.run_stream(unquote(run_id), unquote(key))


def run_reader(run_id: str, key: str) -> OpenReader:
    return lambda bearer, cursor: streams.open_reader(bearer, run_stream(run_id, key), cursor)


def channel_reader(session: str, io: str) -> OpenReader:
    return lambda bearer, cursor: realtime.reader(bearer, session, io, cursor)


def long_poll(open_reader: OpenReader) -> Response[Any]:
    """One long-poll response of the reader from ``Last-Event-ID`` (or ``?lastEventId=``), else
    from the start (``?from=latest``: the tail)."""
    event = app.current_event
    start = streams.parse_start(
        event.headers.get("last-event-id") or event.get_query_string_value("lastEventId"),
        event.get_query_string_value("from") or event.headers.get(streams.START_HEADER),
    )
    reader = open_reader(read_bearer(), start)
    framing = streams.framing_for(event.headers)
    frames = streams.long_poll(reader, framing=framing)
    body = b"".join(frame.encode() for frame in frames).decode("utf-8")
    headers = {**SSE_HEADERS, **framing.headers, streams.CURSOR_HEADER: reader.start_cursor}
    return Response(status_code=200, content_type=SSE, body=body, headers=headers)


def drained(open_reader: OpenReader) -> Response[Any]:
    """The records after ``?after=`` (from the start without it) as far as they go now."""
    after = streams.parse_last_event_id(app.current_event.get_query_string_value("after"))
    return json_response(200, streams.drain(open_reader(read_bearer(), after or START_ID)).model_dump())


def read_bearer() -> str:
    return app.current_event.get_query_string_value("token") or bearer_token(app.current_event.headers)


# --- session channels: ``in`` (user -> agent) and ``out`` (agent -> user) ------------------------


@app.put(
    "/realtime/v1/sessions/<session>/<io>",
    **route_docs(ok_model=streams.MintAnswer, params=(LEASE_TOKEN,), errors=CHANNEL_MINT_ERRORS),
)
def mint_channel(session: str, io: str) -> Response[Any]:
    env = current_environment(app)
    api_key = bearer_token(app.current_event.headers)
    lease_token = app.current_event.headers.get("x-lease-token") or None
    credentials = realtime.mint(
        env, api_key, session, io, api_base=public_base_url(app), lease_token=lease_token
    )
    return json_response(200, credentials.to_api())


@app.post(
    "/realtime/v1/sessions/<session>/<io>/append",
    **append_docs(realtime.ChannelAppendAnswer, CHANNEL_APPEND_ERRORS),
)
def append_channel(session: str, io: str) -> Response[Any]:
    event = app.current_event
    result = realtime.append(
        bearer_token(event.headers),
        session,
        io,
        request_bytes(app),
        event.headers.get("content-type", ""),
        part_id=event.headers.get("x-part-id"),
    )
    return json_response(200, result.to_api())


@app.get("/realtime/v1/sessions/<session>/<io>", **long_poll_docs(CHANNEL_READ_ERRORS))
def read_channel(session: str, io: str) -> Response[Any]:
    return long_poll(channel_reader(session, io))


@app.get(
    "/realtime/v1/sessions/<session>/<io>/records",
    **records_docs(CHANNEL_READ_ERRORS, "readSessionChannelRecords"),
)
def channel_records(session: str, io: str) -> Response[Any]:
    return drained(channel_reader(session, io))


@observability.lambda_handler(http=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
