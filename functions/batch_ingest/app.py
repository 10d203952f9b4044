"""Streaming batches over HTTP: phase 1, phase 2, payload uploads and status.

Lambda takes at most 6 MB per request (less once API Gateway base64-encodes an NDJSON body), so
one phase-2 request carries a few MB of items: the client SDK splits larger batches over several
requests, and batches beyond that go through a staged S3 upload (``"staged": true``).
"""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import batches
from sluice.api import (
    current_environment,
    json_body,
    json_object,
    json_response,
    logger,
    make_resolver,
    query_int,
    request_bytes,
)

app = make_resolver()


@app.post("/api/v3/batches")
def create_batch() -> Response[Any]:
    env = current_environment(app)
    request = batches.parse_create_request(json_body(app))
    result = batches.create_batch(env, request)
    return json_response(200 if result.is_cached else 202, result.to_api())


@app.post("/api/v3/batches/<batch_id>/items")
def stream_items(batch_id: str) -> Response[Any]:
    event = app.current_event
    batches.require_ndjson(event.headers)
    env = current_environment(app)
    result = batches.ingest_items(env, batch_id, batches.parse_body(request_bytes(app)))
    return json_response(200, result.model_dump())


@app.post("/api/v3/batches/<batch_id>/payloads")
def payload_uploads(batch_id: str) -> Response[Any]:
    env = current_environment(app)
    indices = json_object(app, code="invalid_indices").get("indices")
    return json_response(200, {"uploads": batches.payload_uploads(env, batch_id, indices)})


@app.get("/api/v3/batches/<batch_id>")
def get_batch(batch_id: str) -> Response[Any]:
    env = current_environment(app)
    return json_response(200, batches.get_status(env, batch_id, query_int(app, "runsOffset")))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
