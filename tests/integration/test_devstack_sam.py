"""What `sam local invoke` takes from a running stack: the --env-vars file and keyed events."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from devstack.sam import _rehost
from devstack.testing.launcher import DevStack

pytestmark = pytest.mark.devstack


def test_sam_env_names_the_stack_resources_at_a_host_containers_reach(devstack: DevStack) -> None:
    done = devstack.cli("sam-env")
    assert done.returncode == 0, done.stderr
    env = json.loads(done.stdout)["TriggerIntakeFunction"]
    assert env["SLUICE_RUNS_TABLE"] == devstack.table("RunsTable")
    assert env["SLUICE_PAYLOAD_BUCKET"] == devstack.bucket("PayloadBucket")
    redis_url = urlsplit(env["SLUICE_REDIS_URL"])
    assert redis_url.hostname == "host.docker.internal"
    assert redis_url.port == urlsplit(devstack.redis_url).port
    queue_url = urlsplit(env["SLUICE_RUN_QUEUE_URL"])
    assert queue_url.hostname == "host.docker.internal"
    assert queue_url.path == urlsplit(devstack.queue_url("RunQueue")).path
    for service in ("sqs", "s3", "dynamodb"):
        endpoint = urlsplit(env[f"AWS_ENDPOINT_URL_{service.upper()}"])
        assert endpoint.hostname == "host.docker.internal"
        assert endpoint.port == urlsplit(devstack.aws_endpoint(service)).port
    # Only what the template declares: sam local ignores the rest.
    assert "AWS_LAMBDA_FUNCTION_NAME" not in env and "PATH" not in env


def test_events_carry_the_stack_key(devstack: DevStack, tmp_path: Path) -> None:
    done = devstack.cli("events", "--out-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    written = [Path(line) for line in done.stdout.split()]
    assert {p.name for p in written} >= {"trigger_intake_post.json"}
    post = json.loads((tmp_path / "trigger_intake_post.json").read_text())
    assert post["headers"]["authorization"] == f"Bearer {devstack.api_key}"
    assert all("<devstack-api-key>" not in p.read_text() for p in written)


def test_rehost_moves_loopback_urls_only() -> None:
    assert _rehost("redis://127.0.0.1:6379/0", "h") == "redis://h:6379/0"
    assert _rehost("redis://:pw@localhost:1/0", "h") == "redis://:pw@h:1/0"
    assert (
        _rehost("https://sqs.us-east-1.amazonaws.com/1/q", "h") == "https://sqs.us-east-1.amazonaws.com/1/q"
    )
    assert _rehost("sluice-dev-RunsTable", "h") == "sluice-dev-RunsTable"
    queue = "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/q"
    assert _rehost(queue, "h") == "http://h:4566/000000000000/q"
