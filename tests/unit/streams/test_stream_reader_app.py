"""The streamed transport (functions/stream_reader): events reach the client as they are appended."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sluice.config import reload_settings
from tests.unit.streams.conftest import StreamsApi, new_run, parse_sse


def test_events_stream_one_by_one_before_the_stream_ends(api: StreamsApi, stream_app_url: str) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    first = api.append(run_id, "out", token, {"n": 0}).json()["ids"][0]
    url = f"{stream_app_url}/realtime/v1/streams/{run_id}/out"
    with httpx.stream("GET", url, headers={**api.tenant.headers, "last-event-id": first}, timeout=10) as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        lines = res.iter_lines()
        api.append(run_id, "out", token, {"n": 1})
        got: list[str] = []
        for line in lines:  # arrives while the response is still open: truly streamed
            got.append(line)
            if line.startswith("data:"):
                break
        assert got[-2:] == [f"id: {got[-2][4:]}", 'data: {"n":1}']
        api.close(run_id, "out", token)
        rest = list(lines)
    assert "event: end" in rest
    assert not any(line.startswith("id:") for line in rest)


def test_a_connection_ends_with_retry_and_resumes_with_last_event_id(
    api: StreamsApi, stream_app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_SSE_MAX_CONNECTION_S", "0.3")
    reload_settings()
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    api.append(run_id, "out", token, "a")
    url = f"{stream_app_url}/realtime/v1/streams/{run_id}/out?lastEventId=0-0"
    first = parse_sse(httpx.get(url, headers=api.tenant.headers, timeout=10).text)
    assert [f.get("data") for f in first if "id" in f] == ['"a"']
    assert "retry" in first[-1]
    api.append(run_id, "out", token, "b")
    resumed = parse_sse(
        httpx.get(url, headers={**api.tenant.headers, "last-event-id": first[0]["id"]}, timeout=10).text
    )
    assert [f.get("data") for f in resumed if "id" in f] == ['"b"']


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"authorization": "Bearer sk_dev_nope"}, 401, "unauthorized"),
        ({"authorization": "Bearer st1.forged.token"}, 401, "invalid_stream_token"),
        ({"last-event-id": "$"}, 400, "invalid_last_event_id"),
    ],
)
def test_errors_are_json_in_the_api_shape(
    api: StreamsApi, stream_app_url: str, headers: dict[str, str], status: int, code: str
) -> None:
    run_id = new_run(api.tenant)
    base: dict[str, Any] = api.tenant.headers if "authorization" not in headers and status == 400 else {}
    res = httpx.get(f"{stream_app_url}/realtime/v1/streams/{run_id}/out", headers={**base, **headers})
    assert res.status_code == status
    assert res.json()["code"] == code
    assert httpx.get(f"{stream_app_url}/nowhere").json()["code"] == "route_not_found"


def test_the_async_sdk_reads_the_streamed_transport_to_the_end(api: StreamsApi, stream_app_url: str) -> None:
    import asyncio

    from sluice_client import AsyncStreams

    run_id = new_run(api.tenant)
    token = api.token(run_id)
    for n in range(3):
        api.append(run_id, "out", token, {"n": n})
    api.close(run_id, "out", token)

    async def read_all() -> list[object]:
        async with AsyncStreams("http://127.0.0.1:9", api.tenant.api_key, stream_url=stream_app_url) as s:
            return [m.data async for m in s.read(run_id, "out", last_event_id="0-0")]

    assert asyncio.run(read_all()) == [{"n": 0}, {"n": 1}, {"n": 2}]
