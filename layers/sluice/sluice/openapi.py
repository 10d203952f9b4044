"""The API's OpenAPI 3.1 document, generated from the functions' resolvers.

Each function has its own Powertools resolver; Powertools documents a resolver's routes (paths,
parameters, and what ``sluice.api.route_docs`` declares), and this merges them into one document
and adds the schemas of the models the routes name. ``python -m devstack.openapi`` writes it for
the stack's template; ``openapi.json`` at the top of the repository is that output.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer, SecurityScheme
from pydantic.json_schema import models_json_schema

from sluice.api import API_KEY, DOCUMENTED_MODELS, PARAMETERS_EXTENSION, STREAM_TOKEN, STREAM_TOKEN_QUERY

TITLE = "Sluice"
VERSION = "1"
OPENAPI_VERSION = "3.1.0"
SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    API_KEY: HTTPBearer(description="An API key (`Authorization: Bearer sk_...`)"),
    STREAM_TOKEN: HTTPBearer(description="A stream token, as a mint answered it"),
    STREAM_TOKEN_QUERY: APIKey.model_validate(
        {"in": APIKeyIn.query, "name": "token", "description": "A stream token in the query (EventSource)"}
    ),
}


def document(resolvers: Iterable[APIGatewayHttpResolver]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for app in resolvers:
        schema = app.get_openapi_schema(
            title=TITLE, version=VERSION, openapi_version=OPENAPI_VERSION, security_schemes=SECURITY_SCHEMES
        )
        for path, operations in schema.model_dump(by_alias=True, exclude_none=True, mode="json")[
            "paths"
        ].items():
            for operation in operations.values():
                _add_declared_parameters(operation)
            paths.setdefault(path, {}).update(operations)
    models = sorted(DOCUMENTED_MODELS.values(), key=lambda model: model.__name__)
    _, defs = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": TITLE, "version": VERSION},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                name: scheme.model_dump(by_alias=True, exclude_none=True, mode="json")
                for name, scheme in SECURITY_SCHEMES.items()
            },
        },
        "security": [{API_KEY: []}],
    }


def _add_declared_parameters(operation: dict[str, Any]) -> None:
    """The query and header parameters ``route_docs`` declared, after the path's; a declared path
    parameter's schema goes into the one Powertools made of the handler's signature."""
    declared = operation.pop(PARAMETERS_EXTENSION, [])
    paths = {p["name"]: p for p in declared if p["in"] == "path"}
    parameters = [
        {**p, "schema": {**p["schema"], **paths[p["name"]]["schema"]}} if p["name"] in paths else p
        for p in operation.get("parameters", [])
    ]
    if declared:
        operation["parameters"] = [*parameters, *(p for p in declared if p["in"] != "path")]
