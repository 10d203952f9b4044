"""The console's static assets, served by the ``console`` function at ``/console``.

The console is a page of plain ES modules that calls the same HTTP API a user's own code calls,
with the API key or public token the person types in (kept in the tab's sessionStorage, never in
the page): so the assets hold no data and need no auth of their own, and the page works with no
internet since nothing comes from a CDN. Only the files named here are served, so no path a
client sends can reach another file of the function.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import Response

from sluice.errors import NotFound

CONTENT_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "views.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# The page talks to this API only; scripts and styles are its own files.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@lru_cache(maxsize=len(CONTENT_TYPES))
def _read(root: Path, name: str) -> tuple[bytes, str]:
    body = (root / name).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def asset(root: Path, name: str, if_none_match: str | None = None) -> Response[Any]:
    """The asset ``name`` of ``root`` (``index.html`` for the console's own path).

    Raises:
        NotFound: a name that is not one of the console's files.
    """
    content_type = CONTENT_TYPES.get(name)
    if content_type is None:
        raise NotFound("No such console file", code="route_not_found")
    body, etag = _read(root, name)
    # Revalidated on every load (a 304 is one small request), so a deploy shows at once.
    headers = {**SECURITY_HEADERS, "ETag": etag, "Cache-Control": "no-cache"}
    if if_none_match == etag:
        return Response(status_code=304, content_type=content_type, body="", headers=headers)
    return Response(status_code=200, content_type=content_type, body=body.decode("utf-8"), headers=headers)
