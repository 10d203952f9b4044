"""What every HTTP handler shares: the resolver, auth, JSON bodies and error responses.

Errors map to responses here and nowhere else, so every route answers the same
``{"error", "code", "issues"?}`` shape, and nothing a client sent becomes a 500. What is not a
``SluiceError`` (AWS refused us, a bug) is a 500 ``internal_error`` in that shape too, its cause
and AWS error code in the log only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from pydantic import BaseModel

from sluice import aws, observability, strict_json
from sluice.auth import Environment, authenticate
from sluice.error_codes import ERROR_CODES
from sluice.errors import (
    BadRequest,
    InternalError,
    NotFound,
    SluiceError,
    UnsupportedMediaType,
)

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

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[Any]:
        if isinstance(exc, ServiceError):
            raise exc  # Powertools' own HTTP errors: it answers them itself
        # Not the client's doing, or it would have been a SluiceError: AWS refused us (access, a
        # misconfigured resource) or a bug. The cause goes to the log, the client gets the shape.
        # The log line carries the request id too (Powertools' function_request_id).
        cause = {"errorType": type(exc).__name__, "awsErrorCode": aws.error_code_in(exc)}
        logger.exception("unexpected error", extra=cause)
        request_id = getattr(app.lambda_context, "aws_request_id", None)
        return error_response(InternalError(f"Internal error, logged as request {request_id}"))

    return app


def current_environment(app: APIGatewayHttpResolver) -> Environment:
    env = authenticate(app.current_event.headers)
    observability.tenant_keys(env.org_id, env.env_id)
    return env


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
        UnsupportedMediaType: a ``Content-Type`` that is not JSON (``application/json`` or a
            ``+json`` type); a request without one is read as JSON.
        BadRequest: ``invalid_json`` for an empty body, bytes that are not UTF-8 or not JSON, and
            numbers JSON cannot hold (NaN, Infinity, 1e400, integers over 4300 digits).
        Unprocessable: ``payload_too_deep`` for a body nested too deep to decode.
    """
    media = (app.current_event.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media and media != JSON and not media.endswith("+json"):
        raise UnsupportedMediaType(f"The request body must be {JSON}, not {media}")
    raw = request_bytes(app)
    if not raw:
        raise BadRequest("The request body is empty; expected JSON", code="invalid_json")
    return strict_json.parse(raw, "The request body")


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


class Error(BaseModel):
    """Every error response: ``SluiceError.to_body``."""

    error: str
    code: str
    issues: list[dict[str, Any]] | None = None


# Models the routes name, collected as they are declared: ``sluice.openapi`` puts their schemas
# under components.
DOCUMENTED_MODELS: dict[str, type[BaseModel]] = {"Error": Error}
# Every route can answer these.
COMMON_ERRORS = ("unauthorized", "route_not_found", "internal_error", "service_unavailable")
# The security schemes a route may name (``sluice.openapi`` defines them); the document's default
# is the API key.
API_KEY = "apiKey"
STREAM_TOKEN = "streamToken"
STREAM_TOKEN_QUERY = "streamTokenQuery"
# Where route_docs leaves the query and header parameters for ``sluice.openapi`` to add: Powertools
# writes an operation's ``parameters`` itself (the path's), over anything declared beside them.
PARAMETERS_EXTENSION = "x-sluice-parameters"
# An operation's error codes by status, which its responses list in prose only: every error
# response is the one shared ``Error`` response of its status (``components/responses``), so that a
# generated client has one error model, not one per route and status.
ERROR_CODES_EXTENSION = "x-error-codes"

# What a request body of one media type is: a model, a JSON schema, or None for any JSON value.
BodySchema = type[BaseModel] | dict[str, Any] | None
# Bytes as they come: NDJSON sent as ``application/octet-stream``, which code generators keep (they
# skip a route whose only body is a media type they do not know, as NDJSON is to most).
OCTETS = "application/octet-stream"
BYTES_SCHEMA: dict[str, Any] = {"type": "string", "format": "binary"}


@dataclass(frozen=True)
class Param:
    """A query or header parameter that a handler reads itself (the handlers parse their own
    input, so Powertools sees only the path's parameters); a ``path`` one adds its pattern to the
    path parameter Powertools documents."""

    name: str
    where: Literal["query", "header", "path"]
    description: str
    pattern: str | None = None

    def to_openapi(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.pattern:
            schema["pattern"] = self.pattern
        return {
            "name": self.name,
            "in": self.where,
            "required": self.where == "path",
            "description": self.description,
            "schema": schema,
        }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    DOCUMENTED_MODELS[model.__name__] = model
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def error_response_name(status: int) -> str:
    """The name of the shared error response of a status: ``BadRequest``, ``NotFound``, ..."""
    return re.sub(r"\W", "", HTTPStatus(status).phrase.title())


def _codes_by_status(codes: tuple[str, ...]) -> dict[int, list[str]]:
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(ERROR_CODES[code][0], []).append(code)
    return dict(sorted(by_status.items()))


def _error_responses(by_status: dict[int, list[str]]) -> dict[int, Any]:
    """A reference to the shared response of each status, described by the codes of this route."""
    return {
        status: {
            "$ref": f"#/components/responses/{error_response_name(status)}",
            "description": "; ".join(f"`{c}`: {ERROR_CODES[c][1]}" for c in listed),
        }
        for status, listed in by_status.items()
    }


def route_docs(
    *,
    ok: int = 200,
    ok_model: type[BaseModel] | None = None,
    ok_type: str = JSON,
    ok_description: str = "OK",
    ok_headers: Mapping[str, str] | None = None,
    body: BodySchema | Mapping[str, BodySchema] = None,
    body_required: bool = True,
    params: tuple[Param, ...] = (),
    security: tuple[str, ...] = (),
    errors: tuple[str, ...] = (),
    public: bool = False,
    operation_id: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for a Powertools route decorator that document it in OpenAPI. Runtime
    parsing stays in the handlers (strict JSON, the API's own codes); this only describes it.

    Args:
        ok, ok_model, ok_type, ok_description, ok_headers: the success status, its body's model
            (else any object, or a string when ``ok_type`` is not JSON), media type, description,
            and response headers (name -> description).
        body: a model (a JSON body), or media type -> model or JSON schema, where None is any JSON
            value: a route that takes JSON or NDJSON names both. A JSON body adds ``invalid_json``
            to the errors.
        body_required: False for a route that also takes no body.
        params: the query and header parameters the handler reads.
        security: the schemes (``API_KEY``, ``STREAM_TOKEN``, ...) of which any one authorises the
            call; empty for the document's default, the API key.
        errors: each error code (``sluice.error_codes``) the route answers besides COMMON_ERRORS.
        public: a route that needs no credentials and calls no dependency (the console's files):
            an empty security requirement, and only ``route_not_found`` of the common errors.
        operation_id: the operation's name when ``sluice.openapi`` cannot make a good one from the
            handler's name and the path (see ``sluice.openapi.operation_id``).

        @app.post("/api/v1/things", **route_docs(body=ThingRequest, errors=("invalid_request",)))
    """
    ok_schema = _ref(ok_model) if ok_model else {"type": "object" if ok_type == JSON else "string"}
    success: dict[str, Any] = {"description": ok_description, "content": {ok_type: {"schema": ok_schema}}}
    if ok_headers:
        success["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in ok_headers.items()
        }
    bodies = body if isinstance(body, Mapping) else ({} if body is None else {JSON: body})
    json_errors = ("invalid_json",) if JSON in bodies else ()
    common = ("route_not_found",) if public else COMMON_ERRORS
    by_status = _codes_by_status((*json_errors, *common, *errors))
    responses = {ok: success, **_error_responses(by_status)}
    docs: dict[str, Any] = {"responses": responses}
    extensions: dict[str, Any] = {ERROR_CODES_EXTENSION: {str(s): codes for s, codes in by_status.items()}}
    if bodies:
        content = {media: {"schema": _body_schema(model)} for media, model in bodies.items()}
        extensions["requestBody"] = {"required": body_required, "content": content}
    if params:
        extensions[PARAMETERS_EXTENSION] = [param.to_openapi() for param in params]
    docs["openapi_extensions"] = extensions
    if public:
        docs["security"] = [{}]
    elif security:
        docs["security"] = [{scheme: []} for scheme in security]
    if operation_id:
        docs["operation_id"] = operation_id
    return docs


def _body_schema(model: BodySchema) -> dict[str, Any]:
    if model is None:
        return {}
    return model if isinstance(model, dict) else _ref(model)
