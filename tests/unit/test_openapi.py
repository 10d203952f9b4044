"""The OpenAPI document, the README's error table and the codes the code raises agree."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from pydantic import BaseModel

from devstack.openapi import render
from devstack.template import Stack
from sluice.api import JSON, STREAM_TOKEN, Param, route_docs
from sluice.error_codes import ERROR_CODES, readme_table
from sluice.openapi import document

ROOT = Path(__file__).resolve().parents[2]


def test_committed_openapi_document_is_what_the_handlers_generate() -> None:
    committed = (ROOT / "openapi.json").read_text(encoding="utf-8")
    assert committed == render(), (
        "openapi.json is stale: run .venv/bin/python -m devstack.openapi > openapi.json"
    )


def test_every_http_route_of_the_template_is_documented() -> None:
    document = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    documented = {
        (method.upper(), re.sub(r"\{\w+\}", "{}", path))
        for path, operations in document["paths"].items()
        for method in operations
    }
    routes = {
        (event.properties["Method"].upper(), re.sub(r"\{\w+\}", "{}", event.properties["Path"]))
        for spec in Stack().functions()
        for event in spec.events
        if event.type == "HttpApi"
    }
    assert routes and routes <= documented


class Line(BaseModel):
    data: int


def test_route_docs_describes_an_optional_body_of_two_media_types_with_its_parameters() -> None:
    app = APIGatewayHttpResolver()
    docs = route_docs(
        body={JSON: None, "application/x-ndjson": Line},
        body_required=False,
        params=(Param("X-Part-Id", "header", "dedup"), Param("after", "query", "cursor", pattern="^[0-9]+$")),
        security=(STREAM_TOKEN,),
        errors=("invalid_part_id",),
    )
    app.post("/things/<thing_id>/lines", **docs)(lambda thing_id: None)
    operation = document([app])["paths"]["/things/{thingId}/lines"]["post"]
    assert operation["requestBody"] == {
        "required": False,
        "content": {
            "application/json": {"schema": {}},
            "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/Line"}},
        },
    }
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [
        ("thingId", "path"),
        ("X-Part-Id", "header"),
        ("after", "query"),
    ]
    assert operation["parameters"][2]["schema"] == {"type": "string", "pattern": "^[0-9]+$"}
    assert operation["security"] == [{"streamToken": []}]
    assert "invalid_json" in operation["responses"]["400"]["description"]  # a JSON body can be invalid JSON


def test_every_security_requirement_names_a_scheme_of_the_document() -> None:
    document = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    schemes = set(document["components"]["securitySchemes"])
    required = {name for requirement in document["security"] for name in requirement}
    for operations in document["paths"].values():
        for operation in operations.values():
            required |= {name for requirement in operation.get("security", []) for name in requirement}
    assert required == schemes


def test_the_streams_routes_are_described_as_they_answer() -> None:
    paths = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))["paths"]
    stream = "/realtime/v1/streams/{runId}/{key}"
    append = paths[f"{stream}/append"]["post"]
    assert set(append["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert append["security"] == [{"streamToken": []}]
    assert "X-Part-Id" in [p["name"] for p in append["parameters"]]
    read = paths[stream]["get"]
    assert set(read["responses"]["200"]["content"]) == {"text/event-stream"}
    assert "x-stream-cursor" in read["responses"]["200"]["headers"]
    assert {"Last-Event-ID", "lastEventId", "token"} <= {p["name"] for p in read["parameters"]}
    answers = {
        (stream, "put"): "MintAnswer",
        (f"{stream}/append", "post"): "AppendAnswer",
        (f"{stream}/close", "post"): "CloseAnswer",
        (f"{stream}/records", "get"): "RecordsAnswer",
        ("/realtime/v1/sessions/{session}/{io}/append", "post"): "ChannelAppendAnswer",
    }
    for (path, method), model in answers.items():
        schema = paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}, (path, method)
    start = paths["/api/v1/runs/{runId}/start"]["post"]
    assert start["requestBody"]["required"] is False


def test_readme_error_table_is_the_catalogue() -> None:
    assert readme_table() in (ROOT / "README.md").read_text(encoding="utf-8")


def _class_codes(statement: ast.stmt) -> list[object]:
    """``code = "x"`` or ``status, code = 400, "x"`` in a class body."""
    if not isinstance(statement, ast.Assign | ast.AnnAssign) or statement.value is None:
        return []
    targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
    pairs: list[tuple[ast.expr, ast.expr]] = []
    for target in targets:
        if isinstance(target, ast.Tuple) and isinstance(statement.value, ast.Tuple):
            pairs += zip(target.elts, statement.value.elts, strict=False)
        else:
            pairs.append((target, statement.value))
    return [
        value.value
        for target, value in pairs
        if isinstance(target, ast.Name) and target.id == "code" and isinstance(value, ast.Constant)
    ]


def _is_model(node: ast.ClassDef) -> bool:
    """A pydantic model: its ``code`` field is data (a failed run's error code, defaulting to
    ``TASK_ERROR``), not an error the API answers."""
    return any(isinstance(base, ast.Name) and base.id == "BaseModel" for base in node.bases)


def _codes_in_source() -> set[str]:
    """Every error code the layer and the handlers name: ``code="..."`` arguments and the
    ``code = "..."`` class attributes of error classes."""
    found: set[str] = set()
    files = [*(ROOT / "layers/sluice/sluice").rglob("*.py"), *(ROOT / "functions").rglob("app.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "code" and isinstance(node.value, ast.Constant):
                found.add(node.value.value)
            elif isinstance(node, ast.ClassDef) and not _is_model(node):
                for statement in node.body:
                    found.update(_class_codes(statement))
    return {code for code in found if isinstance(code, str)}


def test_every_code_the_code_raises_is_in_the_catalogue() -> None:
    codes = _codes_in_source()
    assert {"invalid_json", "batch_rate_limited", "service_unavailable"} <= codes  # the scan finds codes
    assert codes - set(ERROR_CODES) == set()


def test_every_documented_error_code_is_in_the_catalogue_with_its_status() -> None:
    document = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {s for s in operation["responses"] if int(s) >= 400}
            assert set(operation["x-error-codes"]) == errors, (method, path)
            for status, codes in operation["x-error-codes"].items():
                for code in codes:
                    assert ERROR_CODES[code][0] == int(status), (method, path, code)
                    assert f"`{code}`" in operation["responses"][status]["description"], (method, path, code)


def test_the_document_refuses_the_counts_and_keys_the_server_refuses() -> None:
    """What the document admits, the server takes (schemathesis found runCount 0 and stream keys
    with spaces admitted by the document and refused, or worse taken, by the server)."""
    document = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    assert schemas["CreateBatchRequest"]["properties"]["runCount"]["minimum"] == 1
    mint = document["paths"]["/realtime/v1/streams/{runId}/{key}"]["put"]
    [key] = [p for p in mint["parameters"] if p["name"] == "key"]
    assert key["in"] == "path" and key["required"] is True
    for sample in ("out", "a b", "a\x00b", "x" * 257):
        assert (re.fullmatch(key["schema"]["pattern"], sample) is None) == (sample != "out")


def test_operations_have_readable_unique_ids_and_a_tag_of_the_document() -> None:
    document = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    operations = [op for path_item in document["paths"].values() for op in path_item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", name) for name in ids), ids
    assert {"triggerTask", "getRun", "createBatch", "streamBatchItems", "getBatch"} <= set(ids)
    tags = {tag["name"] for tag in document["tags"]}
    assert all(len(op["tags"]) == 1 and op["tags"][0] in tags for op in operations)


def test_path_parameters_are_camel_case_as_the_readme_writes_them() -> None:
    paths = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))["paths"]
    assert "/api/v1/tasks/{taskId}/trigger" in paths
    for path, operations in paths.items():
        assert "_" not in "".join(re.findall(r"\{(\w+)\}", path)), path
        for operation in operations.values():
            named = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert named == set(re.findall(r"\{(\w+)\}", path)), path


def test_every_error_response_is_the_shared_one_of_its_status() -> None:
    document = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    shared = document["components"]["responses"]
    error = {"$ref": "#/components/schemas/Error"}
    assert all(response["content"]["application/json"]["schema"] == error for response in shared.values())
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert set(response) == {"$ref", "description"}
                    assert shared[response["$ref"].rsplit("/", 1)[1]]


def test_a_route_named_explicitly_and_two_versions_of_a_route_keep_apart() -> None:
    app = APIGatewayHttpResolver()

    def create_batch() -> None: ...

    def stats(queue_id: str) -> None: ...

    app.post("/api/v2/batches", **route_docs())(create_batch)
    app.post("/api/v3/batches", **route_docs())(create_batch)
    app.get("/api/v1/queues/<queue_id>/stats", **route_docs())(stats)
    app.get("/api/v1/queues/<queue_id>/depth", **route_docs(operation_id="queueDepth"))(stats)
    paths = document([app])["paths"]
    assert paths["/api/v3/batches"]["post"]["operationId"] == "createBatch"
    assert paths["/api/v2/batches"]["post"]["operationId"] == "createBatchV2"
    assert paths["/api/v1/queues/{queueId}/stats"]["get"]["operationId"] == "statsQueue"
    assert paths["/api/v1/queues/{queueId}/depth"]["get"]["operationId"] == "queueDepth"
    assert paths["/api/v1/queues/{queueId}/depth"]["get"]["tags"] == ["Queues"]
