"""The client SDK against an httpx mock transport: retries, Retry-After, typed errors."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable

import httpx
import pytest

from sluice_client import RetryOptions, Sluice, Transport
from sluice_client.errors import (
    ApiConnectionError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    ServerError,
    UnprocessableEntityError,
)
from sluice_client.transport import tls_context

Responder = Callable[[httpx.Request], httpx.Response]


def client_with(responder: Responder, sleeps: list[float], attempts: int = 4) -> Sluice:
    http = httpx.Client(
        base_url="http://sluice.test",
        transport=httpx.MockTransport(responder),
        headers={"authorization": "Bearer sk_dev_test"},
    )
    retry = RetryOptions(max_attempts=attempts, min_delay_s=0.5, randomize=False)
    return Sluice(
        "http://sluice.test",
        "sk_dev_test",
        transport=Transport(
            "http://sluice.test",
            "sk_dev_test",
            retry=retry,
            http=http,
            sleep=sleeps.append,
        ),
    )


def test_trigger_sends_payload_and_options() -> None:
    seen: list[dict[str, object]] = []

    def respond(request: httpx.Request) -> httpx.Response:
        assert request.url.raw_path == b"/api/v1/tasks/send%20email/trigger"
        assert request.headers["authorization"] == "Bearer sk_dev_test"
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"id": "run_1", "isCached": False})

    result = client_with(respond, []).trigger("send email", {"to": "a"}, idempotencyKey="k", tags=["x"])
    assert (result.id, result.is_cached) == ("run_1", False)
    assert seen == [{"payload": {"to": "a"}, "options": {"idempotencyKey": "k", "tags": ["x"]}}]


def test_retries_5xx_with_backoff_then_succeeds() -> None:
    statuses = iter([503, 500, 200])
    sleeps: list[float] = []

    def respond(_: httpx.Request) -> httpx.Response:
        status = next(statuses)
        return httpx.Response(status, json={"id": "run_1"} if status == 200 else {"error": "down"})

    assert client_with(respond, sleeps).runs.retrieve("run_1") == {"id": "run_1"}
    assert sleeps == [0.5, 0.8]


def test_honours_retry_after_on_429() -> None:
    statuses = iter([429, 200])
    sleeps: list[float] = []

    def respond(_: httpx.Request) -> httpx.Response:
        status = next(statuses)
        return httpx.Response(status, headers={"retry-after": "3"}, json={"id": "run_1"})

    client_with(respond, sleeps).runs.retrieve("run_1")
    assert sleeps == [3.0]


def test_x_should_retry_false_stops_retries() -> None:
    calls = []

    def respond(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, headers={"x-should-retry": "false"}, json={"error": "no"})

    with pytest.raises(ServerError):
        client_with(respond, []).runs.retrieve("run_1")
    assert len(calls) == 1


def test_gives_up_after_max_attempts() -> None:
    calls = []

    def respond(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(502, text="bad gateway")

    with pytest.raises(ServerError) as info:
        client_with(respond, [], attempts=3).runs.retrieve("run_1")
    assert len(calls) == 3 and info.value.status == 502


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
    ],
)
def test_4xx_raise_typed_errors_without_retry(status: int, error: type[Exception]) -> None:
    calls = []

    def respond(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, json={"error": "nope", "code": "c", "issues": [{"path": ["x"]}]})

    with pytest.raises(error) as info:
        client_with(respond, []).trigger("t", 1)
    assert len(calls) == 1
    assert info.value.code == "c" and info.value.issues == [{"path": ["x"]}]  # type: ignore[attr-defined]


def test_connection_errors_are_retried_then_raised() -> None:
    sleeps: list[float] = []

    def respond(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ApiConnectionError):
        client_with(respond, sleeps, attempts=3).trigger("t", 1)
    assert len(sleeps) == 2


def test_clients_load_the_ca_bundle_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[object] = []
    real = ssl.SSLContext.load_verify_locations

    def load_verify_locations(self: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        loads.append(args or kwargs)
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", load_verify_locations)
    tls_context.cache_clear()
    for n in range(3):
        Sluice("https://api.example.com", f"sk_{n}")  # each with an upload client of its own too
    assert len(loads) == 1


def test_records_follow_pages_and_stop_at_an_empty_one() -> None:
    pages = [
        {"records": [{"id": "1-0", "data": "a"}], "hasMore": True},
        {"records": [], "hasMore": True},  # a server that says "more" and gives none
    ]
    asked: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        assert len(asked) <= 4, "asked for the same empty page again"
        return httpx.Response(200, json=pages[(len(asked) - 1) % 2])

    client = client_with(respond, [])
    got = client.sessions.records("sess_1", "out")
    assert [(r.id, r.data) for r in got] == [("1-0", "a")]
    assert len(asked) == 2 and asked[1].endswith("after=1-0")
    assert [(m.id, m.data) for m in client.streams.records("run_1", "k")] == [("1-0", "a")]
    assert len(asked) == 4
