"""Start devstack as a subprocess and drive it: for integration and e2e tests and the demo.

    from devstack.testing.launcher import start_devstack

    with start_devstack(env={"SLUICE_MOLLIFIER_ENABLED": "true"}) as stack:
        httpx.post(f"{stack.api_url}/api/v1/tasks/hello/trigger", headers=stack.headers, json={...})
        stack.receive_all("RunQueue")

Each stack gets its own state dir, HTTP port, redis-server and moto server, so several run side by
side in one session. Leaving the ``with`` block sends SIGTERM and asserts that devstack exited
and left no child process behind. ``tests/devstack_fixtures.py`` wraps this in pytest fixtures.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
import redis
from botocore.config import Config

from devstack import endpoints, stack_file
from devstack.services import free_port
from devstack.testing.processes import running, stop_devstack, stop_pid
from devstack.testing.queues import decode_bodies, receive_all

ROOT = Path(__file__).resolve().parents[2]
# What a test run's own environment must not pass on to a stack: the stack decides these itself
# (tests set SLUICE_* for their in-process code; a stack gets only the ones a test asks for).
_NOT_INHERITED_PREFIXES = ("SLUICE_",)
_NOT_INHERITED = {"REDIS_URL"}
LOG = "devstack.log"
LOG_TAIL = 20_000  # characters of a stack's log shown under a failed test


class DevstackFailed(RuntimeError):
    pass


@dataclass
class DevStack:
    """A running devstack: its stack.json, plus clients for what tests look at."""

    info: dict[str, Any]
    state_dir: Path
    # None where this process attached to a stack another one started (shared_devstack).
    process: subprocess.Popen[bytes] | None
    log_path: Path
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def api_url(self) -> str:
        return str(self.info["apiUrl"])

    @property
    def api_key(self) -> str:
        return str(self.info["apiKey"])

    @property
    def org_id(self) -> str:
        return str(self.info["orgId"])

    @property
    def env_id(self) -> str:
        return str(self.info["envId"])

    @property
    def redis_url(self) -> str:
        return str(self.info["redisUrl"])

    @property
    def aws_endpoint_url(self) -> str:
        return str(self.info["awsEndpointUrl"])

    def aws_endpoint(self, service: str) -> str:
        """The endpoint serving one service: stacks may mix emulators, and a companion service
        (secretsmanager, dynamodbstreams) is served where the service it goes with is."""
        urls = endpoints.of(self.info)
        if service in urls or service in endpoints.COMPANIONS:
            return endpoints.url_of(urls, service)
        return self.aws_endpoint_url

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization`` for the stack's dev key."""
        return {"authorization": f"Bearer {self.api_key}"}

    def url(self, path: str) -> str:
        return self.api_url + path

    def client(self, service: str) -> Any:
        """A boto3 client for the stack's AWS endpoint (sqs, dynamodb, s3, ...)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service,  # type: ignore[call-overload]
                endpoint_url=self.aws_endpoint(service),
                region_name=self.info.get("region", "us-east-1"),
                aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                config=Config(retries={"mode": "standard", "max_attempts": 4}),
            )
        return self._clients[service]

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True)

    def queue_url(self, logical_id: str) -> str:
        return str(self.info["queueUrls"][logical_id])

    def table(self, logical_id: str) -> str:
        return str(self.info["tables"][logical_id])

    def bucket(self, logical_id: str) -> str:
        return str(self.info["buckets"][logical_id])

    def send(self, queue: str, body: Any, **kwargs: Any) -> str:
        """Send a message (non-strings as JSON) to a queue by logical id; returns its MessageId."""
        text = body if isinstance(body, str) else json.dumps(body)
        response = self.client("sqs").send_message(QueueUrl=self.queue_url(queue), MessageBody=text, **kwargs)
        return str(response["MessageId"])

    def receive_all(self, queue: str, wait: int = 0) -> list[dict[str, Any]]:
        """Take every currently visible message of a queue (they become invisible for its
        visibility timeout; nothing is deleted). ``wait`` long-polls for the first."""
        return receive_all(self.client("sqs"), self.queue_url(queue), wait)

    def bodies(self, queue: str, wait: int = 0) -> list[Any]:
        """The bodies of :meth:`receive_all`, JSON-decoded where they are JSON."""
        return decode_bodies(self.receive_all(queue, wait))

    def queue_depth(self, queue: str) -> tuple[int, int]:
        """(visible, in flight) messages of a queue, as SQS approximates them."""
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url(queue),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def cli(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m devstack ARGS --state-dir <this stack's>``."""
        return run_cli(*args, "--state-dir", str(self.state_dir), input=input, timeout=timeout)

    def create_key(self, org_id: str, env_id: str, **flags: Any) -> str:
        """A new API key for ``env_id`` of ``org_id`` (``flags`` replace the org's flags)."""
        args = ["keys", "create", "--org", org_id, "--env", env_id]
        for name, value in flags.items():
            args += ["--flag", f"{name}={json.dumps(value)}"]
        done = self.cli(*args)
        if done.returncode != 0:
            raise DevstackFailed(f"keys create failed: {done.stderr}")
        return str(json.loads(done.stdout)["apiKey"])

    def health(self) -> dict[str, Any] | None:
        """What the stack last reported about its children and its RunQueue consumer."""
        return stack_file.read_health(self.state_dir)

    def log(self) -> str:
        """What devstack printed so far (its stderr and the functions' logs)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        if "redis" in self.__dict__:
            self.redis.close()


def run_cli(
    *args: str, input: str | None = None, timeout: float = 60, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=ROOT,
        env=_child_env(env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _child_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_NOT_INHERITED_PREFIXES) and k not in _NOT_INHERITED
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@contextmanager
def start_devstack(
    env: Mapping[str, str] | None = None,
    template: str | Path | None = None,
    args: Sequence[str] = (),
    *,
    state_dir: str | Path | None = None,
    startup_timeout: float = 90,
) -> Iterator[DevStack]:
    """Start ``python -m devstack up`` and yield the running stack once stack.json is written.

    ``env`` adds to (or overrides) the environment devstack starts with: ``SLUICE_*`` settings
    for every function, ``REDIS_URL`` / ``AWS_ENDPOINT_URL`` to use running services. The test
    process's own ``SLUICE_*`` and ``REDIS_URL`` are not passed on. ``args`` are extra ``up``
    options, e.g. ``["--schedule-scale", "60", "--concurrency", "4"]``; RunQueue has no consumer
    unless ``args`` has ``--run-consumer``, and function workers start on first use unless ``args``
    has ``--warm``.
    """
    owned_dir = state_dir is None
    directory = Path(tempfile.mkdtemp(prefix="devstack-")) if state_dir is None else Path(state_dir)
    process = _launch(directory, env, template, args)
    stack: DevStack | None = None
    try:
        info = _wait_for_stack(process, directory, startup_timeout)
        stack = DevStack(info, directory, process, directory / LOG)
        yield stack
    except BaseException:
        # pytest shows a failed test's stderr: the stack's log is what explains most failures.
        sys.stderr.write(f"--- devstack log ({directory / LOG}) ---\n")
        sys.stderr.write((directory / LOG).read_text(encoding="utf-8", errors="replace")[-LOG_TAIL:])
        raise
    finally:
        if stack is not None:
            stack.close()
        try:
            stop_devstack(process)
        finally:
            if owned_dir and process.poll() is not None:
                shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def shared_devstack(directory: Path, startup_timeout: float = 90) -> Iterator[DevStack]:
    """The stack in ``directory``, which several processes share (pytest-xdist's workers): the
    first to ask starts it, under a file lock, and leaves it running when it is done; the others
    attach to it. :func:`stop_shared_devstack` stops it once every user is done."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = stack_file.read_stack(directory)
        process = None
        if info is None or not running(int(info["pid"])):
            process = _launch(directory)
            info = _wait_for_stack(process, directory, startup_timeout)
    stack = DevStack(info, directory, process, directory / LOG)
    try:
        yield stack
    finally:
        stack.close()


def stop_shared_devstack(directory: Path) -> None:
    """Stop the stack :func:`shared_devstack` started in ``directory``, if any, as
    :func:`start_devstack` stops its own (no process left behind), and remove ``directory``."""
    try:
        if (info := stack_file.read_stack(directory)) is not None:
            stop_pid(int(info["pid"]))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _launch(
    directory: Path,
    env: Mapping[str, str] | None = None,
    template: str | Path | None = None,
    args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    extra = dict(env or {})
    up_args = ["up", "--port", str(free_port()), "--state-dir", str(directory), *args]
    # Tests read RunQueue themselves: no consumer unless one is asked for.
    if not any(a.startswith("--run-consumer") for a in args):
        up_args += ["--run-consumer", "none"]
    # A test uses a few of the template's functions: warming a worker for each of them at start
    # took twice the CPU of the rest of a stack's start. Workers start on first use unless asked.
    if not any(a in ("--warm", "--no-warm") for a in args):
        up_args.append("--no-warm")
    if template is not None:
        up_args += ["--template", str(Path(template).resolve())]
    # Against a shared AWS endpoint (LocalStack) each stack needs names of its own.
    shared_aws = "--aws" in args or any(name.startswith("AWS_ENDPOINT_URL") for name in (*extra, *os.environ))
    if shared_aws and not any(a.startswith("Stage=") for a in args):
        up_args += ["--param", f"Stage=t{uuid.uuid4().hex[:8]}"]
    with open(directory / LOG, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "devstack", *up_args],
            cwd=ROOT,
            env=_child_env(extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait_for_stack(process: subprocess.Popen[bytes], state_dir: Path, timeout: float) -> dict[str, Any]:
    log_path = state_dir / LOG
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevstackFailed(
                f"devstack exited with {process.returncode} while starting:\n"
                + log_path.read_text(encoding="utf-8", errors="replace")
            )
        info = stack_file.read_stack(state_dir)
        if info is not None and info.get("pid") == process.pid:
            return info
        time.sleep(0.05)
    raise DevstackFailed(
        f"devstack did not write {state_dir / 'stack.json'} within {timeout:.0f}s:\n"
        + log_path.read_text(encoding="utf-8", errors="replace")
    )
