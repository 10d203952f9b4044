"""devstack's HTTP front against broken framing (a 400 and a cleanly closed connection, never a
hang or a traceback), and the API key kept out of logs and ``status``."""

from __future__ import annotations

import json
import socket
import stat
import time

import pytest

from devstack.server import BODY_TIMEOUT_S
from devstack.testing.launcher import DevStack

pytestmark = pytest.mark.devstack

TRIGGER = "/api/v1/tasks/framing/trigger"


def _exchange(stack: DevStack, raw: bytes, *, half_close: bool = True) -> tuple[bytes, float]:
    """Send raw bytes, read until the server closes; the whole answer and how long it took."""
    host, port = stack.api_url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=BODY_TIMEOUT_S + 10) as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):  # a timeout here (the server kept it open) fails the test
            received += chunk
    return received, time.monotonic() - started


def _request(stack: DevStack, headers: str, body: bytes) -> bytes:
    return (
        f"POST {TRIGGER} HTTP/1.1\r\nHost: devstack\r\nAuthorization: Bearer {stack.api_key}\r\n"
        f"Content-Type: application/json\r\n{headers}\r\n"
    ).encode() + body


def _one_response(received: bytes) -> tuple[int, dict[str, str], dict[str, str]]:
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    assert len(body) == int(headers["content-length"]), "exactly one response, then the close"
    return status, headers, json.loads(body)


BODY = b'{"payload": {"n": 1}}'


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ("Content-Length: -1\r\n", BODY, "invalid_content_length"),
        ("Content-Length: abc\r\n", BODY, "invalid_content_length"),
        ("Content-Length: 21\r\nContent-Length: 22\r\n", BODY, "invalid_content_length"),
        ("Content-Length: 500\r\n", BODY, "incomplete_body"),
        ("Transfer-Encoding: chunked\r\n", b"zz\r\n" + BODY + b"\r\n0\r\n\r\n", "invalid_chunk"),
        ("Transfer-Encoding: chunked\r\n", b"15\r\n" + BODY + b"XX0\r\n\r\n", "invalid_chunk"),
        ("Transfer-Encoding: chunked\r\n", b"ff\r\n" + BODY, "incomplete_body"),
        ("Transfer-Encoding: chunked\r\n", b"15\r\n" + BODY + b"\r\n", "invalid_chunk"),
    ],
    ids=[
        "negative",
        "not-a-number",
        "two-lengths",
        "longer-than-body",
        "chunk-size-not-hex",
        "chunk-without-crlf",
        "chunk-cut-short",
        "no-last-chunk",
    ],
)
def test_broken_framing_gets_a_400_and_a_closed_connection(
    devstack: DevStack, headers: str, body: bytes, code: str
) -> None:
    log_before = len(devstack.log())
    received, _ = _exchange(devstack, _request(devstack, headers, body))
    status, response_headers, answer = _one_response(received)
    assert status == 400 and answer["code"] == code and answer["error"]
    assert response_headers["connection"] == "close"
    assert "Traceback" not in devstack.log()[log_before:]


def test_a_body_that_never_arrives_times_out_with_a_400(devstack: DevStack) -> None:
    request = _request(devstack, "Content-Length: 500\r\n", BODY)
    received, took = _exchange(devstack, request, half_close=False)
    status, _, answer = _one_response(received)
    assert status == 400 and answer["code"] == "incomplete_body"
    assert took < BODY_TIMEOUT_S + 5


def test_good_requests_share_one_kept_alive_connection(devstack: DevStack) -> None:
    chunked = _request(devstack, "Transfer-Encoding: chunked\r\n", b"15\r\n" + BODY + b"\r\n0\r\n\r\n")
    plain = _request(devstack, f"Content-Length: {len(BODY)}\r\n", BODY)
    received, _ = _exchange(devstack, chunked + plain + _request(devstack, "Content-Length: x\r\n", b""))
    statuses = [int(part.split(b" ", 1)[0]) for part in received.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [200, 200, 400]


def test_the_api_key_is_masked_in_the_log_and_status(devstack: DevStack) -> None:
    key = devstack.api_key
    assert key not in devstack.log()
    status = devstack.cli("status")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)["apiKey"]
    assert key not in status.stdout and shown.startswith(key[:11]) and shown.endswith("*" * 8)
    full = devstack.cli("status", "--show-key")
    assert json.loads(full.stdout)["apiKey"] == key
    mode = (devstack.state_dir / "stack.json").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
