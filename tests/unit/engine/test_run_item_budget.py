"""Every field of a run (and of a session) at its limit, with the costliest characters, still fits
one DynamoDB item: the budget in ``sluice.config`` holds for what the code really writes.

The items are written to moto (which refuses items over 405 000 bytes) and weighed by DynamoDB's
own rule (UTF-8 lengths of names and values), against DynamoDB's 400 KB and against the bound the
settings compute (``Settings.run_item_max_bytes``), which must not be an underestimate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import ValidationError

from sluice import engine
from sluice.config import (
    DYNAMODB_ITEM_MAX_BYTES,
    RUN_ERROR_CODE_MAX_CHARS,
    RUN_ERROR_MESSAGE_MAX_CHARS,
    STREAM_KEY_MAX_CHARS,
    TAG_MAX_CHARS,
    Settings,
    get_settings,
    reload_settings,
)
from sluice.engine import lifecycle, payloads
from sluice.engine.models import DURATION_MAX_CHARS, TASK_ID_MAX_CHARS
from sluice.sessions import service as sessions
from sluice.sessions.records import EXTERNAL_ID_MAX_CHARS, NAME_MAX_CHARS
from sluice.streams.runs import record_stream_key
from tests.conftest import AwsStack, Tenant

# JSON writes a control character as a 6-byte escape; no character costs more in a stored document.
COSTLY = "\x01"
# Four bytes of UTF-8, never escaped: the costliest character where control characters are refused
# (a task id) or stored raw (a string set).
WIDE = "\U0001f600"


def item_size(item: Mapping[str, Any]) -> int:
    """DynamoDB's size of an item: each attribute's name and value, in UTF-8 bytes."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def value_size(value: Mapping[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return len(data)  # at most this: DynamoDB stores about one byte per two digits
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in data)  # DynamoDB: 3 + 1 an element
    if kind in ("BOOL", "NULL"):
        return 1
    raise AssertionError(f"the run item has an attribute of type {kind}")


def json_of(limit: int) -> dict[str, str]:
    """A JSON object whose compact encoding is exactly ``limit`` bytes, mostly 6-byte escapes."""
    escapes = (limit - len('{"v":""}')) // 6
    value = {"v": COSTLY * escapes + "x" * (limit - len('{"v":""}') - 6 * escapes)}
    assert len(payloads.encode(value)) == limit
    return value


def worst_trigger() -> engine.TriggerBody:
    settings = get_settings()
    tags = [chr(0x01 + i) * TAG_MAX_CHARS for i in range(settings.max_tags)]
    return engine.TriggerBody.model_validate(
        {
            "payload": json_of(settings.payload_offload_bytes),  # the most that stays inline
            "options": {
                "metadata": json_of(settings.max_metadata_bytes),
                "tags": tags,
                "idempotencyKey": COSTLY * settings.idempotency_key_max_chars,
                "concurrencyKey": COSTLY * 1024,
                "queue": COSTLY * 256,
                "parentRunId": COSTLY * 256,
                "ttl": "0" * (DURATION_MAX_CHARS - 2) + "1s",
                # An instant stores its longest form; past, so that the run can start at once.
                "delay": "2000-01-01T00:00:00.000001+00:00",
                "maxAttempts": 100,
            },
        }
    )


def stored_run(aws: AwsStack, run_id: str) -> dict[str, Any]:
    table = aws.stack.physical_name("RunsTable")
    item: dict[str, Any] = aws.dynamodb.get_item(TableName=table, Key={"runId": {"S": run_id}})["Item"]
    return item


@pytest.mark.parametrize(
    ("ending", "output_offload"),
    [("complete", None), ("fail", None), ("fail", "1000")],
    ids=["completed", "failed", "failed-error-over-the-output-slot"],
)
def test_a_run_with_every_field_at_its_limit_fits_its_item(
    aws: AwsStack, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, ending: str, output_offload: str | None
) -> None:
    if output_offload is not None:  # an error then takes more than the inline output may
        monkeypatch.setenv("SLUICE_RUN_OUTPUT_OFFLOAD_BYTES", output_offload)
        reload_settings()
    settings = get_settings()
    task_id = WIDE * TASK_ID_MAX_CHARS
    run = engine.trigger(tenant.env, task_id, worst_trigger())
    assert run.is_cached is False
    assert json.loads(stored_run(aws, run.id)["doc"]["S"])["payloadRef"] is None, "the payload is inline"

    token = "t" * 128
    lifecycle.start(tenant.env, run.id, lifecycle.StartBody(leaseToken=token))
    for i in range(settings.max_streams_per_run):
        record_stream_key(run.id, chr(0x1F600 + i) * STREAM_KEY_MAX_CHARS)
    if ending == "complete":
        output = json_of(settings.run_output_offload_bytes)  # the most that stays inline
        body = lifecycle.CompleteBody(leaseToken=token, output=output)
        ended = lifecycle.complete(tenant.env, run.id, body)
        assert ended.run.status == "COMPLETED"
    else:
        error = {"code": COSTLY * RUN_ERROR_CODE_MAX_CHARS, "message": COSTLY * RUN_ERROR_MESSAGE_MAX_CHARS}
        failure = lifecycle.FailBody.model_validate({"leaseToken": token, "error": error, "retry": False})
        assert lifecycle.fail(tenant.env, run.id, failure).run.status == "FAILED"

    item = stored_run(aws, run.id)
    assert len(item["streamKeys"]["SS"]) == settings.max_streams_per_run
    assert ("output" in item) == (ending == "complete")
    size = item_size(item)
    bound = settings.run_item_max_bytes()
    assert size <= bound <= DYNAMODB_ITEM_MAX_BYTES, (size, bound)


def test_a_session_with_every_field_at_its_limit_fits_its_item(aws: AwsStack, tenant: Tenant) -> None:
    settings = get_settings()
    tags = [chr(0x01 + i) * TAG_MAX_CHARS for i in range(settings.max_tags)]
    body = sessions.parse_create(
        {
            "externalId": COSTLY * EXTERNAL_ID_MAX_CHARS,
            "type": COSTLY * NAME_MAX_CHARS,
            "taskId": COSTLY * NAME_MAX_CHARS,
            "tags": tags,
            "metadata": json_of(settings.max_metadata_bytes),
            "triggerConfig": {
                "basePayload": json_of(settings.session_base_payload_max_bytes),
                "tags": tags,
                "queue": COSTLY * 256,
                "concurrencyKey": COSTLY * 1024,
                "maxAttempts": 100,
            },
        }
    )
    session, _ = sessions.create_session(tenant.env, body)
    table = aws.stack.physical_name("SessionsTable")
    item = aws.dynamodb.get_item(TableName=table, Key={"pk": {"S": session.id}})["Item"]
    size = item_size(item)
    assert size <= settings.session_item_max_bytes() <= DYNAMODB_ITEM_MAX_BYTES, size
    assert engine.get_run(tenant.env, session.currentRunId or "").payload["sessionId"] == session.id


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_metadata_bytes": 256 * 1024},  # the reference platform's metadata limit
        {"max_streams_per_run": 100},
        {"run_output_offload_bytes": 128 * 1024},
        {"session_base_payload_max_bytes": 400_000},
    ],
)
def test_settings_under_which_an_item_could_overflow_are_refused(overrides: dict[str, int]) -> None:
    with pytest.raises(ValidationError, match="DynamoDB"):
        Settings(**overrides)
