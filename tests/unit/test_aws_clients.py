"""How sluice.aws makes its clients, and what devstack's function workers inherit for it."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.loaders
import pytest

from devstack.botocore_models import SERVICES, preload
from sluice import aws


def test_threads_asking_at_once_share_one_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    aws.reset_clients()
    start, got = threading.Barrier(8), []

    def ask() -> None:
        start.wait()
        got.append(aws.dynamodb())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in got}) == 1 and got[0].meta.region_name == "eu-west-1"
    aws.reset_clients()


def test_after_the_preload_a_new_session_parses_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    preload()
    parsed: list[str] = []
    real = botocore.loaders.JSONFileLoader.load_file

    def load_file(self: Any, file_path: str) -> Any:
        parsed.append(file_path)
        return real(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", load_file)
    session = boto3.session.Session()
    for service in SERVICES:
        made = session.client(service, region_name="eu-west-1", endpoint_url="http://127.0.0.1:9")  # type: ignore[call-overload]
        assert made.meta.region_name == "eu-west-1"
    assert parsed == []
