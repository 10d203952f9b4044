"""The trigger use case (``sluice.triggers``): one prepared run, to the engine or to the buffer."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis
from botocore.exceptions import EndpointConnectionError

from sluice import engine, mollifier, smoothing, triggers
from sluice import redis as sluice_redis
from sluice.auth import Environment
from sluice.config import Settings, reload_settings
from sluice.engine import PreparedRun
from sluice.errors import NotFound
from sluice.mollifier import DrainSignal, drain_batch, get_buffer, mollify
from tests.conftest import AwsStack

MOLLIFIER_DIR = str(Path(mollifier.__file__).parent)
TRIGGER = {
    "payload": {"order": 7, "items": ["a", "b"]},
    "options": {
        "idempotencyKey": "order-7",
        "idempotencyKeyTTL": "1h",
        "delay": "10m",
        "ttl": "1d",
        "tags": ["shop", "eu"],
        "queue": {"name": "orders", "concurrencyLimit": 5},
        "concurrencyKey": "customer-1",
        "maxAttempts": 4,
        "metadata": {"source": "test"},
    },
}


class NoRedis(redis.Redis):
    """A client that records and refuses every command: an error no fail-open path swallows."""

    commands: ClassVar[list[tuple[Any, ...]]] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(args)
        raise AssertionError(f"Redis was called: {args[:1]}")


@pytest.fixture
def no_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Any, ...]]]:
    def build(_: Settings) -> redis.Redis:
        return NoRedis()

    commands: ClassVar[list[tuple[Any, ...]]] = []
    monkeypatch.setattr(NoRedis, "commands", commands)
    monkeypatch.setattr(sluice_redis, "build_client", build)
    sluice_redis.reset_redis()
    yield commands
    sluice_redis.reset_redis()


@contextmanager
def calls_into(directory: str) -> Iterator[list[str]]:
    """The functions of ``directory``'s modules called in this thread while the block runs."""
    seen: list[str] = []

    def profile(frame: Any, event: str, _: Any) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(directory):
            seen.append(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(None)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def set_settings(**values: Any) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"SLUICE_{name.upper()}", str(value).lower())
        reload_settings()

    return set_settings


@pytest.fixture
def tripped(aws: AwsStack, redis_client: redis.Redis, settings: Callable[..., None]) -> Environment:
    settings(mollifier_enabled=True, mollifier_trip_threshold=0)
    return Environment(org_id="org_a", env_id="env_a", org_flags={"mollifierEnabled": True})


def spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple[tuple[Any, ...], Any]]:
    """Record the arguments and result of each call of ``engine.<name>`` made through the module."""
    real = getattr(engine, name)
    calls: list[tuple[tuple[Any, ...], Any]] = []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        calls.append((args, result))
        return result

    monkeypatch.setattr(engine, name, recorded)
    return calls


def stored_items(aws: AwsStack, run_id: str, key_pk: str) -> tuple[dict[str, Any], dict[str, Any]]:
    runs, keys = aws.stack.physical_name("RunsTable"), aws.stack.physical_name("IdempotencyTable")
    run = aws.dynamodb.get_item(TableName=runs, Key={"runId": {"S": run_id}}, ConsistentRead=True)["Item"]
    key = aws.dynamodb.get_item(TableName=keys, Key={"pk": {"S": key_pk}}, ConsistentRead=True)["Item"]
    return run, key


# --- the kill switch -------------------------------------------------------------------------


def test_switch_off_runs_no_mollifier_code_and_sends_redis_nothing(
    aws: AwsStack, no_redis: list[tuple[Any, ...]]
) -> None:
    env = Environment(org_id="org_a", env_id="env_a", org_flags={"mollifierEnabled": True})
    with calls_into(MOLLIFIER_DIR) as mollifier_calls:
        answer = triggers.trigger(env, "hello", TRIGGER)
        again = triggers.trigger(env, "hello", TRIGGER)
        run = triggers.read_run(env, answer.id)
        with pytest.raises(NotFound):
            triggers.read_run(env, "run_unknown")
    assert (answer.is_cached, again.id, again.is_cached) == (False, answer.id, True)
    assert (run["buffered"], run["status"]) == (False, "DELAYED")
    assert mollifier_calls == [] and no_redis == []


def test_switch_on_is_seen_by_the_same_instruments(
    aws: AwsStack, no_redis: list[tuple[Any, ...]], settings: Callable[..., None]
) -> None:
    """The control for the test above: with the switch on, the probes do see mollifier code and
    Redis commands (the gate fails open past the refusing client)."""
    settings(mollifier_enabled=True, mollifier_trip_threshold=0)
    env = Environment(org_id="org_a", env_id="env_a", org_flags={"mollifierEnabled": True})
    with calls_into(MOLLIFIER_DIR) as mollifier_calls:
        answer = triggers.trigger(env, "hello", {"payload": 1})
    assert answer.notice is None, "passed through"
    assert "evaluate_gate" in mollifier_calls and no_redis != []


def test_a_buffer_that_cannot_connect_passes_the_trigger_through(
    tripped: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cluster_down() -> None:  # a cluster client connects when it is built
        raise redis.exceptions.RedisClusterException("Redis Cluster cannot be connected")

    monkeypatch.setattr(smoothing, "get_buffer", cluster_down)
    answer = triggers.trigger(tripped, "hello", {"payload": 1})
    assert answer.notice is None and engine.get_run(tripped, answer.id).buffered is False


# --- one prepared run ------------------------------------------------------------------------


def test_pass_through_hands_the_one_prepared_run_to_the_engine(
    aws: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepares, creates = spy(monkeypatch, "prepare"), spy(monkeypatch, "create")
    env = Environment(org_id="org_a", env_id="env_a")
    answer = triggers.trigger(env, "hello", TRIGGER)
    [(_, prepared)] = prepares
    [((created,), _)] = creates
    assert created is prepared and answer.id == prepared.run.id


def test_mollify_hands_the_one_prepared_run_to_the_buffer(
    tripped: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepares, creates = spy(monkeypatch, "prepare"), spy(monkeypatch, "create")
    answer = triggers.trigger(tripped, "hello", TRIGGER)
    [(_, prepared)] = prepares
    entry = get_buffer().get_entry("org_a", answer.id)
    assert answer.notice is not None and creates == []
    assert entry is not None and (entry.runId, entry.createdAt) == (prepared.run.id, prepared.run.createdAt)
    snapshot = entry.parsed_snapshot()
    assert snapshot.body == prepared.body
    assert snapshot.idempotencyKeyExpiresAt == prepared.run.idempotencyKeyExpiresAt


def test_a_signal_that_cannot_be_sent_creates_the_same_prepared_run_now(
    tripped: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    def queue_down(*args: Any, **kwargs: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://sqs")

    monkeypatch.setattr("sluice.mollifier.intake.send_signal", queue_down)
    prepares, creates = spy(monkeypatch, "prepare"), spy(monkeypatch, "create")
    answer = triggers.trigger(tripped, "hello", TRIGGER)
    [(_, prepared)] = prepares
    [((created,), _)] = creates
    assert created is prepared and answer.id == prepared.run.id and answer.notice is None
    assert get_buffer().get_entry("org_a", answer.id) is None, "the unsignalled copy is withdrawn"


def test_a_trigger_answered_503_leaves_no_buffered_copy(
    tripped: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the signal nor the engine's write: the 503 must mean nothing happened, so the
    entry accepted first is withdrawn (the stale sweep would otherwise re-signal it into a run)."""

    def down(*args: Any, **kwargs: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://aws")

    monkeypatch.setattr("sluice.mollifier.intake.send_signal", down)
    monkeypatch.setattr(triggers.engine, "create", down)
    prepares = spy(monkeypatch, "prepare")
    with pytest.raises(EndpointConnectionError):
        triggers.trigger(tripped, "hello", {"payload": 1, "options": {"idempotencyKey": "k"}})
    [(_, prepared)] = prepares
    buffer = get_buffer()
    assert buffer.get_entry("org_a", prepared.run.id) is None
    assert buffer.client.llen(buffer.keys_for("org_a").queue("org_a", "env_a")) == 0
    assert buffer.lookup_idempotency("org_a", "env_a", "hello", "k") is None


def test_an_unsignalled_entry_a_drainer_popped_is_answered_with_its_id(
    tripped: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drainer that popped the entry (another trigger's signal) makes it a run: answer its id."""
    buffer = get_buffer()

    def popped_meanwhile(*args: Any, **kwargs: Any) -> None:
        assert [entry.runId for entry in buffer.pop_batch(1)]
        raise EndpointConnectionError(endpoint_url="https://sqs")

    monkeypatch.setattr("sluice.mollifier.intake.send_signal", popped_meanwhile)
    creates = spy(monkeypatch, "create")
    answer = triggers.trigger(tripped, "hello", TRIGGER)
    assert creates == [] and answer.notice is not None
    entry = buffer.get_entry("org_a", answer.id)
    assert entry is not None and entry.status == "DRAINING"


# --- the same run either way -----------------------------------------------------------------


@pytest.mark.parametrize("offloaded", [False, True], ids=["inline", "offloaded"])
def test_the_buffer_path_and_pass_through_store_the_same_run(
    aws: AwsStack, tripped: Environment, settings: Callable[..., None], offloaded: bool
) -> None:
    if offloaded:
        settings(payload_offload_bytes=16)
    body = engine.parse_trigger_body(TRIGGER, tripped.tenant)
    prepared: PreparedRun = engine.prepare(tripped, "hello", body)
    assert prepared.key is not None
    run_id, key_pk = prepared.run.id, prepared.key[0]

    assert engine.create(prepared).is_cached is False
    direct = stored_items(aws, run_id, key_pk)
    aws.dynamodb.delete_item(TableName=aws.stack.physical_name("RunsTable"), Key={"runId": {"S": run_id}})
    aws.dynamodb.delete_item(TableName=aws.stack.physical_name("IdempotencyTable"), Key={"pk": {"S": key_pk}})

    accepted = mollify(get_buffer(), tripped, prepared)
    assert accepted is not None and accepted.kind == "accepted"
    [message] = aws.receive_all("DrainQueue")
    assert drain_batch([DrainSignal.model_validate_json(message["Body"])]) == ["drained"]
    drained = stored_items(aws, run_id, key_pk)

    assert drained == direct
    assert ('"payloadRef":"payloads/' in direct[0]["doc"]["S"]) is offloaded


def test_a_buffered_run_reads_as_the_run_it_becomes(aws: AwsStack, tripped: Environment) -> None:
    answer = triggers.trigger(tripped, "hello", TRIGGER)
    buffered = triggers.read_run(tripped, answer.id)
    [message] = aws.receive_all("DrainQueue")
    assert drain_batch([DrainSignal.model_validate_json(message["Body"])]) == ["drained"]
    created = triggers.read_run(tripped, answer.id)
    assert (buffered.pop("buffered"), created.pop("buffered")) == (True, False)
    assert (buffered.pop("status"), created.pop("status")) == ("QUEUED", "DELAYED")
    assert buffered == created
