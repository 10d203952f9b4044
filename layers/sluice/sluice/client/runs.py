"""Triggering and reading runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sluice.client.transport import Transport


@dataclass(frozen=True)
class TriggerResponse:
    id: str
    is_cached: bool
    notice: dict[str, Any] | None = None


def trigger(transport: Transport, task_id: str, payload: Any = None, **options: Any) -> TriggerResponse:
    """Trigger ``task_id``; ``options`` are the API's (idempotencyKey="...", tags=[...], ...)."""
    body: dict[str, Any] = {"payload": payload}
    if options:
        body["options"] = options
    data = transport.json("POST", f"/api/v1/tasks/{quote(task_id, safe='')}/trigger", json=body)
    return TriggerResponse(id=data["id"], is_cached=bool(data.get("isCached")), notice=data.get("notice"))


class Runs:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def retrieve(self, run_id: str) -> dict[str, Any]:
        """The run as ``GET /api/v1/runs/{id}`` returns it."""
        result: dict[str, Any] = self._transport.json("GET", f"/api/v1/runs/{quote(run_id, safe='')}")
        return result
