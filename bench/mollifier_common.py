"""What the mollifier benchmarks share: an in-process stack (redis-server, moto with template.yaml's
resources, the functions' settings) and percentiles."""

from __future__ import annotations

import os
import statistics
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto import mock_aws

from devstack.handlers import context_for, load_handler
from devstack.provision import create_all
from devstack.services import start_redis
from devstack.template import REGION, Stack
from sluice import aws as sluice_aws
from sluice.auth import clear_auth_cache
from sluice.config import reload_settings
from sluice.redis import reset_redis

ENDPOINT = f"https://sqs.{REGION}.amazonaws.com"


def configure(**values: Any) -> None:
    for name, value in values.items():
        os.environ[f"SLUICE_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    reload_settings()
    reset_redis()


@contextmanager
def local_stack() -> Iterator[tuple[Stack, str, dict[str, Any]]]:
    """(stack, redis url, boto3 clients) with SLUICE_* set as the functions see them."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    redis_server = start_redis()
    try:
        with mock_aws():
            stack = Stack()
            clients = {name: boto3.client(name, region_name=REGION) for name in ("sqs", "dynamodb", "s3")}
            create_all(stack, clients, ENDPOINT)
            for spec in stack.functions(ENDPOINT):
                for key, value in spec.environment.items():
                    if key.startswith("SLUICE_"):
                        os.environ[key] = value
            os.environ["SLUICE_REDIS_URL"] = redis_server.url
            os.environ["SLUICE_REDIS_CLUSTER"] = "false"
            reload_settings()
            sluice_aws.reset_clients()
            reset_redis()
            clear_auth_cache()
            yield stack, redis_server.url, clients
    finally:
        redis_server.stop()


def handler_for(stack: Stack, name: str) -> Any:
    spec = stack.function(name, ENDPOINT)
    handler = load_handler(spec)
    return lambda event: handler(event, context_for(spec))


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]
    )


def run_drainers(concurrency: int, total: int, drain_one: Callable[[], object]) -> None:
    """``concurrency`` threads call ``drain_one`` until it has been called ``total`` times."""
    remaining = [total]
    lock = threading.Lock()

    def drainer() -> None:
        while True:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
            drain_one()

    threads = [threading.Thread(target=drainer) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
