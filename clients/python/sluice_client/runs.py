"""Triggering and reading runs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

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

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        task: str | Sequence[str] | None = None,
        tag: str | Sequence[str] | None = None,
        batch: str | None = None,
        idempotency_key: str | None = None,
        created_from: str | None = None,
        created_to: str | None = None,
        period: str | None = None,
        page_size: int | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> dict[str, Any]:
        """One page of ``GET /api/v1/runs``, newest first: ``{"data": [...], "pagination":
        {"next"?, "previous"?}}``. Several statuses, tasks or tags match any of them; pass a
        page's ``next`` as ``after`` (or its ``previous`` as ``before``)."""
        query = {
            "filter[status]": _joined(status),
            "filter[taskIdentifier]": _joined(task),
            "filter[tag]": _joined(tag),
            "filter[batch]": batch,
            "filter[idempotencyKey]": idempotency_key,
            "filter[createdAt][from]": created_from,
            "filter[createdAt][to]": created_to,
            "filter[createdAt][period]": period,
            "page[size]": str(page_size) if page_size else None,
            "page[after]": after,
            "page[before]": before,
        }
        present = {name: value for name, value in query.items() if value}
        path = "/api/v1/runs" + (f"?{urlencode(present)}" if present else "")
        result: dict[str, Any] = self._transport.json("GET", path)
        return result

    def iterate(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every run the filters of ``list`` select, newest first, page after page."""
        after = filters.pop("after", None)
        while True:
            page = self.list(**filters, after=after)
            yield from page["data"]
            after = page["pagination"].get("next")
            if not after:
                return

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a queued, delayed, buffered or executing run: ``{"id"}``. Idempotent; a finished
        run is a ``ConflictError`` (``run_finished``)."""
        result: dict[str, Any] = self._transport.json("POST", f"/api/v2/runs/{quote(run_id, safe='')}/cancel")
        return result

    def replay(self, run_id: str) -> dict[str, Any]:
        """A new run of the run's task with its payload and options: ``{"id"}``."""
        result: dict[str, Any] = self._transport.json("POST", f"/api/v1/runs/{quote(run_id, safe='')}/replay")
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


def _joined(value: str | Sequence[str] | None) -> str | None:
    # The API takes several values comma-separated, as the reference platform's SDK sends them.
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)
