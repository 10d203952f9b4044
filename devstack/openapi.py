"""Write the stack's OpenAPI document: ``python -m devstack.openapi > openapi.json``.

The functions behind the template's HttpApi routes are imported as devstack runs them, and
their resolvers documented by ``sluice.openapi``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from devstack.handlers import load_handler
from devstack.template import Stack
from sluice.openapi import document


def resolvers(stack: Stack) -> list[Any]:
    found = []
    for spec in stack.functions():
        if not any(event.type == "HttpApi" for event in spec.events):
            continue
        module = sys.modules[load_handler(spec).__module__]
        found.append(module.app)
    return found


def render(template: Path | None = None) -> str:
    stack = Stack(template) if template else Stack()
    return json.dumps(document(resolvers(stack)), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
