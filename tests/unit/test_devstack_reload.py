"""`devstack up --reload`: an edit to a function's folder or to a layer reaches the next
invocation, through new workers; without an edit the warm worker stays."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import reload
from devstack.reload import CodeWatch
from devstack.runtime import FunctionRuntime
from devstack.template import FunctionSpec

HANDLER = """
import os
import sys

sys.path.insert(0, os.environ["LAYER_DIR"])
import reload_probe_lib


def handler(event, context):
    return {{"handler": "{version}", "lib": reload_probe_lib.VALUE, "pid": os.getpid()}}
"""


def write(path: Path, text: str) -> None:
    """Write and move the modification time on by a second: two writes within the file system's
    timestamp granularity must still differ, as an editor's saves seconds apart do."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    stamp = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture
def watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FunctionRuntime, Path, Path]]:
    monkeypatch.setattr(reload, "SCAN_INTERVAL_S", 0.0)
    function, layer = tmp_path / "fn", tmp_path / "layer"
    function.mkdir()
    layer.mkdir()
    write(function / "app.py", HANDLER.format(version="v1"))
    write(layer / "reload_probe_lib.py", "VALUE = 'one'\n")
    spec = FunctionSpec("Reloaded", function, "app.handler", timeout=30, memory=128, environment={})
    runtime = FunctionRuntime(spec, {"LAYER_DIR": str(layer)}, size=2)
    CodeWatch([runtime], [layer], log=lambda _: None).attach()
    yield runtime, function, layer
    runtime.close()


def result(runtime: FunctionRuntime) -> dict[str, str]:
    outcome = runtime.invoke({})
    assert outcome.ok, outcome.error
    return dict(outcome.result)


def test_an_edited_handler_or_layer_reaches_the_next_invocation(
    watched: tuple[FunctionRuntime, Path, Path],
) -> None:
    runtime, function, layer = watched
    first = result(runtime)
    assert (first["handler"], first["lib"]) == ("v1", "one")
    assert result(runtime)["pid"] == first["pid"]  # nothing changed: the warm worker serves

    write(function / "app.py", HANDLER.format(version="v2"))
    edited = result(runtime)
    assert (edited["handler"], edited["lib"]) == ("v2", "one")
    assert edited["pid"] != first["pid"]

    write(layer / "reload_probe_lib.py", "VALUE = 'two'\n")
    assert result(runtime)["lib"] == "two"

    write(function / "helper.py", "X = 1\n")  # a new module in the folder counts too
    assert result(runtime)["pid"] != edited["pid"]


def test_a_handler_that_no_longer_imports_fails_until_fixed(
    watched: tuple[FunctionRuntime, Path, Path],
) -> None:
    runtime, function, _ = watched
    assert result(runtime)["handler"] == "v1"
    write(function / "app.py", "raise ImportError('half-edited')\n")
    broken = runtime.invoke({})
    assert not broken.ok and broken.error is not None and "half-edited" in broken.error["errorMessage"]
    write(function / "app.py", HANDLER.format(version="v3"))
    assert result(runtime)["handler"] == "v3"
