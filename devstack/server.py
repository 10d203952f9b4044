"""The HTTP API: every HttpApi route of the template, served as API Gateway (payload 2.0) would.

Requests become API Gateway v2 events (devstack.apigw) for the route's function; the function's
response becomes the HTTP response. Errors answer as API Gateway does: 404 for no route, 502
when the function fails or returns something that is not a response, 413 over Lambda's 6 MB
request limit.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from devstack import swagger
from devstack.apigw import Route, http_event
from devstack.cors import CorsPolicy
from devstack.runtime import FunctionRuntime
from devstack.template import FunctionSpec

# Lambda's synchronous invocation payload limit; API Gateway answers 413 above it.
MAX_EVENT_BYTES = 6 * 1024 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
# How long a client may take to send a body it announced; then it gets a 400 and the connection
# closes (API Gateway times such a client out too). Idle keep-alive connections wait longer.
BODY_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 120.0
_DIGITS = re.compile(rb"[0-9]+")
_HEX = re.compile(rb"[0-9a-fA-F]+")


class BadRequest(Exception):
    """The request's framing is broken: it is answered with ``status`` and the connection closes,
    since what follows on the socket can no longer be told apart from the body."""

    def __init__(self, status: int, code: str, error: str) -> None:
        super().__init__(error)
        self.status, self.code, self.error = status, code, error


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


OPENAPI_PATH = swagger.OPENAPI_PATH


def _json_body(status: int, message: str, **fields: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "application/json")], json.dumps({"message": message, **fields}).encode()


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
    timeout = IDLE_TIMEOUT_S

    def setup(self) -> None:
        # Headers and body go out in two writes; without TCP_NODELAY the second waits for the
        # client's delayed ACK (~40 ms a request on Linux). ``--no-tcp-nodelay`` exists only so
        # that bench/devstack_load.py can show the difference.
        # typeshed calls it a ClassVar; StreamRequestHandler.setup() reads it from the instance.
        self.disable_nagle_algorithm = self.server.tcp_nodelay  # type: ignore[misc]
        super().setup()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _handle logs requests, with their duration, when verbose

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"devstack http: {format % args}\n")

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            raise BadRequest(400, "incomplete_body", f"the body ended after {len(data)} of {size} bytes")
        return data

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            size_text = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not _HEX.fullmatch(size_text):
                raise BadRequest(400, "invalid_chunk", f"bad chunk size line {line[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                for _ in range(100):  # trailers, then the empty line
                    if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                        return b"".join(chunks)
                raise BadRequest(400, "invalid_chunk", "too many trailer lines")
            total += size
            if total > MAX_EVENT_BYTES:
                raise BadRequest(413, "body_too_large", "the chunked body exceeds 6 MB")
            chunks.append(self._read_exactly(size))
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BadRequest(400, "invalid_chunk", "a chunk is not followed by CRLF")

    def _read_body(self) -> bytes:
        """The body as the framing headers describe it; hand-written because http.server leaves
        bodies to its handlers, and every malformed framing must end in a 400, never a hang."""
        self.connection.settimeout(BODY_TIMEOUT_S)
        try:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                return self._read_chunked()
            lengths = {v.strip() for v in self.headers.get_all("content-length") or []}
            if not lengths:
                return b""
            if len(lengths) > 1 or not _DIGITS.fullmatch(text := next(iter(lengths)).encode()):
                raise BadRequest(400, "invalid_content_length", f"bad Content-Length {sorted(lengths)}")
            length = int(text)
            if length * 4 // 3 > MAX_EVENT_BYTES:
                raise BadRequest(413, "body_too_large", "the body exceeds 6 MB")
            return self._read_exactly(length) if length else b""
        except TimeoutError:
            raise BadRequest(
                400, "incomplete_body", f"the body did not arrive within {BODY_TIMEOUT_S:g}s"
            ) from None
        finally:
            self.connection.settimeout(self.timeout)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        started = time.monotonic()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            # API Gateway joins repeated headers with commas.
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        try:
            body = self._read_body()
        except BadRequest as exc:
            self.close_connection = True
            status, headers_out, payload = _json_body(
                exc.status,
                "Bad Request" if exc.status == 400 else "Request Entity Too Large",
                error=exc.error,
                code=exc.code,
            )
        else:
            split = urlsplit(self.path)
            request = Request(
                self.command, split.path or "/", split.query, headers, body, self.client_address[0]
            )
            status, headers_out, payload = self.server.dispatch(request)
        cors = self.server.cors
        if cors is not None:
            # As API Gateway: on every answer (errors and framing failures too), and a preflight's.
            is_preflight = cors.is_preflight(self.command, headers)
            headers_out = cors.preflight(headers) if is_preflight else cors.response(headers, headers_out)
        try:
            self._send(status, headers_out, payload)
        except OSError:
            self.close_connection = True  # the client left; nothing to tell it
            return
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
        tcp_nodelay: bool = True,
        cors: CorsPolicy | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        # The HTTP API's CorsConfiguration: preflights answered, headers on every answer.
        self.cors = cors
        self.routes = routes
        self.verbose = verbose
        # The committed OpenAPI document, served at OPENAPI_PATH when the template has one.
        self.openapi = openapi if openapi is not None and openapi.is_file() else None
        self.tcp_nodelay = tcp_nodelay
        self._thread: threading.Thread | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client reset or left mid-request: nothing to answer, nothing to report
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def dispatch(self, request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        method, raw_path = request.method, request.raw_path
        if self.cors is not None and self.cors.is_preflight(method, request.headers):
            return 204, [], b""
        if self.openapi is not None and method == "GET" and raw_path == OPENAPI_PATH:
            return 200, [("content-type", "application/json")], self.openapi.read_bytes()
        if self.openapi is not None and method == "GET" and (docs := swagger.serve(raw_path)):
            return docs
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
            route,
            raw_path,
            {k: unquote(v) for k, v in params.items()},
            request.headers,
            body=request.body,
            raw_query=request.raw_query,
            source_ip=request.source_ip,
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
