"""Run lifecycle for workers: POST /api/v1/runs/{runId}/start|heartbeat|complete|fail;
POST /api/v2/runs/{runId}/cancel; and the queues' limits: GET /api/v1/queues,
PUT /api/v1/queues/{name}."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import observability, run_cancel, streams
from sluice.api import (
    current_environment,
    json_body,
    json_response,
    make_resolver,
    request_bytes,
    route_docs,
)
from sluice.engine import lifecycle, queues
from sluice.sessions import realtime

app = make_resolver()
# A run that finishes ends its streams: their readers get `event: end`.
lifecycle.final_listeners.append(lambda run: streams.close_run_streams(run.id))
# A retried attempt's worker may still be alive: its stream writes are refused from now on.
lifecycle.retry_listeners.append(lambda run: streams.fence_run_streams(run.id, run.attempt + 1))
# A session's run that ends an attempt (any way) can no longer write the session's out channel.
lifecycle.final_listeners.append(realtime.fence_session_out)
lifecycle.retry_listeners.append(realtime.fence_session_out)


# What every lifecycle call can answer; the lease-holding calls add theirs.
BODY_ERRORS = ("invalid_encoding", "invalid_body", "invalid_request", "not_found", "run_finished")
LEASE_ERRORS = (*BODY_ERRORS, "stale_lease", "run_canceled")
START_DOCS = route_docs(
    body=lifecycle.StartBody,
    body_required=False,  # a start may bring no body
    errors=(
        *BODY_ERRORS,
        "run_already_started",
        "run_not_due",
        "run_not_startable",
        "run_expired",
        "concurrency_limited",
    ),
)


@app.post("/api/v1/runs/<run_id>/start", **START_DOCS)
def start(run_id: str) -> Response[Any]:
    env = current_environment(app)
    # The body is optional here: a worker that brings no lease token of its own sends none. (The
    # raw bytes: Powertools' decoded_body decodes them as UTF-8 and raises on anything else.)
    raw = json_body(app) if request_bytes(app) else {}
    body = lifecycle.parse_body(lifecycle.StartBody, raw)
    return json_response(200, lifecycle.start(env, run_id, body).to_api())


@app.post("/api/v1/runs/<run_id>/heartbeat", **route_docs(body=lifecycle.HeartbeatBody, errors=LEASE_ERRORS))
def heartbeat(run_id: str) -> Response[Any]:
    env = current_environment(app)
    body = lifecycle.parse_body(lifecycle.HeartbeatBody, json_body(app))
    lease = lifecycle.heartbeat(env, run_id, body.leaseToken)
    return json_response(200, {"attempt": lease.run.attempt, "leaseExpiresAt": lease.expires_at.isoformat()})


@app.post(
    "/api/v1/runs/<run_id>/complete",
    **route_docs(body=lifecycle.CompleteBody, errors=(*LEASE_ERRORS, "output_too_large")),
)
def complete(run_id: str) -> Response[Any]:
    env = current_environment(app)
    body = lifecycle.parse_body(lifecycle.CompleteBody, json_body(app))
    return json_response(200, lifecycle.complete(env, run_id, body).to_api())


@app.post("/api/v1/runs/<run_id>/fail", **route_docs(body=lifecycle.FailBody, errors=LEASE_ERRORS))
def fail(run_id: str) -> Response[Any]:
    env = current_environment(app)
    body = lifecycle.parse_body(lifecycle.FailBody, json_body(app))
    return json_response(200, lifecycle.fail(env, run_id, body).to_api())


@app.post("/api/v2/runs/<run_id>/cancel", **route_docs(errors=("not_found", "run_finished")))
def cancel(run_id: str) -> Response[Any]:
    env = current_environment(app)
    return json_response(200, {"id": run_cancel.cancel_run(env, run_id).id})


@app.get("/api/v1/queues", **route_docs())
def list_queues() -> Response[Any]:
    env = current_environment(app)
    return json_response(200, {"data": queues.list_queues(env)})


@app.put(
    "/api/v1/queues/<name>",
    **route_docs(body=queues.QueueBody, errors=("invalid_encoding", "invalid_body", "invalid_request")),
)
def set_queue(name: str) -> Response[Any]:
    env = current_environment(app)
    body = lifecycle.parse_body(queues.QueueBody, json_body(app))
    return json_response(200, queues.set_limit(env, name, body.concurrencyLimit))


@observability.lambda_handler(http=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
