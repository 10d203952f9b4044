"""A client that ``openapi-python-client`` generates from the committed ``openapi.json`` triggers a
task and runs a batch (create, then its NDJSON items) against devstack: the document keeps these
routes, names them, and types their answers well enough for a generator on its own.

It prints how many files the generator wrote (run with ``-s`` to see it): one error model for the
whole API is what keeps that number down.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from devstack.testing.launcher import DevStack

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi.json"
PACKAGE = "sluice_generated"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, importable for the module's tests."""
    root = tmp_path_factory.mktemp("generated")
    config = root / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter pass: nothing the test reads, and faster
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [str(generator), "generate", "--path", str(DOCUMENT), "--output-path", str(root / PACKAGE),
         "--meta", "none", "--config", str(config)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "will not be generated" not in done.stdout, done.stdout
    files = sorted((root / PACKAGE).rglob("*.py"))
    print(f"\nopenapi-python-client generated {len(files)} Python files from openapi.json")
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


@pytest.mark.devstack
@pytest.mark.tools
def test_a_generated_client_triggers_a_task_and_reads_the_run(
    generated: ModuleType, devstack: DevStack
) -> None:
    models = _module(generated, "models")
    trigger_task = _module(generated, "api.runs.trigger_task")
    get_run = _module(generated, "api.runs.get_run")
    key = devstack.create_key("org_generated", "env_generated")
    client = generated.AuthenticatedClient(base_url=devstack.api_url, token=key)

    body = models.TriggerBody.from_dict({"payload": {"n": 1}, "options": {"idempotencyKey": "gen-1"}})
    answer = trigger_task.sync(task_id="generated-task", client=client, body=body)
    assert isinstance(answer, models.TriggerResponse) and answer.is_cached is False
    again = trigger_task.sync(task_id="generated-task", client=client, body=body)
    assert isinstance(again, models.TriggerResponse) and again.id == answer.id and again.is_cached is True

    run = get_run.sync(run_id=answer.id, client=client)
    assert isinstance(run, models.RunView)
    assert run.id == answer.id and run.task_id == "generated-task" and run.payload == {"n": 1}

    missing = get_run.sync_detailed(run_id="run_none", client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Error)
    assert missing.parsed.code == "not_found"


@pytest.mark.devstack
@pytest.mark.tools
def test_a_generated_client_creates_a_batch_and_streams_its_items(
    generated: ModuleType, devstack: DevStack
) -> None:
    models = _module(generated, "models")
    create_batch = _module(generated, "api.batches.create_batch")
    stream_batch_items = _module(generated, "api.batches.stream_batch_items")
    get_batch = _module(generated, "api.batches.get_batch")
    key = devstack.create_key("org_generated", "env_generated_batch")
    client = generated.AuthenticatedClient(base_url=devstack.api_url, token=key)

    created = create_batch.sync(client=client, body=models.CreateBatchRequest.from_dict({"runCount": 3}))
    assert isinstance(created, models.CreateBatchResponse) and created.run_count == 3
    bad = stream_batch_items.sync_detailed(
        batch_id=created.id, client=client, body=generated.types.File(payload=b"not json\n")
    )
    assert bad.status_code == 400 and isinstance(bad.parsed, models.Error)
    assert bad.parsed.code == "invalid_ndjson"
    lines = b"".join(
        json.dumps({"index": i, "task": "generated", "payload": {"i": i}}).encode() + b"\n" for i in range(3)
    )
    ingested = stream_batch_items.sync(
        batch_id=created.id, client=client, body=generated.types.File(payload=lines)
    )
    assert isinstance(ingested, models.IngestResult)
    assert ingested.items_accepted == 3 and ingested.sealed is True

    deadline = time.monotonic() + 120
    while (status := get_batch.sync(batch_id=created.id, client=client)) is not None:
        if status["status"] == "COMPLETED" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status is not None and status["status"] == "COMPLETED" and status["processedCount"] == 3
