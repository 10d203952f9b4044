"""The streamed SSE read: an ASGI app behind a Function URL in RESPONSE_STREAM mode.

The managed Python runtime cannot stream a response by itself, so the AWS Lambda Web Adapter
layer runs this app (``run.sh`` starts it under uvicorn) and relays its body as it is written.
Events reach the client as soon as they are appended; a connection ends after
SLUICE_SSE_MAX_CONNECTION_S with ``retry:``, and EventSource resumes with Last-Event-ID.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio.to_thread
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sluice import streams
from sluice.auth import bearer_token
from sluice.config import get_settings
from sluice.errors import NotFound, SluiceError
from sluice.sessions import realtime

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def read(request: Request) -> Response:
    run_id, key = request.path_params["run_id"], request.path_params["key"]
    return await respond(
        request, lambda token, start: streams.open_reader(token, streams.run_stream(run_id, key), start)
    )


async def read_channel(request: Request) -> Response:
    session, io = request.path_params["session"], request.path_params["io"]
    return await respond(request, lambda token, start: realtime.reader(token, session, io, start))


async def respond(
    request: Request, open_reader: Callable[[str, str | streams.Start], streams.StreamReader]
) -> Response:
    start = streams.parse_start(
        request.headers.get("last-event-id") or request.query_params.get("lastEventId"),
        request.query_params.get("from") or request.headers.get(streams.START_HEADER),
    )
    token = request.query_params.get("token") or bearer_token(dict(request.headers))
    # The cursor is fixed here, before the response's first byte (DynamoDB and Redis calls block,
    # so they run off the event loop).
    reader = await anyio.to_thread.run_sync(open_reader, token, start)
    framing = streams.framing_for({k.lower(): v for k, v in request.headers.items()})
    return EventSourceResponse(
        streams.stream(reader, framing=framing),
        headers={**SSE_HEADERS, **framing.headers, streams.CURSOR_HEADER: reader.start_cursor},
        ping=get_settings().sse_keepalive_s,
        ping_message_factory=lambda: streams.KEEP_ALIVE,
    )


async def healthz(_: Request) -> Response:
    """The Web Adapter's readiness check (AWS_LWA_READINESS_CHECK_PATH)."""
    return PlainTextResponse("ok")


async def sluice_error(_: Request, exc: Exception) -> Response:
    error = exc if isinstance(exc, SluiceError) else NotFound("No such route", code="route_not_found")
    return JSONResponse(error.to_body(), status_code=error.status, headers=error.headers)


app = Starlette(
    routes=[
        Route("/realtime/v1/streams/{run_id}/{key}", read, methods=["GET"]),
        Route("/realtime/v1/sessions/{session}/{io}", read_channel, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ],
    exception_handlers={SluiceError: sluice_error, 404: sluice_error},
)
