"""The engine's test fixtures: the run API through the real handlers, and the final-status
listener's record."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sluice.config import get_settings
from sluice.engine import lifecycle
from sluice.engine.models import Run
from tests.conftest import AwsStack, Tenant


@pytest.fixture
def api(aws: AwsStack, tenant: Tenant, call_api: Any) -> Any:
    class Api:
        def __init__(self) -> None:
            self.aws = aws
            self.tenant = tenant
            self.call = call_api

        def trigger(self, payload: Any = None, headers: dict[str, str] | None = None, **options: Any) -> str:
            body = {"payload": payload, "options": options}
            result = call_api(
                "POST", "/api/v1/tasks/work/trigger", json_body=body, headers=headers or tenant.headers
            )
            assert result.status == 200, result.body
            return str(result.json()["id"])

        def post(self, run_id: str, action: str, body: Any = None, tenant_: Tenant | None = None) -> Any:
            return call_api(
                "POST",
                f"/api/v1/runs/{run_id}/{action}",
                json_body=body,
                headers=(tenant_ or tenant).headers,
            )

        def get(self, run_id: str) -> dict[str, Any]:
            result = call_api("GET", f"/api/v1/runs/{run_id}", headers=tenant.headers)
            assert result.status == 200, result.body
            return dict(result.json())

        def item(self, run_id: str) -> dict[str, Any]:
            return dict(
                aws.dynamodb.get_item(TableName=get_settings().runs_table, Key={"runId": {"S": run_id}})[
                    "Item"
                ]
            )

        def start(self, run_id: str) -> dict[str, Any]:
            result = self.post(run_id, "start")
            assert result.status == 200, result.body
            return dict(result.json())

    return Api()


@pytest.fixture
def finals() -> Iterator[list[Run]]:
    seen: list[Run] = []
    lifecycle.final_listeners.append(seen.append)
    yield seen
    lifecycle.final_listeners.remove(seen.append)
