"""Streaming batches over HTTP: phase 1, phase 2, payload uploads and status.

Lambda takes at most 6 MB per request (less once API Gateway base64-encodes an NDJSON body), so
one phase-2 request carries a few MB of items: the client SDK splits larger batches over several
requests, and batches beyond that go through a staged S3 upload (``"staged": true``).
"""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import batches, observability
from sluice.api import (
    BYTES_SCHEMA,
    OCTETS,
    current_environment,
    json_body,
    json_object,
    json_response,
    make_resolver,
    query_int,
    request_bytes,
    route_docs,
)
from sluice.batches.models import (
    BatchItem,
    CreateBatchRequest,
    CreateBatchResponse,
    IngestResult,
    PayloadUploadsRequest,
)
from sluice.errors import PayloadTooLarge

# One NDJSON line of phase 2 is one item; OpenAPI describes the line.
NDJSON = "application/x-ndjson"

app = make_resolver()


CREATE_ERRORS = (
    "invalid_run_count",
    "batch_too_large",
    "idempotency_key_too_long",
    "invalid_body",
    "invalid_request",
    "invalid_idempotency_ttl",
    "batch_rate_limited",
)
ITEMS_ERRORS = (
    "invalid_encoding",
    "empty_body",
    "invalid_ndjson",
    "batch_not_found",
    "batch_not_pending",
    "batch_unexpected_state",
    "batch_item_too_large",
    "unsupported_media_type",
    "invalid_batch_item",
    "too_many_lines",
    "time_budget_exceeded",
)


@app.post(
    "/api/v3/batches",
    **route_docs(ok=202, ok_model=CreateBatchResponse, body=CreateBatchRequest, errors=CREATE_ERRORS),
)
def create_batch() -> Response[Any]:
    env = current_environment(app)
    request = batches.parse_create_request(json_body(app))
    result = batches.create_batch(env, request)
    return json_response(200 if result.is_cached else 202, result.to_api())


@app.post(
    "/api/v3/batches/<batch_id>/items",
    **route_docs(ok_model=IngestResult, body={NDJSON: BatchItem, OCTETS: BYTES_SCHEMA}, errors=ITEMS_ERRORS),
)
def stream_items(batch_id: str) -> Response[Any]:
    event = app.current_event
    batches.require_ndjson(event.headers)
    env = current_environment(app)
    remaining_s = app.lambda_context.get_remaining_time_in_millis() / 1000
    lines = batches.parse_body(request_bytes(app))
    try:
        result = batches.ingest_items(env, batch_id, lines, remaining_s=remaining_s)
    except PayloadTooLarge as exc:
        answer = None
        if exc.code == "time_budget_exceeded":
            answer = batches.answer_out_of_time(event.headers, batches.get_status(env, batch_id))
        if answer is None:
            raise
        return json_response(200, answer)
    return json_response(200, result.model_dump())


@app.post(
    "/api/v3/batches/<batch_id>/payloads",
    **route_docs(
        body=PayloadUploadsRequest,
        errors=("invalid_indices", "batch_not_found", "batch_not_pending"),
        operation_id="createBatchPayloadUploads",
    ),
)
def payload_uploads(batch_id: str) -> Response[Any]:
    env = current_environment(app)
    indices = json_object(app, code="invalid_indices").get("indices")
    return json_response(200, {"uploads": batches.payload_uploads(env, batch_id, indices)})


@app.get("/api/v3/batches/<batch_id>", **route_docs(errors=("batch_not_found", "invalid_runs_offset")))
def get_batch(batch_id: str) -> Response[Any]:
    env = current_environment(app)
    return json_response(
        200, batches.get_status(env, batch_id, query_int(app, "runsOffset", code="invalid_runs_offset"))
    )


@observability.lambda_handler(http=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
