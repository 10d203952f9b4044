"""The OpenAPI document, the README's error table and the codes the code raises agree."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from devstack.openapi import render
from devstack.template import Stack
from sluice.error_codes import ERROR_CODES, readme_table

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
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                schema = response["content"]["application/json"]["schema"]
                for code in schema["allOf"][1]["properties"]["code"]["enum"]:
                    assert ERROR_CODES[code][0] == int(status), (method, path, code)
