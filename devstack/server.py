"""The HTTP API: every HttpApi route of the template, served as API Gateway (payload 2.0) would.

Requests become API Gateway v2 events (devstack.apigw) for the route's function; the function's
response becomes the HTTP response. Errors answer as API Gateway does: 404 for no route, 502
when the function fails or returns something that is not a response, 413 over Lambda's 6 MB
request limit.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from devstack.apigw import Route, http_event
from devstack.runtime import FunctionRuntime
from devstack.template import FunctionSpec

# Lambda's synchronous invocation payload limit; API Gateway answers 413 above it.
MAX_EVENT_BYTES = 6 * 1024 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass(frozen=True)
class Request:
    method: str
    raw_path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes
    source_ip: str


@dataclass(frozen=True)
class BoundRoute:
    route: Route
    runtime: FunctionRuntime


def routes_of(specs: Iterable[FunctionSpec]) -> list[tuple[Route, FunctionSpec]]:
    """The HttpApi routes of the template, most specific first (literal segments beat
    parameters, ``{proxy+}`` and ANY come last), as API Gateway prioritises them."""
    found = []
    for spec in specs:
        for event in spec.events:
            if event.type != "HttpApi":
                continue
            method = str(event.properties.get("Method", "ANY")).upper()
            path = str(event.properties.get("Path", "/{proxy+}"))
            found.append((Route("ANY" if method in ("*", "ANY") else method, path, spec.logical_id), spec))

    def specificity(item: tuple[Route, FunctionSpec]) -> tuple[int, int, int]:
        route = item[0]
        segments = route.path.strip("/").split("/")
        greedy = int(any(s.endswith("+}") for s in segments))
        params = sum(s.startswith("{") for s in segments)
        return (greedy, int(route.method == "ANY"), params - len(segments))

    return sorted(found, key=specificity)


OPENAPI_PATH = "/api/openapi.json"


def _json_body(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "application/json")], json.dumps({"message": message}).encode()


def shape_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A handler's result as API Gateway (payload 2.0) turns it into an HTTP response."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # Payload 2.0 infers the response: any valid JSON becomes a 200 JSON body.
        text = result if isinstance(result, str) else json.dumps(result)
        return 200, [("content-type", "application/json")], text.encode()
    status = int(result["statusCode"])
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    headers.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or [])
    raw = result.get("body")
    if raw is None:
        payload = b""
    elif result.get("isBase64Encoded"):
        payload = base64.b64decode(raw)
    else:
        payload = (raw if isinstance(raw, str) else json.dumps(raw)).encode()
    return status, headers, payload


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"
    server_version = "devstack"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _handle logs requests, with their duration, when verbose

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"devstack http: {format % args}\n")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        started = time.monotonic()
        body = self._read_body()
        split = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            # API Gateway joins repeated headers with commas.
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        request = Request(self.command, split.path or "/", split.query, headers, body, self.client_address[0])
        status, headers_out, payload = self.server.dispatch(request)
        self._send(status, headers_out, payload)
        if self.server.verbose:
            elapsed = (time.monotonic() - started) * 1000
            sys.stderr.write(f"devstack http: {self.command} {self.path} -> {status} ({elapsed:.0f} ms)\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    # Bursts of triggers open many connections at once; the default backlog of 5 drops them.
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        routes: list[BoundRoute],
        *,
        verbose: bool = False,
        openapi: Path | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.routes = routes
        self.verbose = verbose
        # The committed OpenAPI document, served at OPENAPI_PATH when the template has one.
        self.openapi = openapi if openapi is not None and openapi.is_file() else None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def dispatch(self, request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        method, raw_path = request.method, request.raw_path
        if self.openapi is not None and method == "GET" and raw_path == OPENAPI_PATH:
            return 200, [("content-type", "application/json")], self.openapi.read_bytes()
        for bound in self.routes:
            params = bound.route.match(method, raw_path)
            if params is not None:
                break
        else:
            return _json_body(404, "Not Found")
        if len(request.body) * 4 // 3 > MAX_EVENT_BYTES:
            return _json_body(413, "Request Entity Too Large")
        route = bound.route
        if route.method == "ANY":
            route = Route(method.upper(), route.path, route.function)
        event = http_event(
            route, raw_path, {k: unquote(v) for k, v in params.items()}, request.headers,
            body=request.body, raw_query=request.raw_query, source_ip=request.source_ip,
        )
        if bound.route.method == "ANY":
            event["routeKey"] = event["requestContext"]["routeKey"] = bound.route.route_key
        outcome = bound.runtime.invoke(event)
        if not outcome.ok:
            error = outcome.error or {}
            trace = "".join(error.get("stackTrace") or []) or f"{error.get('errorMessage')}\n"
            sys.stderr.write(
                f"devstack: {bound.runtime.name} failed on {method} {raw_path}: "
                f"{error.get('errorType')}: {error.get('errorMessage')}\n{trace}"
            )
            return _json_body(502, "Internal server error")
        try:
            return shape_response(outcome.result)
        except (TypeError, ValueError, KeyError) as exc:
            sys.stderr.write(f"devstack: {bound.runtime.name} returned a malformed response: {exc}\n")
            return _json_body(502, "Internal server error")

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="devstack-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
        self.server_close()
