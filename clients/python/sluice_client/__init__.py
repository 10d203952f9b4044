"""The Python client SDK that workers and apps use to talk to Sluice over HTTP.

client = Sluice("http://127.0.0.1:3030", "sk_dev_...")
run = client.trigger("send-email", {"to": "a@example.com"}, idempotencyKey="welcome-42")
client.runs.retrieve(run.id)
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from sluice_client import errors
from sluice_client.batches import (
    STAGE_ABOVE_ITEMS,
    Batches,
    BatchNotSealedError,
    BatchTriggerError,
    BatchTriggerResult,
)
from sluice_client.errors import ApiConnectionError, ApiError
from sluice_client.runs import Runs, TriggerResponse
from sluice_client.runs import trigger as _trigger
from sluice_client.streams import StreamMessage, Streams, StreamWriter
from sluice_client.streams_async import AsyncStreams, AsyncStreamWriter
from sluice_client.transport import AsyncTransport, RetryOptions, Transport

if TYPE_CHECKING:
    from sluice_client.sessions import HttpSessionChannel, SessionInfo, SessionPage, Sessions

# Sessions bring pydantic and the chat runtime: they load with their first use, not with the SDK,
# which every `sluice` command imports (half of `import sluice_client` before they were deferred).
_SESSION_NAMES = {"HttpSessionChannel", "SessionInfo", "SessionPage", "Sessions"}


def __getattr__(name: str) -> Any:
    if name in _SESSION_NAMES:
        from sluice_client import sessions

        return getattr(sessions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Sluice:
    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        retry: RetryOptions | None = None,
        timeout_s: float = 30.0,
        transport: Transport | None = None,
        stream_url: str | None = None,
        stage_above_items: int = STAGE_ABOVE_ITEMS,
    ) -> None:
        """``stream_url``: the streamed SSE reader's base URL (the stack's StreamReadUrl output,
        devstack's ``streamUrl``); without it ``streams.read`` long-polls the HTTP API."""
        self.transport = transport or Transport(api_url, api_key, retry=retry, timeout_s=timeout_s)
        self.runs = Runs(self.transport)
        self.batches = Batches(self.transport, stage_above_items=stage_above_items)
        self.streams = Streams(self.transport, stream_url=stream_url)

    @cached_property
    def sessions(self) -> Sessions:
        from sluice_client.sessions import Sessions

        return Sessions(self.transport, self.streams)

    def trigger(self, task_id: str, payload: Any = None, **options: Any) -> TriggerResponse:
        return _trigger(self.transport, task_id, payload, **options)

    def close(self) -> None:
        self.transport.close()
        self.batches.close()

    def __enter__(self) -> Sluice:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


__all__ = [
    "ApiConnectionError",
    "ApiError",
    "AsyncStreamWriter",
    "AsyncStreams",
    "AsyncTransport",
    "BatchNotSealedError",
    "BatchTriggerError",
    "BatchTriggerResult",
    "Batches",
    "HttpSessionChannel",
    "RetryOptions",
    "SessionInfo",
    "SessionPage",
    "Sessions",
    "Sluice",
    "StreamMessage",
    "StreamWriter",
    "Streams",
    "Transport",
    "TriggerResponse",
    "errors",
]
