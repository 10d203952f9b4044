"""Swagger UI at ``/docs``, reading the stack's ``/api/openapi.json``.

The assets are those the ``swagger-ui-py`` package ships (Swagger UI 5, which reads OpenAPI 3.1),
served from the venv: the page works offline and loads nothing from a CDN. The package's own
helpers mount it on web frameworks; devstack's front is none of them, so the page is ours.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

DOCS_PATH = "/docs"
OPENAPI_PATH = "/api/openapi.json"
# What the page loads, and nothing else of the package's directory is served.
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Sluice API</title>
  <link rel="stylesheet" href="{DOCS_PATH}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{DOCS_PATH}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{DOCS_PATH}/swagger-ui-bundle.js"></script>
  <script src="{DOCS_PATH}/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "{OPENAPI_PATH}",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
    }});
  </script>
</body>
</html>
"""

Response = tuple[int, list[tuple[str, str]], bytes]


def _static_dir() -> Path | None:
    # Found without importing the package: its __init__ pulls in the framework helpers.
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def serve(raw_path: str) -> Response | None:
    """The page or one of its assets, or None for a path that is not the docs'. Without the
    package installed the page is a 404 that says how to get it."""
    if raw_path != DOCS_PATH and not raw_path.startswith(DOCS_PATH + "/"):
        return None
    static = _static_dir()
    if static is None:
        missing = b"Swagger UI needs the swagger-ui-py package: pip install -e '.[dev]'\n"
        return 404, [("content-type", "text/plain; charset=utf-8")], missing
    name = raw_path[len(DOCS_PATH) :].lstrip("/")
    if name in ("", "index.html"):
        return 200, [("content-type", "text/html; charset=utf-8")], PAGE.encode()
    if name not in ASSETS:
        return 404, [("content-type", "text/plain; charset=utf-8")], b"Not Found\n"
    headers = [("content-type", ASSETS[name]), ("cache-control", "max-age=3600")]
    return 200, headers, (static / name).read_bytes()
