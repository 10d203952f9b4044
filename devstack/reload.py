"""``devstack up --reload``: an edited handler or layer module is used by the next invocation.

Each function's workers imported its folder (CodeUri) and the layers once, at their cold start.
Before an invocation, the sources' modification times are compared with those the workers
started from; when a function's folder changed, its workers are recycled, and when a layer
changed, every function's are (devstack.runtime.FunctionRuntime.recycle). Workers fork from a
server that preloaded only third-party libraries, so a new worker imports the edited code.

The check is made on invocation rather than by a watching thread, so that an edit saved just
before a request is never missed; a scan of the ~90 source files is rate-limited to one per
SCAN_INTERVAL_S. Web apps (Lambda Web Adapter functions) and the template itself are read at
start only: they need a restart.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from devstack.runtime import FunctionRuntime
from devstack.template import Stack

# Sources whose change a new worker picks up; a scan of the template's ~90 costs 3 ms (loaded 2-core machine).
WATCHED_SUFFIXES = (".py",)
SCAN_INTERVAL_S = 0.2

Snapshot = dict[str, int]


def snapshot(root: Path) -> Snapshot:
    """Every watched file under ``root`` with its modification time (ns): an edit, a new file and
    a deleted one all change it."""
    found: Snapshot = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
        for name in files:
            if name.endswith(WATCHED_SUFFIXES):
                path = os.path.join(folder, name)
                try:
                    found[path] = os.stat(path).st_mtime_ns
                except FileNotFoundError:
                    continue  # deleted while walking: the next scan sees it gone
    return found


def layer_dirs(stack: Stack) -> list[Path]:
    """The template's layer folders (ContentUri), which every function imports from."""
    return [
        (stack.path.parent / str(res["Properties"]["ContentUri"])).resolve()
        for res in stack.resources_of("AWS::Serverless::LayerVersion").values()
    ]


class CodeWatch:
    """Recycles the workers of functions whose code changed since their workers started."""

    def __init__(
        self, runtimes: Iterable[FunctionRuntime], layers: list[Path], log: Callable[[str], None]
    ) -> None:
        self.runtimes = list(runtimes)
        self.layers = layers
        self.log = log
        self._lock = threading.Lock()
        self._scanned_at = 0.0
        self._layer_files = self._scan_layers()
        self._function_files = {r.name: snapshot(r.spec.code_uri) for r in self.runtimes}

    def attach(self) -> None:
        for runtime in self.runtimes:
            runtime.before_invoke = self.check

    def _scan_layers(self) -> Snapshot:
        files: Snapshot = {}
        for layer in self.layers:
            files.update(snapshot(layer))
        return files

    def check(self) -> None:
        """Recycle what changed; at most one scan per SCAN_INTERVAL_S, whoever invokes."""
        with self._lock:
            now = time.monotonic()
            if now - self._scanned_at < SCAN_INTERVAL_S:
                return
            self._scanned_at = now
            layer_files = self._scan_layers()
            layer_changed = _changed(self._layer_files, layer_files)
            self._layer_files = layer_files
            for runtime in self.runtimes:
                files = snapshot(runtime.spec.code_uri)
                changed = layer_changed or _changed(self._function_files[runtime.name], files)
                self._function_files[runtime.name] = files
                if changed:
                    runtime.recycle()
                    self.log(
                        f"reload       {runtime.name}: {_relative(changed)} changed, "
                        "the next invocation starts a new worker"
                    )


def _changed(before: Snapshot, after: Snapshot) -> str | None:
    """One path that differs between two snapshots, or None."""
    for path in before.keys() ^ after.keys():
        return path
    for path, mtime in after.items():
        if before[path] != mtime:
            return path
    return None


def _relative(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
