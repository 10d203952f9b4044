"""The API's OpenAPI 3.1 document, generated from the functions' resolvers.

Each function has its own Powertools resolver; Powertools documents a resolver's routes (paths,
parameters, and what ``sluice.api.route_docs`` declares), and this merges them into one document
and adds the schemas of the models the routes name. ``python -m devstack.openapi`` writes it for
the stack's template; ``openapi.json`` at the top of the repository is that output.

What makes a generated client good is done here, for every route alike, so that a new route gets
it without asking: readable operationIds and a tag per product area (from the handler's name and
the path), camelCase path parameters as the README writes them (the handlers' arguments keep their
Python names: only the document's templates change), one ``Error`` schema and one shared error
response per status, and ``servers``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer, SecurityScheme
from pydantic.json_schema import models_json_schema

from sluice.api import (
    API_KEY,
    DOCUMENTED_MODELS,
    ERROR_CODES_EXTENSION,
    JSON,
    PARAMETERS_EXTENSION,
    STREAM_TOKEN,
    STREAM_TOKEN_QUERY,
    Error,
    error_response_name,
)

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


SERVERS = [
    {"url": "/", "description": "Where this document is served from (devstack: /api/openapi.json)"},
    {"url": "http://127.0.0.1:3030", "description": "devstack on its default port"},
    {
        "url": "https://{apiId}.execute-api.{region}.amazonaws.com",
        "description": "The deployed HttpApi (its $default stage)",
        "variables": {
            "apiId": {"default": "abcdef1234", "description": "The HttpApi's id (the stack's ApiUrl output)"},
            "region": {"default": "us-east-1"},
        },
    },
]
# The product area of a path, by its prefix and the first segment after the version; a resource
# not listed is its own area (``/api/v1/queues`` is "Queues").
TAGS = {
    ("api", "tasks"): "Runs",
    ("api", "runs"): "Runs",
    ("api", "batches"): "Batches",
    ("api", "sessions"): "Sessions",
    ("realtime", "streams"): "Streams",
    ("realtime", "sessions"): "Session channels",
}
TAG_DESCRIPTIONS = {
    "Runs": "Trigger a task, read a run, and the worker's run lifecycle",
    "Batches": "Batch triggers: create a batch, stream its items as NDJSON, read its status",
    "Sessions": "Durable chat sessions and their conversation snapshots",
    "Streams": "Realtime streams of a run: mint credentials, append, close, read",
    "Session channels": "A session's realtime channels, `in` (user to agent) and `out` (agent to user)",
    "Console": "The web console's page and files (no credentials)",
}
_VERSION = re.compile(r"v[0-9]+")
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


def document(resolvers: Iterable[APIGatewayHttpResolver]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for app in resolvers:
        schema = app.get_openapi_schema(
            title=TITLE, version=VERSION, openapi_version=OPENAPI_VERSION, security_schemes=SECURITY_SCHEMES
        )
        for path, operations in schema.model_dump(by_alias=True, exclude_none=True, mode="json")[
            "paths"
        ].items():
            for method, operation in operations.items():
                _add_declared_parameters(operation)
                _name(operation, path, method)
                _camel_case_path_parameters(operation)
                _share_error_responses(operation)
            paths.setdefault(camel_case_path(path), {}).update(operations)
    _version_colliding_ids(paths)
    models = sorted(DOCUMENTED_MODELS.values(), key=lambda model: model.__name__)
    _, defs = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    operations = [op for path_item in paths.values() for op in path_item.values()]
    tags = sorted({tag for op in operations for tag in op["tags"]})
    statuses = sorted({int(s) for op in operations for s in op["responses"] if int(s) >= 400})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": TITLE, "version": VERSION},
        "servers": SERVERS,
        "tags": [{"name": tag, **_description(TAG_DESCRIPTIONS.get(tag))} for tag in tags],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": defs.get("$defs", {}),
            "responses": {
                error_response_name(status): {
                    "description": f"{status}: the error's `code` says which",
                    "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{Error.__name__}"}}},
                }
                for status in statuses
            },
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


def _description(text: str | None) -> dict[str, str]:
    return {"description": text} if text else {}


def camel_case(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def camel_case_path(path: str) -> str:
    """``/api/v1/tasks/{task_id}/trigger`` as the README writes it: ``{taskId}``."""
    return _PATH_PARAMETER.sub(lambda match: "{" + camel_case(match.group(1)) + "}", path)


def _area(path: str) -> tuple[str, int, str]:
    """The prefix, version and resource of a path: ``("api", 1, "tasks")``; a path without a
    version is version 0 and its resource is its first segment."""
    segments = path.strip("/").split("/")
    at = next((i for i, s in enumerate(segments) if _VERSION.fullmatch(s)), None)
    if at is None or at + 1 == len(segments):
        return segments[0], 0, segments[0]
    return segments[0], int(segments[at][1:]), segments[at + 1]


def _singular(noun: str) -> str:
    if noun.endswith(("ches", "shes", "sses", "xes")):
        return noun[:-2]
    return noun[:-1] if noun.endswith("s") else noun


def operation_id(handler: str, path: str) -> str:
    """A readable operationId from the handler's name and the path: the path's resource goes after
    the handler's verb unless the name says it already (``trigger`` on ``/api/v1/tasks/...`` is
    ``triggerTask``, ``get_run`` is ``getRun``). A name that reads badly this way is given with
    ``route_docs(operation_id=...)``."""
    _, _, resource = _area(path)
    noun = _singular(resource)
    words = handler.split("_")
    if noun not in words and resource not in words:
        words.insert(1, noun)
    return camel_case("_".join(words))


def _name(operation: dict[str, Any], path: str, method: str) -> None:
    """operationId, tags and summary. Powertools names an operation ``<handler><path>_<method>``
    (non-word characters as ``_``) unless the route named it: such a name is remade here."""
    machine_suffix = re.sub(r"\W", "_", path) + "_" + method
    named = operation["operationId"]
    if named.endswith(machine_suffix):
        named = operation_id(named[: -len(machine_suffix)], path)
    prefix, _, resource = _area(path)
    operation["operationId"] = named
    operation["tags"] = [TAGS.get((prefix, resource), resource[:1].upper() + resource[1:])]
    operation["summary"] = camel_case_path(operation["summary"])


def _camel_case_path_parameters(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            parameter["name"] = camel_case(parameter["name"])
            # Powertools' schema of a handler argument is only a title: a path segment is a string.
            parameter["schema"] = {
                "type": "string",
                **{k: v for k, v in parameter["schema"].items() if k != "title"},
            }


def _share_error_responses(operation: dict[str, Any]) -> None:
    """Error responses are references to the shared ones, described by the route's codes
    (Powertools adds an empty ``content`` beside a ``$ref``, which a reference may not have)."""
    responses = operation["responses"]
    for status, response in responses.items():
        if "$ref" in response:
            responses[status] = {"$ref": response["$ref"], "description": response["description"]}
    codes = operation.get(ERROR_CODES_EXTENSION, {})
    # A route may drop a status route_docs derived (the snapshot's 400): its codes go too.
    operation[ERROR_CODES_EXTENSION] = {s: c for s, c in codes.items() if s in responses}


def _version_colliding_ids(paths: dict[str, dict[str, Any]]) -> None:
    """Two versions of a route (``/api/v2/batches`` beside ``/api/v3/batches``) would share an
    operationId: all but the newest get their version as a suffix (``createBatchV2``)."""
    by_id: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for path, operations in paths.items():
        for operation in operations.values():
            by_id.setdefault(operation["operationId"], []).append((_area(path)[1], operation))
    for named, found in by_id.items():
        newest = max(version for version, _ in found)
        for version, operation in found:
            if len(found) > 1 and version != newest:
                operation["operationId"] = f"{named}V{version}"
