"""CORS as devstack serves it from the template: the HTTP API's CorsConfiguration on every answer
(errors and preflights included) and a Function URL's Cors around the streamed reader."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from devstack.cors import CorsPolicy, wrap
from devstack.server import ApiServer
from devstack.template import Stack
from sluice.streams import CURSOR_HEADER

PAGE = "http://page.example:5173"


def template_policy(environ: dict[str, str] | None = None) -> CorsPolicy:
    policy = CorsPolicy.from_config(Stack().http_api_cors(), environ or {})
    assert policy is not None
    return policy


def test_the_template_allows_what_a_browser_client_sends_and_exposes_the_cursor() -> None:
    stack = Stack()
    reader = CorsPolicy.from_config(stack.function("stream_reader").url_cors, {})
    for policy in (template_policy(), reader):
        assert policy is not None
        assert {"authorization", "last-event-id"} <= set(policy.allow_headers)
        assert CURSOR_HEADER in policy.expose_headers
        assert policy.allow_origins == ("*",) and not policy.allow_credentials
    assert "x-part-id" in template_policy().allow_headers
    assert {"GET", "POST", "PUT"} <= set(template_policy().allow_methods)


def test_star_is_never_sent_with_credentials() -> None:
    # As API Gateway, which refuses "*" with credentials: only origins named one by one.
    assert CorsPolicy(allow_origins=("*",), allow_credentials=True).response({"origin": PAGE}, []) == []
    named = dict(CorsPolicy(allow_origins=(PAGE,), allow_credentials=True).response({"origin": PAGE}, []))
    assert named["access-control-allow-origin"] == PAGE
    assert named["access-control-allow-credentials"] == "true"
    assert dict(CorsPolicy(("*",)).response({"origin": PAGE}, []))["access-control-allow-origin"] == "*"


def test_the_origins_setting_replaces_the_templates() -> None:
    policy = template_policy({"SLUICE_CORS_ALLOW_ORIGINS": "http://a.example, http://b.example"})
    assert policy.allow_origins == ("http://a.example", "http://b.example")
    assert dict(policy.response({"origin": "http://b.example"}, []))["access-control-allow-origin"] == (
        "http://b.example"
    )
    assert policy.response({"origin": "http://evil.example"}, [("x", "1")]) == [("x", "1")]
    assert policy.preflight({"origin": "http://evil.example", "access-control-request-method": "GET"}) == []


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer(("127.0.0.1", 0), [], cors=template_policy())
    server.start()
    yield server
    server.stop()


def call(server: ApiServer, method: str, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_the_http_api_answers_a_preflight_for_any_path(api: ApiServer) -> None:
    response = call(
        api,
        "OPTIONS",
        "/realtime/v1/sessions/s/in/append",
        {
            "Origin": PAGE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-part-id",
        },
    )
    assert response.status == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "x-part-id" in response.headers["access-control-allow-headers"]
    assert "POST" in response.headers["access-control-allow-methods"]


def test_an_error_answer_carries_the_cors_headers(api: ApiServer) -> None:
    response = call(api, "GET", "/no/such/route", {"Origin": PAGE})
    assert response.status == 404
    assert response.headers["access-control-allow-origin"] == "*"
    assert CURSOR_HEADER in response.headers["access-control-expose-headers"]
    # Not a browser (no Origin): nothing added.
    assert "access-control-allow-origin" not in call(api, "GET", "/no/such/route", {}).headers


def test_a_plain_options_request_is_not_a_preflight(api: ApiServer) -> None:
    assert call(api, "OPTIONS", "/no/such/route", {"Origin": PAGE}).status == 404


def web_client() -> TestClient:
    async def ok(_: Request) -> Response:
        return Response("data: 1\n\n", headers={CURSOR_HEADER: "0-0", "access-control-allow-origin": "x"})

    async def fails(_: Request) -> Response:
        return JSONResponse({"error": "no", "code": "invalid_stream_token"}, status_code=401)

    app = Starlette(routes=[Route("/ok", ok), Route("/fails", fails)])
    reader = CorsPolicy.from_config(Stack().function("stream_reader").url_cors, {})
    assert reader is not None
    return TestClient(wrap(app, reader))


def test_the_function_url_answers_preflights_and_sets_the_headers_on_every_answer() -> None:
    client = web_client()
    preflight = client.options("/ok", headers={"Origin": PAGE, "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 204
    assert "last-event-id" in preflight.headers["access-control-allow-headers"]
    ok = client.get("/ok", headers={"Origin": PAGE})
    # The function's own CORS header gives way to the Function URL's, as in Lambda.
    assert ok.headers["access-control-allow-origin"] == "*"
    assert ok.headers["access-control-expose-headers"] == CURSOR_HEADER
    failed = client.get("/fails", headers={"Origin": PAGE})
    assert failed.status_code == 401 and failed.headers["access-control-allow-origin"] == "*"
