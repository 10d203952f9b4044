"""What every HTTP handler shares: the resolver, auth, JSON bodies and error responses.

Errors map to responses here and nowhere else, so every route answers the same
``{"error", "code", "issues"?}`` shape, and nothing a client sent becomes a 500.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from sluice.auth import Environment, authenticate
from sluice.errors import BadRequest, NotFound, SluiceError

logger = Logger(service="sluice")

JSON = "application/json"


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status, content_type=JSON, body=json.dumps(body, default=str), headers=headers or {}
    )


def error_response(exc: SluiceError) -> Response[Any]:
    return json_response(exc.status, exc.to_body(), exc.headers)


def make_resolver() -> APIGatewayHttpResolver:
    """A resolver whose errors all come out in the API's error shape."""
    app = APIGatewayHttpResolver()

    @app.exception_handler(SluiceError)
    def _sluice_error(exc: SluiceError) -> Response[Any]:
        if exc.status >= 500:
            logger.warning("dependency unavailable", extra={"code": exc.code, "reason": exc.message})
        return error_response(exc)

    @app.not_found
    def _no_route(_: NotFoundError) -> Response[Any]:
        return error_response(NotFound("No such route", code="route_not_found"))

    return app


def current_environment(app: APIGatewayHttpResolver) -> Environment:
    return authenticate(app.current_event.headers)


def json_body(app: APIGatewayHttpResolver) -> Any:
    """The request body decoded as JSON (API Gateway may have base64-encoded it)."""
    raw = app.current_event.decoded_body
    if not raw:
        raise BadRequest("The request body is empty; expected JSON", code="invalid_json")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from exc


def public_base_url(app: APIGatewayHttpResolver) -> str:
    """The API's base URL as the client reached it (scheme, host and stage), for URLs we hand out."""
    event = app.current_event
    host = event.headers.get("host") or event.request_context.domain_name
    default_scheme = "http" if host.startswith(("127.0.0.1", "localhost")) else "https"
    scheme = event.headers.get("x-forwarded-proto") or default_scheme
    stage = event.request_context.stage
    return f"{scheme}://{host}" + ("" if stage in ("", "$default") else f"/{stage}")
