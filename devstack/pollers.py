"""SQS event sources, polled as Lambda's event source mapping polls them.

One receiver per event source takes a worker slot before it receives, so it never holds messages
it cannot process at once (they would age towards their visibility timeout for nothing), and runs
at most MaximumConcurrency batches at a time. A batch is BatchSize messages or what arrived within
MaximumBatchingWindowInSeconds. After the invocation:

- the function failed or timed out: the whole batch stays on the queue and comes back after the
  visibility timeout;
- ReportBatchItemFailures: only the reported ``itemIdentifier`` s stay; an identifier that names
  no message of the batch fails the whole batch, as Lambda does;
- otherwise every message is deleted.

The dead-letter queue is the emulator's business: moto's server and LocalStack move a message to
the redrive target on the receive after ``maxReceiveCount``, as SQS does.
"""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from devstack.polling import PollingThread
from devstack.runtime import Invocation
from devstack.template import REGION, EventSource

# Long polls stay short so that a stopping stack is not kept waiting on a receive.
_WAIT_S = 1
_SLOT_WAIT_S = 0.2


class Invoker(Protocol):
    """What a poller feeds: a function's worker pool, or a stand-in such as the RunQueue consumer."""

    @property
    def name(self) -> str: ...

    def invoke(self, event: Any) -> Invocation: ...


@dataclass(frozen=True)
class SqsSource:
    name: str
    queue_arn: str
    queue_url: str
    batch_size: int
    window_s: float
    max_concurrency: int
    report_failures: bool

    @classmethod
    def from_event(cls, event: EventSource, queue_url: str, default_concurrency: int) -> SqsSource:
        props = event.properties
        scaling = props.get("ScalingConfig") or {}
        allowed = int(scaling.get("MaximumConcurrency", default_concurrency))
        return cls(
            name=event.name,
            queue_arn=str(props["Queue"]),
            queue_url=queue_url,
            batch_size=int(props.get("BatchSize", 10)),
            window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            # A laptop is not a Lambda fleet: --concurrency also caps what the template allows
            # (sized for production load), so a backlog does not fork dozens of workers.
            max_concurrency=min(allowed, default_concurrency),
            report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
        )


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """One record of the SQS event Lambda passes, from a ReceiveMessage result."""
    attributes = {k: str(v) for k, v in (message.get("Attributes") or {}).items()}
    message_attributes = {}
    for name, attr in (message.get("MessageAttributes") or {}).items():
        shaped: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": attr.get("DataType", "String"),
        }
        if "StringValue" in attr:
            shaped["stringValue"] = attr["StringValue"]
        if "BinaryValue" in attr:
            shaped["binaryValue"] = base64.b64encode(attr["BinaryValue"]).decode("ascii")
        message_attributes[name] = shaped
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def failed_ids(result: Any, batch_ids: set[str]) -> set[str] | None:
    """The message ids a ReportBatchItemFailures response keeps on the queue; None when the
    response fails the whole batch."""
    if result is None:
        return set()
    if not isinstance(result, dict):
        return None
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids = set()
    for failure in failures:
        item = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(item, str) or item not in batch_ids:
            return None
        ids.add(item)
    return ids


class SqsPoller(PollingThread):
    # The receives long-poll: they are the wait between polls.
    idle_s = 0.0
    join_s = _WAIT_S + 5

    def __init__(self, source: SqsSource, runtime: Invoker, sqs: Any, *, verbose: bool = False) -> None:
        super().__init__("sqs", f"{runtime.name}/{source.name}")
        self.source = source
        self.runtime = runtime
        self.sqs = sqs
        self.verbose = verbose
        self._slots = threading.Semaphore(source.max_concurrency)
        self._pool = ThreadPoolExecutor(
            max_workers=source.max_concurrency, thread_name_prefix=f"devstack-{runtime.name}-{source.name}"
        )

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def poll_once(self) -> bool:
        # A free worker first, so that no received message waits for one; the short wait lets
        # the thread see a stop request.
        if not self._slots.acquire(timeout=_SLOT_WAIT_S):
            return True
        try:
            batch = self._receive_batch()
        except BaseException:
            self._slots.release()
            raise
        if not batch:
            self._slots.release()
            return True
        try:
            self._pool.submit(self._process, batch)
        except RuntimeError:
            self._slots.release()  # the pool is shut down: the stack is stopping
        return True

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _receive_batch(self) -> list[dict[str, Any]]:
        batch = self._receive(self.source.batch_size, _WAIT_S)
        if not batch or self.source.window_s <= 0:
            # Without a window Lambda still fills the batch from what is already there.
            while batch and len(batch) < self.source.batch_size:
                more = self._receive(self.source.batch_size - len(batch), 0)
                if not more:
                    break
                batch.extend(more)
            return batch
        deadline = time.monotonic() + self.source.window_s
        while len(batch) < self.source.batch_size and not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(self.source.batch_size - len(batch), min(_WAIT_S, int(remaining)))
            if not more and remaining < 1:
                self._stop.wait(min(remaining, 0.1))
            batch.extend(more)
        return batch

    def _process(self, batch: list[dict[str, Any]]) -> None:
        try:
            self._invoke(batch)
        except Exception as exc:  # a poller thread must survive anything one batch does
            self._log(f"batch handling failed: {exc!r}")
        finally:
            self._slots.release()

    def _invoke(self, batch: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, self.source.queue_arn) for m in batch]}
        outcome = self.runtime.invoke(event)
        by_id = {m["MessageId"]: m for m in batch}
        if not outcome.ok:
            error = outcome.error or {}
            trace = "".join(error.get("stackTrace") or [])
            self._log(
                f"batch of {len(batch)} failed, left on the queue: "
                f"{error.get('errorType')}: {error.get('errorMessage')}\n{trace}"
            )
            return
        keep: set[str] = set()
        if self.source.report_failures:
            reported = failed_ids(outcome.result, set(by_id))
            if reported is None:
                self._log(f"invalid batchItemFailures {outcome.result!r}: the whole batch stays")
                return
            keep = reported
        done = [m for mid, m in by_id.items() if mid not in keep]
        self._delete(done)
        if self.verbose:
            self._log(f"batch of {len(batch)}: {len(done)} deleted, {len(keep)} left for redelivery")

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            response = self.sqs.delete_message_batch(
                QueueUrl=self.source.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                self._log(f"delete failed: {failure.get('Message')}")
