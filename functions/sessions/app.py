"""Durable chat sessions on the HTTP API: create (idempotent on externalId), get, list, close, and
the conversation snapshot. The channels ``in`` and ``out`` are served by the streams function."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import observability
from sluice.api import (
    JSON,
    current_environment,
    json_body,
    json_response,
    make_resolver,
    request_bytes,
    route_docs,
)
from sluice.sessions import service
from sluice.sessions.records import CreateSession
from sluice_wire.chat import ChatSnapshot

app = make_resolver()

CREATE_ERRORS = (
    "invalid_encoding",
    "invalid_session",
    "payload_too_large",
    "metadata_too_large",
    "base_payload_too_large",
)
LIST_ERRORS = ("invalid_limit", "invalid_status", "invalid_cursor")
SNAPSHOT_DOCS = route_docs(
    body=ChatSnapshot, errors=("session_not_found", "snapshot_too_large", "invalid_snapshot")
)
# The snapshot is parsed whole by its model: a body that is not JSON is an invalid_snapshot (422),
# never the invalid_json that route_docs assumes of a JSON body.
del SNAPSHOT_DOCS["responses"][400]


@app.post("/api/v1/sessions", **route_docs(body=CreateSession, errors=CREATE_ERRORS))
def create() -> Response[Any]:
    env = current_environment(app)
    session, cached = service.create_session(env, service.parse_create(json_body(app)))
    return json_response(200, {**session.to_api(), "isCached": cached})


@app.get("/api/v1/sessions", **route_docs(errors=LIST_ERRORS))
def list_sessions() -> Response[Any]:
    env = current_environment(app)
    query = app.current_event.get_query_string_value
    sessions, cursor = service.list_sessions(
        env,
        session_type=query("type") or None,
        tag=query("tag") or None,
        status=query("status") or None,
        # ``page[size]`` and ``page[after]``: the trigger.dev SDK's names for them.
        limit=service.parse_limit(query("limit") or query("page[size]")),
        cursor=query("cursor") or query("page[after]") or None,
    )
    # ``pagination.next`` is the trigger.dev SDK's page cursor (absent on the last page).
    pagination = {"next": cursor} if cursor else {}
    body = {"data": [s.to_api() for s in sessions], "nextCursor": cursor, "pagination": pagination}
    return json_response(200, body)


@app.get("/api/v1/sessions/<session>", **route_docs(errors=("session_not_found",)))
def get(session: str) -> Response[Any]:
    return json_response(200, service.get_session(current_environment(app), session).to_api())


@app.post("/api/v1/sessions/<session>/close", **route_docs(errors=("session_not_found",)))
def close(session: str) -> Response[Any]:
    return json_response(200, service.close_session(current_environment(app), session).to_api())


@app.put("/api/v1/sessions/<session>/snapshot", **SNAPSHOT_DOCS)
def put_snapshot(session: str) -> Response[Any]:
    env = current_environment(app)
    snapshot = service.put_snapshot(env, session, request_bytes(app))
    return json_response(200, {"stored": True, "savedAt": snapshot.savedAt.isoformat()})


@app.get(
    "/api/v1/sessions/<session>/snapshot", **route_docs(errors=("session_not_found", "snapshot_not_found"))
)
def get_snapshot(session: str) -> Response[Any]:
    body = service.get_snapshot(current_environment(app), session)
    return Response(status_code=200, content_type=JSON, body=body.decode("utf-8"))


@observability.lambda_handler(http=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
