"""What every HTTP handler shares: the resolver, auth, JSON bodies and error responses.

Errors map to responses here and nowhere else, so every route answers the same
``{"error", "code", "issues"?}`` shape, and nothing a client sent becomes a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from pydantic import BaseModel

from sluice import strict_json
from sluice.auth import Environment, authenticate
from sluice.error_codes import ERROR_CODES
from sluice.errors import BadRequest, NotFound, SluiceError, Unprocessable

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


def request_bytes(app: APIGatewayHttpResolver) -> bytes:
    """The raw request body; API Gateway base64-encodes bodies that are not text."""
    event = app.current_event
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise BadRequest("The request body is not valid base64", code="invalid_encoding") from exc


def json_body(app: APIGatewayHttpResolver) -> Any:
    """The request body decoded as strict JSON (see ``sluice.strict_json``).

    Raises:
        BadRequest: ``invalid_json`` for an empty body, bytes that are not UTF-8 or not JSON, and
            numbers JSON cannot hold (NaN, Infinity, 1e400, integers over 4300 digits).
        Unprocessable: ``payload_too_deep`` for a body nested too deep to decode.
    """
    raw = request_bytes(app)
    if not raw:
        raise BadRequest("The request body is empty; expected JSON", code="invalid_json")
    try:
        return strict_json.loads(raw)
    except strict_json.TooDeep as exc:
        raise Unprocessable(f"The request body is not usable: {exc}", code="payload_too_deep") from exc
    except ValueError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from exc


def public_base_url(app: APIGatewayHttpResolver) -> str:
    """The API's base URL as the client reached it (scheme, host and stage), for URLs we hand out."""
    event = app.current_event
    host = event.headers.get("host") or event.request_context.domain_name
    default_scheme = "http" if host.startswith(("127.0.0.1", "localhost")) else "https"
    scheme = event.headers.get("x-forwarded-proto") or default_scheme
    stage = event.request_context.stage
    return f"{scheme}://{host}" + ("" if stage in ("", "$default") else f"/{stage}")
def json_object(app: APIGatewayHttpResolver, code: str) -> dict[str, Any]:
    """The request body, which must be a JSON object; ``code`` names the 400 otherwise."""
    body = json_body(app)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object", code=code)
    return body


# ASCII digits only: str.isdigit() also takes "²" and other digits int() refuses, and a bound on
# the length keeps int() far from its 4300-digit limit.
_QUERY_INT = re.compile(r"[0-9]{1,15}")


def query_int(app: APIGatewayHttpResolver, name: str, code: str, default: int = 0) -> int:
    """A non-negative integer query parameter.

    Raises:
        BadRequest: ``code`` when it is anything else.
    """
    value = app.current_event.get_query_string_value(name)
    if value is None or value == "":
        return default
    if not _QUERY_INT.fullmatch(value):
        message = f"{name} must be a non-negative integer (got {value[:40]!r})"
        raise BadRequest(message, code=code)
    return int(value)


# --- OpenAPI ---------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error response: ``SluiceError.to_body``."""

    error: str
    code: str
    issues: list[dict[str, Any]] | None = None


# Models the routes name, collected as they are declared: ``sluice.openapi`` puts their schemas
# under components.
DOCUMENTED_MODELS: dict[str, type[BaseModel]] = {"ErrorBody": ErrorBody}
# Every route can answer these.
COMMON_ERRORS = ("unauthorized", "route_not_found", "service_unavailable")


def _ref(model: type[BaseModel]) -> dict[str, str]:
    DOCUMENTED_MODELS[model.__name__] = model
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def route_docs(
    *,
    ok: int = 200,
    ok_model: type[BaseModel] | None = None,
    ok_description: str = "OK",
    body: type[BaseModel] | None = None,
    body_type: str = JSON,
    errors: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Keyword arguments for a Powertools route decorator that document it in OpenAPI: the request
    body and success models, and each error status with the codes (``sluice.error_codes``) it
    answers, in the API's error shape. Runtime parsing stays in the handlers (strict JSON, the
    API's own codes); this only describes it.

        @app.post("/api/v1/things", **route_docs(body=ThingRequest, errors=("invalid_request",)))
    """
    ok_content: dict[str, Any] = {"schema": _ref(ok_model)} if ok_model else {"schema": {"type": "object"}}
    responses: dict[int, Any] = {ok: {"description": ok_description, "content": {JSON: ok_content}}}
    by_status: dict[int, list[str]] = {}
    json_errors = ("invalid_json",) if body is not None and body_type == JSON else ()
    for code in (*json_errors, *COMMON_ERRORS, *errors):
        by_status.setdefault(ERROR_CODES[code][0], []).append(code)
    error_ref = _ref(ErrorBody)
    for status, codes in sorted(by_status.items()):
        schema = {"allOf": [error_ref, {"properties": {"code": {"enum": codes}}}]}
        description = "; ".join(f"`{c}`: {ERROR_CODES[c][1]}" for c in codes)
        responses[status] = {"description": description, "content": {JSON: {"schema": schema}}}
    docs: dict[str, Any] = {"responses": responses}
    if body is not None:
        request = {"required": True, "content": {body_type: {"schema": _ref(body)}}}
        docs["openapi_extensions"] = {"requestBody": request}
    return docs
