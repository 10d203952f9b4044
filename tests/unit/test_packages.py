"""The three products stay apart: the layer ships what functions import and nothing of the client,
the client distribution needs nothing of the server, and the wire format both import has one home."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers/sluice"
CLIENT = ROOT / "clients/python"
# `sluice admin` (typer): the server package's, run by the client command line, which brings typer;
# no function imports it (checked below), so the layer does not need what it imports.
ADMIN = LAYER / "sluice/admin"


def imported_top_levels(folder: Path, *, but: Path | None = None) -> set[str]:
    """The top-level names that the sources under ``folder`` (not under ``but``) import at run
    time (imports under ``if TYPE_CHECKING:`` are for the type checker only)."""

    def runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            yield child
            yield from runtime_nodes(child)

    names: set[str] = set()
    for path in folder.rglob("*.py"):
        if but is not None and path.is_relative_to(but):
            continue
        for node in runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}


def distribution(name: str) -> str:
    return re.split(r"[\[<>=~! ;]", name.strip(), maxsplit=1)[0].lower().replace("_", "-")


def layer_requirements() -> set[str]:
    lines = (LAYER / "requirements.txt").read_text().splitlines()
    return {distribution(line) for line in lines if line.strip() and not line.startswith("#")}


def with_dependencies(names: set[str]) -> set[str]:
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # one for another Python (a marker such as python_version < "3.11")
        found.add(name)
        for requirement in requirements:
            if "extra ==" not in requirement:
                todo.append(distribution(requirement))
    return found


def test_the_layer_requires_exactly_what_the_layer_and_functions_import() -> None:
    ours = {"sluice", "sluice_wire"}
    imports = imported_top_levels(LAYER / "sluice", but=ADMIN) | imported_top_levels(ROOT / "functions")
    assert "sluice_client" not in imports and "httpx" not in imports
    by_module = importlib.metadata.packages_distributions()
    imported = {distribution(by_module[name][0]) for name in imports - ours}
    required = layer_requirements()
    assert required <= imported, f"required but imported by no function: {required - imported}"
    missing = imported - with_dependencies(required)
    assert not missing, f"imported but not required: {missing}"


def test_no_function_and_no_other_layer_module_imports_the_admin_commands() -> None:
    sources = [*(LAYER / "sluice").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    admin = re.compile(r"\bsluice\.admin\b|from sluice import admin")
    importers = [p for p in sources if not p.is_relative_to(ADMIN) and admin.search(p.read_text())]
    assert importers == []


def test_the_client_needs_nothing_of_the_server() -> None:
    imports = imported_top_levels(CLIENT)
    assert "sluice" not in imports
    assert imported_top_levels(CLIENT / "sluice_wire") == {"pydantic"}


def test_the_wire_format_has_one_home_that_the_layer_ships() -> None:
    shipped = LAYER / "sluice_wire"
    assert shipped.is_symlink() and shipped.resolve() == (CLIENT / "sluice_wire").resolve()
    assert {p.name for p in shipped.glob("*.py")} == {p.name for p in (CLIENT / "sluice_wire").glob("*.py")}
