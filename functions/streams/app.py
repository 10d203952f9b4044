"""Realtime streams on the HTTP API: mint write credentials, append, close, and the long-poll read.

The streamed read (the mint's ``readUrl``) is the ``stream_reader`` function behind a Function URL;
this long poll is the fallback for clients that can only reach the HTTP API.
"""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import streams
from sluice.api import (
    current_environment,
    json_response,
    logger,
    make_resolver,
    public_base_url,
    request_bytes,
    route_docs,
)
from sluice.auth import bearer_token
from sluice.sessions import realtime
from sluice.streams.service import NDJSON, NdjsonChunk

app = make_resolver()
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}

TOKEN_ERRORS = ("invalid_stream_token", "stream_token_expired")
BODY_ERRORS = (
    "invalid_encoding",
    "invalid_json",
    "invalid_ndjson",
    "empty_body",
    "invalid_part_id",
    "chunk_too_large",
)
# A run stream's mint for a finished run answers run_finished as a 400, which the catalogue lists
# at 409 (the run lifecycle's status), so this route cannot document it.
MINT_ERRORS = ("invalid_stream_key", "not_found")
APPEND_ERRORS = ("invalid_stream_key", *TOKEN_ERRORS, *BODY_ERRORS, "stream_closed")
CLOSE_ERRORS = ("invalid_stream_key", *TOKEN_ERRORS)
READ_ERRORS = ("invalid_stream_key", "invalid_last_event_id", *TOKEN_ERRORS, "not_found")
CHANNEL_MINT_ERRORS = ("session_not_found", "channel_not_found", "secret_key_required", "session_closed")
CHANNEL_APPEND_ERRORS = (
    "session_not_found",
    "channel_not_found",
    *TOKEN_ERRORS,
    *BODY_ERRORS,
    "session_closed",
)
CHANNEL_READ_ERRORS = ("session_not_found", "channel_not_found", "invalid_last_event_id", *TOKEN_ERRORS)


def append_docs(errors: tuple[str, ...]) -> dict[str, Any]:
    """An append takes a JSON body (one chunk, any JSON) or NDJSON (one ``NdjsonChunk`` a line)."""
    docs = route_docs(body=NdjsonChunk, body_type=NDJSON, errors=errors)
    docs["openapi_extensions"]["requestBody"]["content"]["application/json"] = {"schema": {}}
    return docs


def long_poll_docs(errors: tuple[str, ...]) -> dict[str, Any]:
    """A long-poll read answers Server-Sent Events, not JSON."""
    docs = route_docs(errors=errors)
    sse = {"text/event-stream": {"schema": {"type": "string"}}}
    docs["responses"][200] = {"description": "Server-Sent Events, then `retry:`", "content": sse}
    return docs


@app.put("/realtime/v1/streams/<run_id>/<key>", **route_docs(errors=MINT_ERRORS))
def mint(run_id: str, key: str) -> Response[Any]:
    env = current_environment(app)
    credentials = streams.mint(env, streams.run_stream(run_id, key), api_base=public_base_url(app))
    return json_response(200, credentials.to_api())


@app.post("/realtime/v1/streams/<run_id>/<key>/append", **append_docs(APPEND_ERRORS))
def append(run_id: str, key: str) -> Response[Any]:
    event = app.current_event
    result = streams.append(
        bearer_token(event.headers),
        streams.run_stream(run_id, key),
        request_bytes(app),
        event.headers.get("content-type", ""),
        event.headers.get("x-part-id"),
    )
    return json_response(200, result.to_api())


@app.post("/realtime/v1/streams/<run_id>/<key>/close", **route_docs(errors=CLOSE_ERRORS))
def close(run_id: str, key: str) -> Response[Any]:
    closed = streams.close(bearer_token(app.current_event.headers), streams.run_stream(run_id, key))
    return json_response(200, {"closed": True, "alreadyClosed": not closed})


@app.get("/realtime/v1/streams/<run_id>/<key>", **long_poll_docs(READ_ERRORS))
def read(run_id: str, key: str) -> Response[Any]:
    event = app.current_event
    last_id = streams.parse_last_event_id(
        event.headers.get("last-event-id") or event.get_query_string_value("lastEventId")
    )
    return long_poll_response(streams.open_reader(read_bearer(), streams.run_stream(run_id, key), last_id))


def long_poll_response(reader: streams.StreamReader) -> Response[Any]:
    body = b"".join(frame.encode() for frame in streams.long_poll(reader)).decode("utf-8")
    headers = {**SSE_HEADERS, streams.CURSOR_HEADER: reader.start_cursor}
    return Response(status_code=200, content_type="text/event-stream", body=body, headers=headers)


def read_bearer() -> str:
    return app.current_event.get_query_string_value("token") or bearer_token(app.current_event.headers)


# --- session channels: ``in`` (user -> agent) and ``out`` (agent -> user) ------------------------


@app.put("/realtime/v1/sessions/<session>/<io>", **route_docs(errors=CHANNEL_MINT_ERRORS))
def mint_channel(session: str, io: str) -> Response[Any]:
    env = current_environment(app)
    api_key = bearer_token(app.current_event.headers)
    credentials = realtime.mint(env, api_key, session, io, api_base=public_base_url(app))
    return json_response(200, credentials.to_api())


@app.post("/realtime/v1/sessions/<session>/<io>/append", **append_docs(CHANNEL_APPEND_ERRORS))
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
    event = app.current_event
    last_id = streams.parse_last_event_id(
        event.headers.get("last-event-id") or event.get_query_string_value("lastEventId")
    )
    return long_poll_response(realtime.reader(read_bearer(), session, io, last_id))


@app.get("/realtime/v1/sessions/<session>/<io>/records", **route_docs(errors=CHANNEL_READ_ERRORS))
def channel_records(session: str, io: str) -> Response[Any]:
    after = streams.parse_last_event_id(app.current_event.get_query_string_value("after"))
    return json_response(200, realtime.records(read_bearer(), session, io, after))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
