"""Fixtures shared by every test layer: a real redis-server and moto (in-process for unit tests),
the three-node Redis Cluster, and the devstacks of integration and e2e tests (``devstack`` is
the session's stack on template.yaml, ``devstack_factory`` starts stacks with an environment,
template or options of their own; tests/devstack_fixtures.py).

Isolation rule. A pytest process builds one moto world (every queue, table and bucket of
template.yaml) and one redis-server, and shares them between its tests:

- ``aws`` empties every queue, table, table stream and bucket before the test (resources stay
  as template.yaml declares them; a test's streams hold only its own records, from TRIM_HORIZON).
  A test that changes a resource itself (attributes, a deleted queue, a notification
  configuration) must put it back.
- ``redis_client`` flushes Redis before the test.
- The session ``devstack`` is shared by every test of the process and never reset: use an
  org/env of your own there (``devstack.create_key``), never the stack's default key for state
  you assert on. Session fixtures live here only: one imported into a test module or another
  conftest is another instance (another stack, another cluster) that lives until the session
  ends.

Under xdist each worker is such a process, but the session ``devstack`` is one for all of them:
the first worker that asks starts it and the controller stops it at the end (a stack's start,
its idle pollers and its functions' cold starts, once per worker, were a fifth of the suite's
CPU). The tests of the Redis Cluster, of ``lifecycle_devstack`` (their
workers need RunQueue to themselves) and those sharing a module-scoped stack are kept on one
worker by ``xdist_group``, so those start once; every other test goes to whichever worker is
free.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from moto import mock_aws
from moto.core.custom_responses_mock import reset_responses_mock
from moto.core.models import responses_mock
from moto.dynamodb.models import dynamodb_backends
from moto.s3.models import s3_backends
from moto.sqs.models import sqs_backends

from devstack.apigw import Route, http_event
from devstack.botocore_models import share_loader
from devstack.handlers import context_for, load_handler
from devstack.moto_atomic import patch_moto
from devstack.provision import create_all
from devstack.redis_cluster import RedisCluster, start_cluster
from devstack.services import start_redis
from devstack.streams import StreamReader, StreamSource, in_process_invoke
from devstack.template import REGION, Stack
from devstack.testing.launcher import LOG_TAIL, stop_shared_devstack
from devstack.testing.queues import decode_bodies, receive_all
from sluice.auth import Environment, clear_auth_cache, provision_key
from sluice.config import get_settings, reload_settings
from sluice.redis import reset_redis
from tests.devstack_fixtures import SHARED_DEVSTACK, devstack, devstack_factory, lifecycle_devstack

__all__ = ["devstack", "devstack_factory", "lifecycle_devstack"]

_SHARED_DEVSTACK = pytest.StashKey[Path]()
MOTO_ENDPOINT = f"https://sqs.{REGION}.amazonaws.com"
# Set by the redis fixtures, never from the template: tests always talk to their own Redis.
_REDIS_SETTINGS = ("SLUICE_REDIS_URL", "SLUICE_REDIS_CLUSTER")


def _reset_process_state() -> None:
    # AWS clients are kept: sluice.aws makes a new one when the endpoint, region or settings change.
    # A test that registers event handlers on one unregisters them (tests/unit/engine/test_dispatch.py).
    get_settings.cache_clear()  # read again on first use: many tests never read them
    reset_redis()
    clear_auth_cache()


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        # Under xdist, where this controller's workers share one session devstack.
        config.stash[_SHARED_DEVSTACK] = Path(tempfile.mkdtemp(prefix="devstack-shared-"))
    # Tests that change a client's settings get a new one, and resets make new sessions: each
    # parsed botocore's models again (~45 ms a client, more than most tests).
    share_loader()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: each worker is told where the session devstack is shared (tests/devstack_fixtures.py).
    One stack for all workers rather than one each: a stack's start, its idle pollers and every
    function's cold starts, three times over, were a fifth of the suite's CPU."""
    node.workerinput[SHARED_DEVSTACK] = str(node.config.stash[_SHARED_DEVSTACK])


def pytest_unconfigure(config: pytest.Config) -> None:
    if (directory := config.stash.get(_SHARED_DEVSTACK, None)) is not None:
        stop_shared_devstack(directory)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A failed test on the session's stack gets the stack's log, as a test's own stack prints it
    (start_devstack): the session's outlives the test, so nothing else would show it."""
    report = yield
    stack = getattr(item, "funcargs", {}).get("devstack")
    if report.failed and report.when == "call" and stack is not None:
        report.sections.append((f"devstack log ({stack.log_path})", stack.log()[-LOG_TAIL:]))
    return report


# First: xdist's own hook (a plugin registered after this file) reads the groups set here.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # xdist's loadgroup schedules by test id: of tests sharing one, it runs one and drops the rest.
    ids = Counter(item.nodeid for item in items)
    if shared := sorted(nodeid for nodeid, n in ids.items() if n > 1):
        raise pytest.UsageError(f"tests share an id, so xdist would run one of each: {shared}")
    for item in items:
        if "lifecycle_devstack" in getattr(item, "fixturenames", ()):
            group = "lifecycle-devstack"
        elif item.get_closest_marker("cluster"):
            group = "redis-cluster"
        elif _uses_a_module_fixture(item):
            group = item.nodeid.split("::", 1)[0]  # a module's own stack starts once
        else:
            continue
        item.add_marker(pytest.mark.xdist_group(group))


def _uses_a_module_fixture(item: pytest.Item) -> bool:
    # pytest says which fixtures a test uses but not their scopes, outside this attribute.
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(defs[-1].scope == "module" for defs in info.name2fixturedefs.values())


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server this test session started, or the one ``REDIS_URL`` names."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    server = start_redis()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """The session's three-node Redis Cluster (started on first use); ``flushall`` it first."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_client(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """An empty Redis, with ``SLUICE_REDIS_URL`` pointing at it."""
    monkeypatch.setenv("SLUICE_REDIS_URL", redis_url)
    monkeypatch.setenv("SLUICE_REDIS_CLUSTER", "false")
    _reset_process_state()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    yield client
    client.close()
    reset_redis()


@dataclass
class AwsStack:
    stack: Stack
    queue_urls: dict[str, str]
    sqs: Any
    dynamodb: Any
    s3: Any
    # Readers made for this test: they start at the streams' start, which ``aws`` trimmed.
    streams: list[tuple[StreamReader, Any]] = field(default_factory=list)

    def run_streams(self, max_polls: int = 100) -> int:
        """Run the template's DynamoDB stream event sources (the dispatcher) in-process until
        they make no more progress (nothing new, or a failing batch), as the deployed mappings
        would have by now; returns how many records their checkpoints moved past."""
        total = 0
        for _ in range(max_polls):
            progressed = sum(reader.poll_once(invoke) for reader, invoke in self.streams)
            total += progressed
            if not progressed:
                break
        return total

    def run_records(self, run_ids: list[str] | set[str]) -> list[dict[str, Any]]:
        """RunsTable's stream records of these runs, in stream order (the moto world, and its
        stream, outlive a test)."""
        streams = boto3.client("dynamodbstreams", region_name=REGION)
        arn = self.dynamodb.describe_table(TableName=self.stack.physical_name("RunsTable"))["Table"][
            "LatestStreamArn"
        ]
        records: list[dict[str, Any]] = []
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            # Page to the end: a page holds 1000 records, and earlier tests of the session wrote many.
            while (page := streams.get_records(ShardIterator=iterator))["Records"]:
                records += page["Records"]
                iterator = page["NextShardIterator"]
        return [r for r in records if r["dynamodb"]["Keys"]["runId"]["S"] in run_ids]

    def receive_all(self, queue: str, wait: int = 0) -> list[dict[str, Any]]:
        """A queue's currently visible messages, left on it (after the stream mappings ran)."""
        self.run_streams()
        return receive_all(self.sqs, self.queue_urls[queue], wait)

    def bodies(self, queue: str) -> list[Any]:
        return decode_bodies(self.receive_all(queue))


@dataclass
class _MotoWorld:
    """moto's in-process backends with template.yaml's resources, built once per pytest process."""

    mock: Any
    stack: Stack
    queue_urls: dict[str, str]
    clients: dict[str, Any]
    settings: dict[str, str]
    streams: list[tuple[StreamReader, Any]] = field(default_factory=list)

    def stream_readers(self) -> list[tuple[StreamReader, Any]]:
        """The template's DynamoDB stream event sources, each a reader and its in-process handler."""
        if not self.streams:
            dynamodb, streams = self.clients["dynamodb"], self.clients["dynamodbstreams"]
            for spec in self.stack.functions(MOTO_ENDPOINT):
                for event in spec.events:
                    if event.type == "DynamoDB":
                        source = StreamSource.from_event(event)
                        reader = StreamReader(source, dynamodb, streams, print)
                        invoke = in_process_invoke(load_handler(spec), context_for(spec))
                        self.streams.append((reader, invoke))
        return self.streams

    def empty(self) -> None:
        """Empty every queue, table, table stream and bucket, leaving the resources as create_all
        made them.

        In moto's backends rather than through the API, by hand because moto has no such reset
        short of deleting the resources: the API took ~17 calls a test (a purge per queue, a scan
        and deletes per table), more than most tests cost, and no API trims a stream. A trimmed
        stream goes on numbering its records, and the readers start anew at its (new) start."""
        account = self.stack.account
        sqs = sqs_backends[account][REGION]
        for url in self.queue_urls.values():
            sqs.purge_queue(url.rsplit("/", 1)[1])
        dynamodb = dynamodb_backends[account][REGION]
        for logical_id in self.stack.resources_of("AWS::DynamoDB::Table"):
            table = dynamodb.get_table(self.stack.physical_name(logical_id))
            table.items.clear()
            if (shard := table.stream_shard) is not None:
                shard.starting_sequence_number += len(shard.items)
                shard.items = []
        self.streams.clear()
        s3 = s3_backends[account]["global"]
        for logical_id in self.stack.resources_of("AWS::S3::Bucket"):
            bucket = self.stack.physical_name(logical_id)
            if s3.get_bucket(bucket).keys:  # the API disposes of the objects' buffers
                self._empty_bucket(bucket)

    def _empty_bucket(self, bucket: str) -> None:
        s3 = self.clients["s3"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            if objects := [{"Key": o["Key"]} for o in page.get("Contents", [])]:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})


def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    per_service = ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB")
    for name in ("AWS_ENDPOINT_URL", *per_service, "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    patch_moto()
    # empty() purges every queue before each test; real SQS allows one purge a minute.
    monkeypatch.setenv("MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR", "false")


@pytest.fixture(scope="session")
def _moto_world() -> _MotoWorld:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _aws_env(monkeypatch)
        mock = mock_aws()
        mock.start()
        try:
            stack = Stack()
            clients = {
                name: boto3.client(name, region_name=REGION)
                for name in ("sqs", "dynamodb", "dynamodbstreams", "s3", "secretsmanager")
            }
            urls = create_all(stack, clients, MOTO_ENDPOINT)
            settings = {
                key: value
                for spec in stack.functions(MOTO_ENDPOINT)
                for key, value in spec.environment.items()
                if key.startswith("SLUICE_") and key not in _REDIS_SETTINGS
            }
        finally:
            # Patching is on only while a test that asks for ``aws`` runs: integration tests
            # talk to devstack's moto server through the same botocore.
            mock.stop(remove_data=False)
    return _MotoWorld(mock, stack, urls, clients, settings)


@pytest.fixture
def aws(_moto_world: _MotoWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsStack]:
    """moto in-process with every queue, table and bucket of template.yaml, empty, and the
    functions' ``SLUICE_*`` settings taken from the template."""
    _aws_env(monkeypatch)
    world = _moto_world
    world.mock.start(reset=False)
    try:
        world.empty()
        for key, value in world.settings.items():
            monkeypatch.setenv(key, value)
        _reset_process_state()
        clients = world.clients
        yield AwsStack(
            world.stack,
            world.queue_urls,
            clients["sqs"],
            clients["dynamodb"],
            clients["s3"],
            world.stream_readers(),
        )
    finally:
        world.mock.stop(remove_data=False)
        # Each start adds moto's ~1300 `requests` callbacks to its registry again, and stop leaves
        # them there: 300 tests grew a worker by ~150 MB (a full garbage collection took 157 ms
        # instead of ~25). The tests call AWS through botocore, never `requests`.
        reset_responses_mock(responses_mock)
        _reset_process_state()


@dataclass
class Tenant:
    api_key: str
    env: Environment

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"}


def make_tenant(org_id: str = "org_a", env_id: str = "env_a_dev", **flags: Any) -> Tenant:
    key = provision_key(org_id, env_id, flags=flags or None)
    return Tenant(key, Environment(org_id=org_id, env_id=env_id, org_flags=flags))


@pytest.fixture
def tenant(aws: AwsStack) -> Tenant:
    return make_tenant()


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture
def call_api(aws: AwsStack) -> Any:
    """Call a route's real handler in-process with an API Gateway v2 event, as devstack does."""
    routes = [
        (Route(ev.properties["Method"].upper(), ev.properties["Path"], spec.name), spec)
        for spec in aws.stack.functions(MOTO_ENDPOINT)
        for ev in spec.events
        if ev.type == "HttpApi"
    ]

    def call(
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        raw_path, _, query = path.partition("?")
        data = body.encode() if isinstance(body, str) else body
        hdrs = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            hdrs.setdefault("content-type", "application/json")
        for route, spec in routes:
            params = route.match(method, raw_path)
            if params is not None:
                event = http_event(route, raw_path, params, hdrs, body=data or b"", raw_query=query)
                response = load_handler(spec)(event, context_for(spec))
                return HttpResult(
                    response["statusCode"], response.get("headers", {}), response.get("body", "")
                )
        raise AssertionError(f"no route for {method} {raw_path}")

    return call


@pytest.fixture
def retry_at_once(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed attempt's retry is due at once (no backoff), so the next start needs no clock."""
    monkeypatch.setenv("SLUICE_RUN_RETRY_MIN_DELAY_MS", "0")
    monkeypatch.setenv("SLUICE_RUN_RETRY_MAX_DELAY_MS", "0")
    reload_settings()
