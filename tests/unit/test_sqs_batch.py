"""The SQS partial-batch helper shared by drainer, batch_runs and batch_staged_ingest."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from sluice.config import reload_settings
from sluice.sqs_batch import process_sqs_batch, process_whole_sqs_batch


def event(count: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": str(i),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for i in range(count)
        ]
    }


@pytest.fixture
def concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_SQS_RECORD_CONCURRENCY", "10")
    reload_settings()


def test_records_are_handled_at_once_when_concurrent(concurrency: None) -> None:
    # Every handler waits for all ten: this only completes if they run at the same time.
    barrier = threading.Barrier(10, timeout=10)

    def handler(record: SQSRecord) -> None:
        barrier.wait()

    response = process_sqs_batch(event(10), cast(Any, None), handler, concurrent=True)
    assert response == {"batchItemFailures": []}


def test_each_record_fails_on_its_own(concurrency: None) -> None:
    def handler(record: SQSRecord) -> None:
        if int(record.body) % 3 == 0:
            raise RuntimeError("no")

    response = process_sqs_batch(event(10), cast(Any, None), handler, concurrent=True)
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == ["m0", "m3", "m6", "m9"]


def test_a_batch_whose_every_record_failed_is_answered_not_raised() -> None:
    def handler(record: SQSRecord) -> None:
        raise RuntimeError("down")

    response = process_sqs_batch(event(3), cast(Any, None), handler)
    assert len(response["batchItemFailures"]) == 3


def test_a_whole_batch_handler_fails_exactly_the_records_it_answers_with_an_error() -> None:
    seen: list[list[int]] = []

    def handle(numbers: list[int]) -> list[object]:
        seen.append(numbers)
        return [RuntimeError("no") if n % 4 == 1 else "ok" for n in numbers]

    def parse(body: str) -> int:
        if body == "2":
            raise ValueError("not a signal")
        return int(body)

    response = process_whole_sqs_batch(event(6), cast(Any, None), parse, handle)
    assert seen == [[0, 1, 3, 4, 5]], "one call with every record that parsed"
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == ["m1", "m2", "m5"]


def test_a_whole_batch_handler_that_raises_fails_every_record() -> None:
    def handle(numbers: list[int]) -> list[object]:
        raise RuntimeError("down")

    response = process_whole_sqs_batch(event(3), cast(Any, None), int, handle)
    assert len(response["batchItemFailures"]) == 3
