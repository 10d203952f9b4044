"""The session routes through their real handlers, in-process (moto, a real redis-server)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from tests.conftest import AwsStack, HttpResult, Tenant, make_tenant
from tests.unit.streams.conftest import fast_sse, parse_sse

LEASE = "lease-of-a-lost-worker"
FAILED_FOR_GOOD = {"leaseToken": LEASE, "error": {"code": "WORKER_LOST"}, "retry": False}


@dataclass
class SessionsApi:
    aws: AwsStack
    call: Callable[..., HttpResult]
    tenant: Tenant
    redis: redis.Redis

    def _headers(self, tenant: Tenant | None) -> dict[str, str]:
        return (tenant or self.tenant).headers

    def create(self, tenant: Tenant | None = None, **body: Any) -> HttpResult:
        body.setdefault("type", "chat")
        if "taskIdentifier" not in body:
            body.setdefault("taskId", "chat-agent")
        return self.call("POST", "/api/v1/sessions", json_body=body, headers=self._headers(tenant))

    def new(self, **body: Any) -> dict[str, Any]:
        res = self.create(**body)
        assert res.status == 200, res.body
        return dict(res.json())

    def get(self, ref: str, tenant: Tenant | None = None) -> HttpResult:
        return self.call("GET", f"/api/v1/sessions/{ref}", headers=self._headers(tenant))

    def list(self, query: str = "", tenant: Tenant | None = None) -> HttpResult:
        return self.call("GET", f"/api/v1/sessions?{query}", headers=self._headers(tenant))

    def close(self, ref: str, tenant: Tenant | None = None) -> HttpResult:
        return self.call("POST", f"/api/v1/sessions/{ref}/close", headers=self._headers(tenant))

    def mint(self, ref: str, io: str, tenant: Tenant | None = None, bearer: str | None = None) -> HttpResult:
        headers = {"authorization": f"Bearer {bearer}"} if bearer else self._headers(tenant)
        return self.call("PUT", f"/realtime/v1/sessions/{ref}/{io}", headers=headers)

    def token(self, ref: str, io: str) -> str:
        res = self.mint(ref, io)
        assert res.status == 200, res.body
        return str(res.json()["token"])

    def append(
        self, session_id: str, io: str, token: str, chunk: Any, part_id: str | None = None
    ) -> HttpResult:
        headers = {"authorization": f"Bearer {token}"}
        if part_id:
            headers["x-part-id"] = part_id
        return self.call(
            "POST", f"/realtime/v1/sessions/{session_id}/{io}/append", json_body=chunk, headers=headers
        )

    def records(
        self, ref: str, io: str, after: str | None = None, tenant: Tenant | None = None
    ) -> HttpResult:
        query = f"?after={after}" if after else ""
        return self.call(
            "GET", f"/realtime/v1/sessions/{ref}/{io}/records{query}", headers=self._headers(tenant)
        )

    def read(
        self, ref: str, io: str, headers: dict[str, str] | None = None, tenant: Tenant | None = None
    ) -> HttpResult:
        return self.call(
            "GET", f"/realtime/v1/sessions/{ref}/{io}", headers={**self._headers(tenant), **(headers or {})}
        )

    def run_messages(self) -> list[dict[str, Any]]:
        return [json.loads(json.dumps(body)) for body in self.aws.bodies("RunQueue")]

    def end_run(self, run_id: str) -> None:
        """Lose the run for good through the run lifecycle: a worker starts it and fails it without
        a retry, as the reaper fails a lost worker's last attempt."""
        for action, body in (("start", {"leaseToken": LEASE}), ("fail", FAILED_FOR_GOOD)):
            res = self.call(
                "POST", f"/api/v1/runs/{run_id}/{action}", json_body=body, headers=self.tenant.headers
            )
            assert res.status == 200, res.body


@pytest.fixture
def sessions_api(
    aws: AwsStack,
    redis_client: redis.Redis,
    call_api: Callable[..., HttpResult],
    fast_sse: None,
) -> SessionsApi:
    return SessionsApi(aws, call_api, make_tenant(), redis_client)


__all__ = ["SessionsApi", "fast_sse", "parse_sse", "sessions_api"]
