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
from pydantic.json_schema import models_json_schema

from sluice.api import DOCUMENTED_MODELS

TITLE = "Sluice"
VERSION = "1"
OPENAPI_VERSION = "3.1.0"


def document(resolvers: Iterable[APIGatewayHttpResolver]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for app in resolvers:
        schema = app.get_openapi_schema(title=TITLE, version=VERSION, openapi_version=OPENAPI_VERSION)
        for path, operations in schema.model_dump(by_alias=True, exclude_none=True, mode="json")[
            "paths"
        ].items():
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
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
    }
