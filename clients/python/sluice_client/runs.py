"""Triggering and reading runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sluice_client.transport import Transport

IDEMPOTENCY_KEY_MAX_CHARS = 2048  # the server's SLUICE_IDEMPOTENCY_KEY_MAX_CHARS


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

    # --- the worker lifecycle: a 409 is an answer (the lease is someone else's), never retried --
    def start(self, run_id: str, lease_token: str | None = None) -> dict[str, Any]:
        """Start the run's next attempt: ``{"attempt", "leaseToken", "leaseExpiresAt", "run"}``.
        Pass your own ``lease_token`` to make a retried start safe."""
        body = {"leaseToken": lease_token} if lease_token else {}
        return self._lifecycle(run_id, "start", body)

    def heartbeat(self, run_id: str, lease_token: str) -> dict[str, Any]:
        """Extend the lease: ``{"attempt", "leaseExpiresAt"}``."""
        return self._lifecycle(run_id, "heartbeat", {"leaseToken": lease_token})

    def complete(self, run_id: str, lease_token: str, output: Any = None) -> dict[str, Any]:
        """``{"id", "status": "COMPLETED", "attempt"}``."""
        return self._lifecycle(run_id, "complete", {"leaseToken": lease_token, "output": output})

    def fail(
        self, run_id: str, lease_token: str, error: str | dict[str, Any], *, retry: bool = True
    ) -> dict[str, Any]:
        """``{"id", "status", "attempt", "retryAt"?}``: QUEUED with ``retryAt`` for a retry, else FAILED."""
        body = {"leaseToken": lease_token, "error": error, "retry": retry}
        return self._lifecycle(run_id, "fail", body)

    def _lifecycle(self, run_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/api/v1/runs/{quote(run_id, safe='')}/{action}"
        result: dict[str, Any] = self._transport.json("POST", path, json=body)
        return result
