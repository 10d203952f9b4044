"""Staged ingest: phase 2 for an NDJSON body uploaded to S3, read as a stream.

The staging bucket's ObjectCreated notification reaches batch_staged_ingest through SQS. The
object is read with a ranged GET and ``iter_chunks`` through the same parser and the same item
processing as a request body, so memory stays at about concurrency x the largest item whatever
the object's size.

Resumable: when the invocation nears its deadline the source stops pulling, the items in flight
finish, and a continuation message carrying the parser's state after the last item (byte offset,
line, emit count, "skipping an oversized line") goes back on the queue; the next invocation
reads the object from that offset. The GET is pinned to the object's ETag, so a re-upload midway
is not spliced onto the old object (the new object's own notification starts over). A crash
anywhere repeats work that dedup turns into no-ops: an index is never enqueued twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from time import monotonic
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from sluice import aws
from sluice.batches import keys, store
from sluice.batches.errors import InvalidItem, InvalidNdjson, UnindexedItemTooLarge
from sluice.batches.ingest import finish, ingest_lines
from sluice.batches.models import BatchStatus, IngestResult
from sluice.batches.ndjson import NdjsonParser, Parsed, ParserState
from sluice.config import get_settings

logger = Logger(service="sluice")

CHUNK_BYTES = 256 * 1024
STAGED_OBJECT = "staged object"  # what a 503 names


@dataclass(frozen=True)
class StagedJob:
    tenant: str
    batch_id: str
    bucket: str
    key: str
    etag: str | None
    start: ParserState = field(default_factory=ParserState)

    def to_message(self) -> dict[str, Any]:
        return {"continuation": {**asdict(self), "start": asdict(self.start)}}


def jobs_from_message(body: dict[str, Any]) -> list[StagedJob]:
    """The jobs in one StagedIngestQueue message: an S3 notification or a continuation."""
    if "continuation" in body:
        job = dict(body["continuation"])
        return [StagedJob(**{**job, "start": ParserState(**job["start"])})]
    jobs = []
    for record in body.get("Records", []):  # s3:TestEvent and other shapes carry none
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        key = unquote_plus(record["s3"]["object"]["key"])
        owner = keys.parse_staging(key)
        if owner is None:
            logger.warning("object outside the staging layout ignored", extra={"key": key})
            continue
        tenant, batch_id = owner
        jobs.append(
            StagedJob(
                tenant, batch_id, record["s3"]["bucket"]["name"], key, record["s3"]["object"].get("eTag")
            )
        )
    return jobs


class ObjectLines:
    """The object's parsed lines from ``job.start`` on, until the end or the deadline.

    ``resume`` is the parser state after the last line handed out; ``stopped`` says the deadline
    came first.
    """

    def __init__(self, job: StagedJob, deadline: float) -> None:
        self.job = job
        self.deadline = deadline
        self.resume = job.start
        self.stopped = False

    def __iter__(self) -> Iterator[Parsed]:
        parser = NdjsonParser(get_settings().batch_item_max_bytes, self.job.start)
        offset = self.job.start.offset
        while (window := _open(self.job, offset)) is not None:
            body, size = window
            try:
                with aws.unavailable_as_503(STAGED_OBJECT):
                    for chunk in body.iter_chunks(CHUNK_BYTES):
                        offset += len(chunk)
                        for parsed in parser.feed(chunk):
                            if not self._take(parsed):
                                return
                            yield parsed
            finally:
                body.close()
            if offset >= size:
                break
        for parsed in parser.finish():
            if not self._take(parsed):
                return
            yield parsed

    def _take(self, parsed: Parsed) -> bool:
        if monotonic() >= self.deadline:
            self.stopped = True
            return False
        self.resume = parsed.resume
        return True


def _open(job: StagedJob, offset: int) -> tuple[Any, int] | None:
    """The body of the object's next range from ``offset`` and the object's size, or None when
    nothing is left of it (or it was replaced or deleted).

    Bounded ranges rather than one GET to the end: one response never holds more than a range,
    even from an S3 emulator that buffers whole responses, and a dropped connection costs a range.
    """
    end = offset + get_settings().batch_staged_range_bytes - 1
    request: dict[str, Any] = {"Bucket": job.bucket, "Key": job.key, "Range": f"bytes={offset}-{end}"}
    if job.etag:
        request["IfMatch"] = job.etag if job.etag.startswith('"') else f'"{job.etag}"'
    with aws.unavailable_as_503(STAGED_OBJECT):
        try:
            response = aws.s3().get_object(**request)
        except ClientError as exc:
            code = aws.error_code(exc)
            if code == "InvalidRange":
                return None
            if code in ("PreconditionFailed", "412") or code in aws.S3_MISSING_OBJECT_CODES:
                # Replaced or deleted since the notification: a newer object has its own.
                logger.info("staged object changed; this ingest stops", extra={"key": job.key})
                return None
            raise
    size = int(response.get("ContentRange", "/0").rpartition("/")[2] or 0)
    return response["Body"], size


def run(job: StagedJob, deadline: float) -> StagedJob | IngestResult | None:
    """Ingest the object from ``job.start``: a result when the object is done, the continuation
    when the deadline came first, None when the batch takes no items (finished, aborted, unknown).

    Raises:
        ServiceUnavailable: a dependency failed; the message is redelivered and resumes from its
            own offset.
    """
    batch = store.get(job.batch_id)
    if batch is None or batch.tenant != job.tenant:
        logger.warning("staged object for an unknown batch ignored", extra={"key": job.key})
        return None
    if batch.is_retry_success() or batch.status != BatchStatus.PENDING:
        return None
    source = ObjectLines(job, deadline)
    try:
        outcomes = ingest_lines(batch, source)
    except (InvalidNdjson, InvalidItem, UnindexedItemTooLarge) as exc:
        # No client is waiting for an answer: the batch can never be completed from this object,
        # so it is aborted at once, with the reason, rather than left for the seal timeout.
        store.abort(batch, datetime.now(UTC), f"Staged ingest failed: {exc.message}")
        logger.warning("staged batch aborted", extra={"batchId": batch.id, "reason": exc.message})
        return None
    if source.stopped:
        return StagedJob(job.tenant, job.batch_id, job.bucket, job.key, job.etag, source.resume)
    result = finish(batch, outcomes["accepted"], outcomes["deduplicated"])
    if not result.sealed:
        logger.warning(
            "staged object did not hold every item",
            extra={"batchId": batch.id, "enqueued": result.enqueuedCount, "runCount": result.runCount},
        )
    return result


def handle(body: dict[str, Any], remaining_ms: int) -> None:
    """Run every job of one queue message, handing what is left of each to a continuation."""
    deadline = monotonic() + remaining_ms / 1000 - get_settings().batch_staged_reserve_s
    for job in jobs_from_message(body):
        outcome = run(job, deadline)
        if isinstance(outcome, StagedJob):
            continue_later(outcome)


def continue_later(job: StagedJob) -> None:
    with aws.unavailable_as_503("staged ingest queue"):
        aws.sqs().send_message(
            QueueUrl=get_settings().staged_ingest_queue_url, MessageBody=json.dumps(job.to_message())
        )
    logger.info(
        "staged ingest continues in a new invocation",
        extra={"batchId": job.batch_id, "offset": job.start.offset},
    )
