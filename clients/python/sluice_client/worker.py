"""A small task worker: consume RunQueue, run each run's task under a lease, report the result.

    worker = Worker(client, run_queue_url, {"send-email": send_email})
    worker.run(stop)            # until ``stop`` (a threading.Event) is set

For each message the worker starts the run with a lease token of its own (so a retried start
gets the same lease back), then calls the task's handler with a ``TaskRun``. While the handler
runs, a background thread heartbeats the lease and extends the message's visibility. A return
value completes the run; an exception fails it, and the server retries it while attempts remain
(raise ``NonRetryableError`` to fail it for good). The message is deleted once the attempt is
over: completed, failed, a retry scheduled (the retry is a message of its own), or the run was
not this worker's to start (started elsewhere, finished, unknown). A run that is not due yet is
hidden until it is. A worker that dies leaves its lease to lapse, and the run reaper retries it.

A run canceled while it executes (or whose lease was lost) is learnt at the next heartbeat:
``TaskRun.cancelled`` is set, for the handler to watch and stop cooperatively; its result is then
not reported (the server would refuse it) and the attempt ends ``canceled`` (or ``lost``).

Long polling and visibility are boto3's SQS calls; what is written here is only the glue
between a message and the lifecycle routes.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

try:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "the worker consumes RunQueue with boto3, the client's `sqs` extra: pip install 'sluice-client[sqs]'"
    ) from exc

from sluice_client import superjson
from sluice_client.errors import ApiConnectionError, ApiError, ConflictError, NotFoundError

if TYPE_CHECKING:
    from sluice_client import Sluice

logger = logging.getLogger(__name__)

Outcome = Literal["completed", "retrying", "failed", "skipped", "deferred", "lost", "unreported", "canceled"]
SQS_MAX_VISIBILITY_S = 43_200  # 12 hours, SQS's ceiling


class NonRetryableError(Exception):
    """Raise from a task handler to fail the run without a retry, whatever attempts are left."""


@dataclass(frozen=True)
class TaskRun:
    """What a handler gets: the run's id, task, attempt (1-based) and payload, and the whole run.
    ``cancelled`` is set when the attempt is over without it (the run was canceled, or its lease
    lost): a long handler checks it (or waits on it) and returns early.
    A payload the trigger.dev SDK sent comes revived (dates, maps, sets, bigints: ``superjson``)."""

    id: str
    task_id: str
    attempt: int
    payload: Any
    run: Mapping[str, Any]
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False)
    # Why ``cancelled`` was set: "canceled" (by the API) or "lost" (the lease lapsed).
    cancel_reason: list[str] = field(default_factory=list, compare=False)


Handler = Callable[[TaskRun], Any]


class Worker:
    def __init__(
        self,
        client: Sluice,
        queue_url: str,
        handlers: Mapping[str, Handler],
        *,
        sqs: Any = None,
        concurrency: int = 1,
        wait_s: int = 20,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.handlers = dict(handlers)
        self.sqs = sqs or boto3.client("sqs")
        self.concurrency = concurrency
        self.wait_s = wait_s

    def run(self, stop: threading.Event) -> None:
        """Receive and process messages, ``concurrency`` at a time, until ``stop`` is set."""
        active: set[Future[Outcome]] = set()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="sluice-worker") as pool:
            while not stop.is_set():
                active = {f for f in active if not f.done()}
                free = self.concurrency - len(active)
                if free <= 0:
                    wait(active, timeout=1, return_when=FIRST_COMPLETED)
                    continue
                for message in self.receive(min(10, free)):
                    active.add(pool.submit(self.process, message))

    def receive(self, count: int) -> list[dict[str, Any]]:
        try:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=count, WaitTimeSeconds=self.wait_s
            )
        except (BotoCoreError, ClientError) as exc:
            logger.warning("worker.receive_failed", extra={"error": str(exc)})
            return []
        return list(response.get("Messages", []))

    def process(self, message: Mapping[str, Any]) -> Outcome:
        """Run one RunQueue message's run to the end of its attempt."""
        try:
            run_id = str(json.loads(message["Body"])["runId"])
        except (ValueError, KeyError, TypeError):
            logger.error("worker.bad_message", extra={"messageId": message.get("MessageId")})
            self._delete(message)
            return "skipped"
        token = secrets.token_urlsafe(24)
        try:
            lease = self.client.runs.start(run_id, token)
        except ConflictError as exc:
            if exc.code == "run_not_due":
                self._hide(message, int(exc.headers.get("retry-after", "1")))
                return "deferred"
            # Another worker's attempt, already over, or refused by its queue's limit
            # (concurrency_limited: the server re-sends the run after Retry-After).
            self._delete(message)
            return "skipped"
        except NotFoundError:
            self._delete(message)
            return "skipped"
        except (ApiError, ApiConnectionError) as exc:
            logger.warning("worker.start_failed", extra={"runId": run_id, "error": str(exc)})
            return "unreported"  # the message comes back after its visibility timeout
        outcome = self._execute(message, run_id, token, lease)
        logger.info("worker.attempt_over", extra={"runId": run_id, "outcome": outcome})
        return outcome

    def _execute(
        self, message: Mapping[str, Any], run_id: str, token: str, lease: Mapping[str, Any]
    ) -> Outcome:
        run = lease["run"]
        payload = superjson.revive(run.get("payload"), run.get("payloadMeta"))
        task = TaskRun(run_id, str(run["taskId"]), int(lease["attempt"]), payload, run)
        lease_s = (datetime.fromisoformat(lease["leaseExpiresAt"]) - datetime.now(UTC)).total_seconds()
        done = threading.Event()
        keeper = threading.Thread(
            target=self._keep_alive, args=(message, task, token, max(lease_s, 1.0), done), daemon=True
        )
        keeper.start()
        try:
            report = self._report(task, token)
        finally:
            done.set()
            keeper.join()
        if report is None:
            return "unreported"  # the API was unreachable: the lease lapses and the reaper retries
        self._delete(message)
        return report

    def _report(self, task: TaskRun, token: str) -> Outcome | None:
        handler = self.handlers.get(task.task_id)
        try:
            if handler is None:
                raise NonRetryableError(f"This worker has no handler for task {task.task_id!r}")
            output = handler(task)
            json.dumps(output)
        except Exception as exc:  # a task's failure of any kind (or output that is not JSON) fails the run
            if task.cancelled.is_set():
                return "canceled" if "canceled" in task.cancel_reason else "lost"
            retry = not isinstance(exc, NonRetryableError)
            error = {"code": type(exc).__name__[:128], "message": str(exc)[:8192]}
            return self._send(lambda: self.client.runs.fail(task.id, token, error, retry=retry))
        if task.cancelled.is_set():
            return "canceled" if "canceled" in task.cancel_reason else "lost"
        return self._send(lambda: self.client.runs.complete(task.id, token, output))

    @staticmethod
    def _send(call: Callable[[], dict[str, Any]]) -> Outcome | None:
        try:
            answer = call()
        except (ConflictError, NotFoundError):
            return "lost"  # the lease lapsed and the run moved on without this attempt
        except (ApiError, ApiConnectionError) as exc:
            logger.warning("worker.report_failed", extra={"error": str(exc)})
            return None
        status = answer.get("status")
        if status == "COMPLETED":
            return "completed"
        return "retrying" if answer.get("retryAt") else "failed"

    def _keep_alive(
        self,
        message: Mapping[str, Any],
        task: TaskRun,
        token: str,
        lease_s: float,
        done: threading.Event,
    ) -> None:
        """Heartbeat at a third of the lease, and keep the message hidden for two leases."""
        run_id = task.id
        while not done.wait(lease_s / 3):
            try:
                self.client.runs.heartbeat(run_id, token)
            except (ConflictError, NotFoundError) as exc:
                # Canceled, or the lease is gone (the reaper retried the run): the handler's result
                # would be refused, and a retry has a message of its own. Tell the handler.
                canceled = isinstance(exc, ConflictError) and exc.code == "run_canceled"
                task.cancel_reason.append("canceled" if canceled else "lost")
                task.cancelled.set()
                logger.warning("worker.attempt_cancelled", extra={"runId": run_id, "canceled": canceled})
                return
            except (ApiError, ApiConnectionError) as exc:
                logger.warning("worker.heartbeat_failed", extra={"runId": run_id, "error": str(exc)})
                continue
            self._hide(message, int(lease_s * 2))

    def _hide(self, message: Mapping[str, Any], seconds: int) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=max(0, min(SQS_MAX_VISIBILITY_S, seconds)),
            )
        except (BotoCoreError, ClientError) as exc:
            logger.warning("worker.visibility_failed", extra={"error": str(exc)})

    def _delete(self, message: Mapping[str, Any]) -> None:
        try:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        except (BotoCoreError, ClientError) as exc:
            # Harmless: a redelivered message finds the attempt over and is deleted then.
            logger.warning("worker.delete_failed", extra={"error": str(exc)})
