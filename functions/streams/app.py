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
)
from sluice.auth import bearer_token
from sluice.sessions import realtime

app = make_resolver()
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@app.put("/realtime/v1/streams/<run_id>/<key>")
def mint(run_id: str, key: str) -> Response[Any]:
    env = current_environment(app)
    credentials = streams.mint(env, streams.run_stream(run_id, key), api_base=public_base_url(app))
    return json_response(200, credentials.to_api())


@app.post("/realtime/v1/streams/<run_id>/<key>/append")
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


@app.post("/realtime/v1/streams/<run_id>/<key>/close")
def close(run_id: str, key: str) -> Response[Any]:
    closed = streams.close(bearer_token(app.current_event.headers), streams.run_stream(run_id, key))
    return json_response(200, {"closed": True, "alreadyClosed": not closed})


@app.get("/realtime/v1/streams/<run_id>/<key>")
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


@app.put("/realtime/v1/sessions/<session>/<io>")
def mint_channel(session: str, io: str) -> Response[Any]:
    env = current_environment(app)
    api_key = bearer_token(app.current_event.headers)
    credentials = realtime.mint(env, api_key, session, io, api_base=public_base_url(app))
    return json_response(200, credentials.to_api())


@app.post("/realtime/v1/sessions/<session>/<io>/append")
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


@app.get("/realtime/v1/sessions/<session>/<io>")
def read_channel(session: str, io: str) -> Response[Any]:
    event = app.current_event
    last_id = streams.parse_last_event_id(
        event.headers.get("last-event-id") or event.get_query_string_value("lastEventId")
    )
    return long_poll_response(realtime.reader(read_bearer(), session, io, last_id))


@app.get("/realtime/v1/sessions/<session>/<io>/records")
def channel_records(session: str, io: str) -> Response[Any]:
    after = streams.parse_last_event_id(app.current_event.get_query_string_value("after"))
    return json_response(200, realtime.records(read_bearer(), session, io, after))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
