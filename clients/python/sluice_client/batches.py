"""Batch triggering: ``client.batches.trigger(items)`` with the reference SDK's two phases.

1. Phase 1 creates the batch (``staged`` when it has more items than one request-streamed batch
   may); a cached answer (same idempotency key) ends there.
2. Payloads of 128 KiB or more go to S3 first, through presigned URLs, so that phase 2 carries
   references instead of blobs (the reference's pre-offload, spec §2.1).
3. Phase 2 streams the items as NDJSON, split over as many requests as Lambda's 6 MB request
   limit needs; the server's per-index dedup and count-then-seal make the split safe. A
   ``sealed: false`` answer re-streams everything (dedup makes that cheap), a bounded number of
   times. A staged batch is one presigned PUT of the whole body instead.

Failures raise ``BatchTriggerError`` naming the phase (offload, create, stream, upload).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any, Literal
from urllib.parse import quote

import httpx

from sluice_client.errors import ApiConnectionError, ApiError, SluiceClientError
from sluice_client.transport import RetryOptions, Transport, decode, tls_context

Phase = Literal["offload", "create", "stream", "upload"]
Progress = Callable[[int, int], None]

# The reference SDK's numbers: offload payloads from 128 KiB, 10 uploads at once, and the stream
# retry schedule of about 1-2, 2-4, 4-8, 8-16 s over 5 attempts.
OFFLOAD_BYTES = 128 * 1024
UPLOAD_CONCURRENCY = 10
STREAM_RETRY = RetryOptions(max_attempts=5, min_delay_s=1.0, max_delay_s=30.0, factor=2.0, randomize=True)
# Lambda takes 6 MB per request and API Gateway base64-encodes an NDJSON body (4/3 larger), so
# 4 MiB of NDJSON is the most one phase-2 request can carry with room for the event around it.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_REQUEST_ITEMS = 10_000  # the most one phase-2 request takes (the server's SLUICE_BATCH_MAX_ITEMS)
# Staged above this by default: one request of up to MAX_REQUEST_ITEMS must finish within its
# time budget, so a larger batch goes through S3 staging, which has no such bound.
STAGE_ABOVE_ITEMS = 1000
MAX_STAGED_ITEMS = 100_000  # the server's SLUICE_BATCH_MAX_STAGED_ITEMS
PAYLOAD_URLS_PER_CALL = 100
STORE_PAYLOAD_TYPE = "application/store"


class BatchTriggerError(SluiceClientError):
    """A batch trigger failed in ``phase``; ``cause`` is the API or connection error."""

    def __init__(
        self, phase: Phase, message: str, *, batch_id: str | None = None, cause: Exception | None = None
    ):
        super().__init__(f"Batch trigger failed in {phase}: {message}")
        self.phase = phase
        self.batch_id = batch_id
        self.cause = cause


class BatchNotSealedError(BatchTriggerError):
    """Every attempt left the batch unsealed: some items never reached the server."""

    def __init__(self, batch_id: str, response: Mapping[str, Any]) -> None:
        self.enqueued_count = int(response.get("enqueuedCount") or 0)
        self.expected_count = int(response.get("runCount") or 0)
        self.items_accepted = int(response.get("itemsAccepted") or 0)
        self.items_deduplicated = int(response.get("itemsDeduplicated") or 0)
        super().__init__(
            "stream",
            f"batch {batch_id} was not sealed: {self.enqueued_count} of {self.expected_count} items enqueued",
            batch_id=batch_id,
        )


@dataclass(frozen=True)
class BatchTriggerResult:
    id: str
    run_count: int
    is_cached: bool
    sealed: bool
    staged: bool = False


@dataclass
class _Line:
    index: int
    task: str
    payload: Any
    options: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        line = {"index": self.index, "task": self.task, "payload": self.payload}
        if self.options:
            line["options"] = self.options
        return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


class StderrProgress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal.

    Written here rather than taken from tqdm or rich: the SDK ships in the Lambda layer, where a
    dependency for one bar costs every cold start, and a worker's logs want no bar at all.
    """

    def __init__(self, label: str, stream: IO[str] | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()

    def __call__(self, sent: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        filled = int(30 * sent / total)
        end = "\n" if sent >= total else ""
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{' ' * (30 - filled)}] {100 * sent / total:5.1f}% "
            f"{sent / 1e6:.1f}/{total / 1e6:.1f} MB{end}"
        )
        self.stream.flush()


class Batches:
    def __init__(
        self,
        transport: Transport,
        *,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        stage_above_items: int = STAGE_ABOVE_ITEMS,
        uploads: httpx.Client | None = None,
    ) -> None:
        self._transport = transport
        self.max_request_bytes = max_request_bytes
        # Batches of more items than this are staged by default. The server streams at most
        # MAX_REQUEST_ITEMS; a lower value stages smaller batches (and lets tests stage a few).
        self.stage_above_items = stage_above_items
        # Presigned S3 URLs carry their own signature: the API key must not go along with them.
        self._uploads = uploads or httpx.Client(timeout=transport.http.timeout, verify=tls_context())

    def trigger(
        self,
        items: Sequence[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        parent_run_id: str | None = None,
        resume_parent_on_completion: bool = False,
        staged: bool | None = None,
        progress: Progress | bool | None = None,
        retry: RetryOptions = STREAM_RETRY,
    ) -> BatchTriggerResult:
        """Trigger one run per item (``{"task", "payload"?, "options"?}``), indexed by position.

        Args:
            staged: upload the body to S3 instead of streaming it; by default, only when there are
                more than ``stage_above_items`` items (1000, the most a streamed batch may have).
            progress: a ``(bytes sent, total)`` callback, or True/None for a stderr bar on a
                terminal, False for none.

        Raises:
            BatchTriggerError: with ``phase`` "create", "offload", "stream" or "upload".
            BatchNotSealedError: the batch stayed unsealed after every attempt.
        """
        lines = [
            _Line(i, str(it["task"]), it.get("payload"), dict(it.get("options") or {}))
            for i, it in enumerate(items)
        ]
        use_staging = len(lines) > self.stage_above_items if staged is None else staged
        report = (
            progress if callable(progress) else (StderrProgress("batch") if progress is not False else None)
        )
        body: dict[str, Any] = {"runCount": len(lines), "staged": use_staging}
        if idempotency_key:
            body["idempotencyKey"] = idempotency_key
        if parent_run_id:
            body.update(parentRunId=parent_run_id, resumeParentOnCompletion=resume_parent_on_completion)
        tasks = sorted({line.task for line in lines})
        if tasks:
            body["taskIdentifiers"] = tasks
        try:
            created = self._transport.json("POST", "/api/v3/batches", json=body)
        except (ApiError, ApiConnectionError) as exc:
            raise BatchTriggerError("create", str(exc), cause=exc) from exc
        batch_id, run_count = str(created["id"]), int(created["runCount"])
        if created.get("isCached"):
            return BatchTriggerResult(batch_id, run_count, is_cached=True, sealed=True, staged=use_staging)
        self._offload(batch_id, lines)
        if use_staging:
            self._upload(batch_id, created["upload"], lines, report)
            return BatchTriggerResult(batch_id, run_count, is_cached=False, sealed=False, staged=True)
        self._stream(batch_id, lines, retry, report)
        return BatchTriggerResult(batch_id, run_count, is_cached=False, sealed=True)

    def close(self) -> None:
        self._uploads.close()

    def retrieve(self, batch_id: str, runs_offset: int = 0) -> dict[str, Any]:
        """The batch's status, counts and a page of run ids (``GET /api/v3/batches/{id}``)."""
        path = f"/api/v3/batches/{quote(batch_id, safe='')}?runsOffset={runs_offset}"
        result: dict[str, Any] = self._transport.json("GET", path)
        return result

    # --- phases ------------------------------------------------------------------------------
    def _offload(self, batch_id: str, lines: list[_Line]) -> None:
        large = [
            line
            for line in lines
            if line.options.get("payloadType") != STORE_PAYLOAD_TYPE
            and len(_encode(line.payload)) >= OFFLOAD_BYTES
        ]
        if not large:
            return
        by_index = {line.index: line for line in large}
        try:
            uploads: list[dict[str, Any]] = []
            for start in range(0, len(large), PAYLOAD_URLS_PER_CALL):
                indices = [line.index for line in large[start : start + PAYLOAD_URLS_PER_CALL]]
                path = f"/api/v3/batches/{quote(batch_id, safe='')}/payloads"
                uploads += self._transport.json("POST", path, json={"indices": indices})["uploads"]
            with ThreadPoolExecutor(UPLOAD_CONCURRENCY) as pool:
                payloads = [_encode(by_index[u["index"]].payload) for u in uploads]
                list(pool.map(partial(_put, self._uploads), uploads, payloads))
        except (ApiError, ApiConnectionError, httpx.HTTPError) as exc:
            raise BatchTriggerError("offload", str(exc), batch_id=batch_id, cause=exc) from exc
        for line in large:
            line.options = {
                **line.options,
                "payloadType": STORE_PAYLOAD_TYPE,
                "payloadSize": len(_encode(line.payload)),
            }
            line.payload = None

    def _stream(
        self, batch_id: str, lines: list[_Line], retry: RetryOptions, report: Progress | None
    ) -> None:
        requests = _split(lines, self.max_request_bytes)
        total = sum(size for _, size in requests)
        path = f"/api/v3/batches/{quote(batch_id, safe='')}/items"
        headers = {"content-type": "application/x-ndjson"}
        attempt = 0
        while True:
            attempt += 1
            sent = 0
            response: dict[str, Any] = {}
            for chunk, size in requests:

                def body(chunk: list[_Line] = chunk, start: int = sent) -> Iterator[bytes]:
                    done = start
                    for line in chunk:
                        data = line.encode()
                        done += len(data)
                        if report:
                            report(done, total)
                        yield data

                try:
                    raw = self._transport.request(
                        "POST", path, content=body, headers=headers, retry=retry, retry_conflict=True
                    )
                except (ApiError, ApiConnectionError) as exc:
                    raise BatchTriggerError("stream", str(exc), batch_id=batch_id, cause=exc) from exc
                response = decode(raw)
                sent += size
                if response.get("sealed"):
                    return
            if attempt >= retry.max_attempts:
                raise BatchNotSealedError(batch_id, response)
            self._transport.sleep(retry.delay(attempt))

    def _upload(
        self, batch_id: str, upload: Mapping[str, Any], lines: list[_Line], report: Progress | None
    ) -> None:
        # S3 needs a Content-Length for a presigned PUT, so the body is spooled to a temporary
        # file first (not to memory), then streamed from it.
        with tempfile.TemporaryFile() as spool:
            for line in lines:
                spool.write(line.encode())
            total = spool.tell()

            def chunks() -> Iterator[bytes]:
                spool.seek(0)
                done = 0
                while data := spool.read(1024 * 1024):
                    done += len(data)
                    if report:
                        report(done, total)
                    yield data

            headers = {**upload.get("headers", {}), "content-length": str(total)}
            try:
                response = self._uploads.request(
                    upload.get("method", "PUT"), upload["url"], content=chunks(), headers=headers
                )
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise BatchTriggerError("upload", str(exc), batch_id=batch_id, cause=exc) from exc


def _encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _put(
    http: httpx.Client, upload: Mapping[str, Any], data: bytes, retry: RetryOptions = STREAM_RETRY
) -> None:
    """One payload upload; S3's transient failures (5xx, 429, connection errors) are retried."""
    for attempt in range(1, retry.max_attempts + 1):
        try:
            response = http.request(
                upload.get("method", "PUT"), upload["url"], content=data, headers=upload.get("headers")
            )
        except httpx.TransportError:
            if attempt == retry.max_attempts:
                raise
        else:
            if (response.status_code < 500 and response.status_code != 429) or attempt == retry.max_attempts:
                response.raise_for_status()
                return
        time.sleep(retry.delay(attempt))


def _split(lines: list[_Line], max_bytes: int) -> list[tuple[list[_Line], int]]:
    """Group lines into requests of at most ``max_bytes`` of NDJSON (a lone larger line goes alone)."""
    requests: list[tuple[list[_Line], int]] = []
    current: list[_Line] = []
    size = 0
    for line in lines:
        length = len(line.encode())
        if current and size + length > max_bytes:
            requests.append((current, size))
            current, size = [], 0
        current.append(line)
        size += length
    if current:
        requests.append((current, size))
    return requests
