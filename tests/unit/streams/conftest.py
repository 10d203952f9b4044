"""Stream fixtures: a run to stream on, and the streams routes through their real handler."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn

from devstack.services import free_port, wait_until
from devstack.template import Stack
from sluice import engine
from sluice.engine import TriggerBody
from tests.conftest import AwsStack, HttpResult, Tenant, make_tenant

NDJSON = {"content-type": "application/x-ndjson"}


def ndjson(lines: list[Any]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def new_run(tenant: Tenant, task: str = "agent") -> str:
    return engine.trigger(tenant.env, task, TriggerBody()).id


def parse_sse(text: str) -> list[dict[str, str]]:
    """SSE frames as dicts of their fields (comments under ``":"``); a test-side parser so the
    assertions see exactly what went over the wire."""
    frames = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        frame: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            frame[name] = value[1:] if value.startswith(" ") else value
        frames.append(frame)
    return frames


@dataclass
class StreamsApi:
    aws: AwsStack
    call: Callable[..., HttpResult]
    tenant: Tenant
    redis: redis.Redis

    def mint(self, run_id: str, key: str = "out", tenant: Tenant | None = None) -> HttpResult:
        return self.call(
            "PUT", f"/realtime/v1/streams/{run_id}/{key}", headers=(tenant or self.tenant).headers
        )

    def token(self, run_id: str, key: str = "out") -> str:
        res = self.mint(run_id, key)
        assert res.status == 200, res.body
        return str(res.json()["token"])

    def append(
        self,
        run_id: str,
        key: str,
        token: str,
        chunk: Any = None,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        hdrs = {"authorization": f"Bearer {token}", **(headers or {})}
        path = f"/realtime/v1/streams/{run_id}/{key}/append"
        if body is not None:
            return self.call("POST", path, body=body, headers=hdrs)
        return self.call("POST", path, json_body=chunk, headers=hdrs)

    def close(self, run_id: str, key: str, token: str) -> HttpResult:
        return self.call(
            "POST", f"/realtime/v1/streams/{run_id}/{key}/close", headers={"authorization": f"Bearer {token}"}
        )

    def read(
        self,
        run_id: str,
        key: str = "out",
        *,
        bearer: str | None = None,
        query: str = "",
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        hdrs = {"authorization": f"Bearer {bearer or self.tenant.api_key}", **(headers or {})}
        path = f"/realtime/v1/streams/{run_id}/{key}" + (f"?{query}" if query else "")
        return self.call("GET", path, headers=hdrs)

    def records(
        self, run_id: str, key: str = "out", *, bearer: str | None = None, query: str = ""
    ) -> HttpResult:
        hdrs = {"authorization": f"Bearer {bearer or self.tenant.api_key}"}
        path = f"/realtime/v1/streams/{run_id}/{key}/records" + (f"?{query}" if query else "")
        return self.call("GET", path, headers=hdrs)


@pytest.fixture
def stream_app_url(api: StreamsApi) -> Iterator[str]:
    """functions/stream_reader's ASGI app under uvicorn on a free port, in this process (so it
    shares moto and the settings); a real server, so responses really stream."""
    spec = Stack().function("stream_reader")
    module = _import_app(spec.code_uri / "app.py")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(module.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{url}/healthz", timeout=1).status_code == 200, 10, "stream app")
    yield url
    server.should_exit = True
    thread.join(10)


def _import_app(path: Path) -> Any:
    loader = importlib.util.spec_from_file_location("sluice_functions.stream_reader.app", path)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


@pytest.fixture
def fast_sse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long polls that answer within a test's patience."""
    from sluice.config import reload_settings

    monkeypatch.setenv("SLUICE_SSE_WINDOW_S", "0.3")
    monkeypatch.setenv("SLUICE_SSE_LINGER_MS", "20")
    monkeypatch.setenv("SLUICE_SSE_BLOCK_MS", "100")
    reload_settings()


@pytest.fixture
def api(
    aws: AwsStack, redis_client: redis.Redis, call_api: Callable[..., HttpResult], fast_sse: None
) -> StreamsApi:
    return StreamsApi(aws, call_api, make_tenant(), redis_client)
