"""Trigger intake: POST /api/v1/tasks/{taskId}/trigger, GET /api/v1/runs/{runId}, GET /api/v1/runs,
POST /api/v1/runs/{runId}/replay, and the packet store the trigger.dev SDK uploads large payloads to
(/api/v{1,2}/packets/{file})."""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from sluice import engine, observability, triggers
from sluice.api import (
    Param,
    current_environment,
    json_body,
    json_response,
    make_resolver,
    route_docs,
)
from sluice.engine import RunView, TriggerBody, listing, packets, parse_task_id

app = make_resolver()


TRIGGER_ERRORS = (
    "invalid_task_id",
    "idempotency_key_too_long",
    "payload_too_large",
    "metadata_too_large",
    "invalid_request",
    "invalid_body",
    "invalid_delay",
    "invalid_payload",
    "invalid_packet_path",
    "payload_too_deep",
    "unsupported_media_type",
    "idempotency_claim_timeout",
    "idempotency_contention",
)


@app.post(
    "/api/v1/tasks/<task_id>/trigger",
    **route_docs(ok_model=triggers.TriggerResponse, body=TriggerBody, errors=TRIGGER_ERRORS),
)
def trigger(task_id: str) -> Response[Any]:
    env = current_environment(app)
    return json_response(200, triggers.trigger(env, parse_task_id(task_id), json_body(app)).to_api())


@app.get("/api/v1/runs/<run_id>", **route_docs(ok_model=RunView, errors=("not_found",)))
def get_run(run_id: str) -> Response[Any]:
    env = current_environment(app)
    return json_response(200, triggers.read_run(env, run_id))


LIST_ERRORS = ("invalid_status", "invalid_filter", "invalid_limit", "invalid_cursor")
LIST_PARAMS = (
    Param("filter[status]", "query", "Statuses, comma-separated (any of them)"),
    Param("filter[taskIdentifier]", "query", "Task ids, comma-separated (any of them)"),
    Param("filter[tag]", "query", "Tags, comma-separated (runs with any of them)"),
    Param("filter[batch]", "query", "A batch id (also as filter[batchId])"),
    Param("filter[idempotencyKey]", "query", "An idempotency key"),
    Param("filter[createdAt][from]", "query", "Created at or after this ISO-8601 time"),
    Param("filter[createdAt][to]", "query", "Created at or before this ISO-8601 time"),
    Param("filter[createdAt][period]", "query", "Created within this duration of now, e.g. 1d"),
    Param("page[size]", "query", "Runs a page, 1-100 (default 25)"),
    Param("page[after]", "query", "The `pagination.next` of the previous page"),
    Param("page[before]", "query", "The `pagination.previous` of the next page"),
)


@app.get(
    "/api/v1/runs",
    **route_docs(
        params=LIST_PARAMS, errors=("invalid_status", "invalid_filter", "invalid_limit", "invalid_cursor")
    ),
)
def list_runs() -> Response[Any]:
    env = current_environment(app)
    query = app.current_event.query_string_parameters or {}
    run_filter, page = listing.parse_list_query(query, datetime.now(UTC))
    return json_response(200, listing.list_runs(env, run_filter, page).to_api())


@app.post("/api/v1/runs/<run_id>/replay", **route_docs(errors=("not_found",)))
def replay(run_id: str) -> Response[Any]:
    env = current_environment(app)
    return json_response(200, {"id": engine.replay(env, run_id).id})


@app.get("/api/v3/runs/<run_id>", **route_docs(errors=("not_found",)))
def get_run_v3(run_id: str) -> Response[Any]:
    """The run in the trigger.dev SDK's shape (``runs.retrieve``)."""
    env = current_environment(app)
    return json_response(200, triggers.read_run_v3(env, run_id))


PACKET_ERRORS = ("invalid_packet_path",)


class PacketUrl(BaseModel):
    presignedUrl: str
    storagePath: str | None = None


@app.put("/api/v2/packets/<file>", **route_docs(ok_model=PacketUrl, errors=PACKET_ERRORS))
@app.put("/api/v1/packets/<file>", **route_docs(ok_model=PacketUrl, errors=PACKET_ERRORS))
def packet_upload(file: str) -> Response[Any]:
    """A presigned PUT for a payload packet; a trigger then names it with ``payloadType:
    application/store`` and the ``storagePath`` as its payload."""
    env = current_environment(app)
    url = packets.presigned(env.tenant, file, "put_object")
    return json_response(200, {"presignedUrl": url, "storagePath": unquote(file)})


@app.get("/api/v1/packets/<file>", **route_docs(ok_model=PacketUrl, errors=PACKET_ERRORS))
def packet_download(file: str) -> Response[Any]:
    env = current_environment(app)
    return json_response(200, {"presignedUrl": packets.presigned(env.tenant, file, "get_object")})


@observability.lambda_handler(http=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
