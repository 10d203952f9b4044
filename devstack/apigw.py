"""API Gateway HTTP API (payload format 2.0) events, built as API Gateway would build them."""

from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

_TEXT_TYPES = ("application/json", "text/", "application/x-ndjson", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class Route:
    """A template route such as ``POST /api/v1/runs/{runId}`` (``{proxy+}`` is greedy)."""

    method: str
    path: str
    function: str

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method.upper()):
            return None
        pattern = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", re.escape(self.path))
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None


def http_event(
    route: Route,
    raw_path: str,
    path_parameters: dict[str, str],
    headers: dict[str, str],
    *,
    body: bytes = b"",
    raw_query: str = "",
    stage: str = "$default",
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "")
    is_text = not body or any(content_type.startswith(t) for t in _TEXT_TYPES)
    if is_text:
        try:
            encoded, is_base64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            encoded, is_base64 = base64.b64encode(body).decode("ascii"), True
    else:
        encoded, is_base64 = base64.b64encode(body).decode("ascii"), True
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "devstack",
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": "localhost",
            "http": {
                "method": route.method if route.method != "ANY" else "GET",
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route.route_key,
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "pathParameters": path_parameters or None,
        "isBase64Encoded": is_base64,
    }
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = encoded
    if "cookie" in lowered:
        event["cookies"] = [c.strip() for c in lowered["cookie"].split(";")]
    return event
