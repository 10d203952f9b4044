"""Trigger intake: POST /api/v1/tasks/{taskId}/trigger and GET /api/v1/runs/{runId}."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import triggers
from sluice.api import current_environment, json_body, json_response, logger, make_resolver, route_docs
from sluice.engine import RunView, TriggerBody, parse_task_id

app = make_resolver()


TRIGGER_ERRORS = (
    "invalid_task_id",
    "idempotency_key_too_long",
    "payload_too_large",
    "metadata_too_large",
    "invalid_request",
    "invalid_body",
    "invalid_delay",
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


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
