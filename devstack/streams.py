"""DynamoDB stream event sources, read as Lambda's event source mapping reads them.

A ``StreamReader`` keeps one checkpoint per shard and, per ``poll_once``, hands each shard's next
records (at most BatchSize) to the function, after the mapping's FilterCriteria (records no
filter matches are skipped, as Lambda drops them before batching). After the invocation:

- the function failed: the checkpoint stays, and the same records come again on the next poll,
  until MaximumRetryAttempts (then the batch is logged and skipped: devstack has no on-failure
  destination);
- ReportBatchItemFailures: the checkpoint moves to the lowest reported sequence number, so that
  record and every later one come again (Lambda's rule for streams); an identifier that names no
  record of the batch fails the whole batch;
- otherwise the checkpoint moves past the batch.

devstack's poller thread and the unit tests' in-process stack share this code, so both run the
template's settings the same way.

ParallelizationFactor N: a poll reads up to N x BatchSize records of a shard and splits them into
up to N batches by partition key (a key's records stay in one batch, in order, as Lambda keeps
them), invoked at once. The checkpoint then moves to the earliest record any batch must retry
from (Lambda keeps a checkpoint per key range; one per shard re-sends a little more, which
at-least-once allows). Not emulated: bisect-on-error and the batching window.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from moto.events.models import EventPattern
from moto.events.utils import EventMessageType

from devstack.polling import PollingThread
from devstack.runtime import FunctionRuntime, Invocation
from devstack.template import EventSource

_IDLE_S = 0.05
# An idle poll costs two requests to moto; polling every 50 ms kept an idle stack at ~14% of a
# core (most of it this loop), so the pause doubles while nothing comes, up to this. A record that
# arrives after a quiet spell waits at most this long to be handed to the function.
_IDLE_MAX_S = 0.4
SHARDS_TTL_S = 10.0
Invoke = Callable[[dict[str, Any]], Invocation]


@dataclass(frozen=True)
class StreamSource:
    name: str
    table: str
    batch_size: int
    starting_position: str
    report_failures: bool
    max_retries: int
    patterns: tuple[str, ...] = field(default_factory=tuple)
    parallelization: int = 1

    @classmethod
    def from_event(cls, event: EventSource) -> StreamSource:
        props = event.properties
        # template.Stack resolves a table's StreamArn to "<table arn>/stream/*": the real label is
        # only known once the table exists.
        table = str(props["Stream"]).split(":table/", 1)[1].split("/stream", 1)[0]
        filters = (props.get("FilterCriteria") or {}).get("Filters") or []
        retries = int(props.get("MaximumRetryAttempts", -1))
        return cls(
            name=event.name,
            table=table,
            batch_size=int(props.get("BatchSize", 100)),
            starting_position=str(props.get("StartingPosition", "LATEST")),
            report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
            max_retries=retries if retries >= 0 else 10_000,
            patterns=tuple(str(f["Pattern"]) for f in filters),
            parallelization=int(props.get("ParallelizationFactor", 1)),
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _failed_from(result: Any, seqs: list[str]) -> str | bool | None:
    """The lowest reported sequence number; None when none is reported; False for an invalid
    response (the whole batch fails)."""
    if not isinstance(result, dict) or result.get("batchItemFailures") is None:
        return None if result is None or isinstance(result, dict) else False
    failures = result["batchItemFailures"]
    if not isinstance(failures, list):
        return False
    reported = []
    for failure in failures:
        item = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if item not in seqs:
            return False
        reported.append(str(item))
    return min(reported, key=int) if reported else None


class StreamReader:
    def __init__(self, source: StreamSource, dynamodb: Any, streams: Any, log: Callable[[str], None]) -> None:
        self.source = source
        self.dynamodb = dynamodb
        self.streams = streams
        self.log = log
        self._filters = [EventPattern.load(p) for p in source.patterns]
        self._start_at = "TRIM_HORIZON" if source.starting_position == "TRIM_HORIZON" else "LATEST"
        self._stream_arn: str | None = None
        # shard id -> ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER", sequence number)
        self._positions: dict[str, tuple[str, str]] = {}
        self._attempts: dict[str, int] = {}
        # The shard list is refreshed every SHARDS_TTL_S. Iterators are not kept between polls:
        # moto's iterator holds the shard object, which a cancelled transaction replaces (its
        # rollback restores a copy of the table), so a kept one would read a stale shard.
        self._shards: tuple[float, list[str]] = (0.0, [])

    def restart(self) -> None:
        """Forget the stream and every checkpoint, and read the table's new stream from its
        first record: a table made anew has only records the function has not seen. (moto keeps
        a table's shard ids, so the old checkpoints would skip as many records as it had.)"""
        self._start_at = "TRIM_HORIZON"
        self._stream_arn = None
        self._positions.clear()
        self._attempts.clear()
        self._shards = (0.0, [])

    def _arn(self) -> str:
        if self._stream_arn is None:
            table = self.dynamodb.describe_table(TableName=self.source.table)["Table"]
            self._stream_arn = str(table["LatestStreamArn"])
        return self._stream_arn

    def _matches(self, record: dict[str, Any]) -> bool:
        # moto types the matcher for EventBridge events; it reads any JSON document, a stream record too.
        event = cast(EventMessageType, record)
        return not self._filters or any(f.matches_event(event) for f in self._filters)

    def _read(self, shard_id: str) -> list[dict[str, Any]]:
        position = self._positions.get(shard_id)
        if position is None:
            iterator = self.streams.get_shard_iterator(
                StreamArn=self._arn(), ShardId=shard_id, ShardIteratorType=self._start_at
            )["ShardIterator"]
        else:
            iterator = self.streams.get_shard_iterator(
                StreamArn=self._arn(),
                ShardId=shard_id,
                ShardIteratorType=position[0],
                SequenceNumber=position[1],
            )["ShardIterator"]
        limit = self.source.batch_size * self.source.parallelization
        response = self.streams.get_records(ShardIterator=iterator, Limit=limit)
        records: list[dict[str, Any]] = response.get("Records", [])
        return records

    def _shard_ids(self) -> list[str]:
        fetched, shards = self._shards
        if time.monotonic() - fetched > SHARDS_TTL_S:
            description = self.streams.describe_stream(StreamArn=self._arn())["StreamDescription"]
            shards = [shard["ShardId"] for shard in description["Shards"]]
            self._shards = (time.monotonic(), shards)
        return shards

    def poll_once(self, invoke: Invoke) -> int:
        """One batch per shard; returns how many records the checkpoints moved past (0: nothing
        new, or the function failed and the same records come again)."""
        progressed = 0
        for shard_id in self._shard_ids():
            progressed += self._poll_shard(shard_id, invoke)
        return progressed

    def _batches(self, records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """The matching records split by partition key into at most ParallelizationFactor
        batches, each in stream order."""
        parts = self.source.parallelization
        batches: list[list[dict[str, Any]]] = [[] for _ in range(parts)]
        for record in records:
            if self._matches(record):
                key = json.dumps(record["dynamodb"]["Keys"], sort_keys=True).encode()
                batches[zlib.crc32(key) % parts if parts > 1 else 0].append(record)
        return [b for b in batches if b]

    def _invoke(self, batch: list[dict[str, Any]], invoke: Invoke) -> str | None:
        """Hand one batch to the function; the sequence number to retry from, or None."""
        seqs = [r["dynamodb"]["SequenceNumber"] for r in batch]
        outcome = invoke({"Records": batch})
        failed: str | bool | None = None
        if not outcome.ok:
            failed = False
            self.log(f"batch of {len(batch)} failed: {(outcome.error or {}).get('errorMessage')}")
        elif self.source.report_failures:
            failed = _failed_from(outcome.result, seqs)
            if failed is False:
                self.log(f"invalid batchItemFailures {outcome.result!r}: the whole batch stays")
        if failed is None:
            return None
        return seqs[0] if failed is False else str(failed)

    def _poll_shard(self, shard_id: str, invoke: Invoke) -> int:
        records = self._read(shard_id)
        if not records:
            return 0
        last = records[-1]["dynamodb"]["SequenceNumber"]
        batches = self._batches([_jsonable(r) for r in records])
        if len(batches) > 1:
            with ThreadPoolExecutor(max_workers=len(batches)) as pool:
                restarts = list(pool.map(lambda b: self._invoke(b, invoke), batches))
        else:
            restarts = [self._invoke(b, invoke) for b in batches]
        failed = [r for r in restarts if r is not None]
        if not failed:
            self._positions[shard_id] = ("AFTER_SEQUENCE_NUMBER", last)
            self._attempts.pop(shard_id, None)
            return len(records)
        attempts = self._attempts.get(shard_id, 0) + 1
        if attempts > self.source.max_retries:
            self.log(f"giving up on {len(records)} records after {attempts - 1} retries")
            self._positions[shard_id] = ("AFTER_SEQUENCE_NUMBER", last)
            self._attempts.pop(shard_id, None)
            return len(records)
        self._attempts[shard_id] = attempts
        restart = min(failed, key=int)
        self._positions[shard_id] = ("AT_SEQUENCE_NUMBER", restart)
        return sum(1 for r in records if int(r["dynamodb"]["SequenceNumber"]) < int(restart))


class StreamPoller(PollingThread):
    """devstack's thread for one stream event source."""

    idle_s = _IDLE_S
    idle_max_s = _IDLE_MAX_S

    def __init__(self, source: StreamSource, runtime: FunctionRuntime, dynamodb: Any, streams: Any) -> None:
        super().__init__("stream", f"{runtime.name}/{source.name}")
        self.source = source
        self.runtime = runtime
        self.reader = StreamReader(source, dynamodb, streams, self._log)
        self._new_stream = threading.Event()

    def follow_new_stream(self) -> None:
        """The table was made anew (moto restarted): read its new stream from the start."""
        self._new_stream.set()

    def poll_once(self) -> bool:
        if self._new_stream.is_set():
            self._new_stream.clear()
            self.reader.restart()
        return self.reader.poll_once(self.runtime.invoke) > 0


def in_process_invoke(handler: Callable[[dict[str, Any], Any], Any], context: Any) -> Invoke:
    """Call a handler in this process and report it as a devstack invocation."""

    def invoke(event: dict[str, Any]) -> Invocation:
        try:
            return Invocation(result=json.loads(json.dumps(handler(event, context))))
        except Exception as exc:
            return Invocation(
                error={"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": []}
            )

    return invoke
