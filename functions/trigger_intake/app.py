"""Trigger intake: POST /api/v1/tasks/{taskId}/trigger and GET /api/v1/runs/{runId}."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import engine
from sluice.api import current_environment, json_body, json_response, logger, make_resolver

app = make_resolver()


@app.post("/api/v1/tasks/<task_id>/trigger")
def trigger(task_id: str) -> Response[Any]:
    env = current_environment(app)
    body = engine.parse_trigger_body(json_body(app))
    result = engine.trigger(env, task_id, body)
    return json_response(200, {"id": result.run.id, "isCached": result.is_cached})


@app.get("/api/v1/runs/<run_id>")
def get_run(run_id: str) -> Response[Any]:
    env = current_environment(app)
    return json_response(200, engine.get_run(env, run_id).to_api())


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
