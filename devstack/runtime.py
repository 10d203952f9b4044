"""Worker pools: each function runs in processes of its own, as in Lambda execution environments.

A worker is an interpreter of its own whose ``os.environ`` is exactly the function's environment
and which imports the handler once (the cold start), then serves one invocation at a time. A worker
that overruns the function's Timeout is killed and replaced, as Lambda discards an execution
environment after a timeout. Pools grow lazily up to their size, so an idle function costs one
process at most, and one cold start at a time: while it runs, other invocations take the first
worker that becomes idle. (Lambda would start an environment for each of them; on a laptop's
few cores, a burst that imports eight handlers at once stalls everything for seconds.)
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

from devstack.handlers import LambdaContext, load_handler
from devstack.template import FunctionSpec

# How long a worker may take to import its handler (Lambda's init phase is capped at 10 s; a
# cold interpreter on a busy laptop needs more).
INIT_TIMEOUT_S = 60.0
# Workers fork from a server process (Python's forkserver) that imported the layer's libraries
# once: a spawned interpreter spent ~0.5 CPU-s on boto3, pydantic and Powertools before its
# handler, and a test run starts ~100 workers. Only third-party libraries that read no settings
# when imported are preloaded; the layer and the handler still import in the worker, after its
# environment is in place, so a cold start still runs the function's own init code.
PRELOADED = (
    "boto3",
    "botocore.client",
    "pydantic",
    "redis",
    "redis.asyncio",
    "httpx",
    "cachetools",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.parser",
    "devstack.forkserver_preload",
)
_MP: ForkServerContext | SpawnContext
if "forkserver" in multiprocessing.get_all_start_methods():
    _MP = multiprocessing.get_context("forkserver")
    _MP.set_forkserver_preload(list(PRELOADED))
else:
    _MP = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation: ``result`` when the handler returned, else ``error`` in
    Lambda's shape (``errorType``, ``errorMessage``, ``stackTrace``)."""

    result: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def _error(error_type: str, message: str, trace: list[str] | None = None) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message, "stackTrace": trace or []}


def _exception_error(exc: BaseException) -> dict[str, Any]:
    trace = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return _error(type(exc).__name__, str(exc), trace)


def _worker_main(spec: FunctionSpec, env: dict[str, str], conn: Connection) -> None:
    # The parent decides when workers stop: a Ctrl-C on the terminal reaches the whole process
    # group and must not kill an invocation before devstack has stopped feeding it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(env)
    # stdout belongs to whoever runs devstack (``invoke`` prints its result there); function logs
    # go to stderr, line by line so that they interleave sensibly.
    os.dup2(2, 1)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    # Lambda puts the function's folder first on sys.path (/var/task), so sibling modules import.
    sys.path.insert(0, str(spec.code_uri))
    try:
        handler = load_handler(spec)
    except BaseException as exc:
        conn.send(("init_error", _exception_error(exc)))
        return
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone: never outlive it
        if message is None:
            return
        event_json, timeout_s = message
        context = LambdaContext(
            function_name=spec.logical_id, memory_limit_in_mb=spec.memory, timeout_s=timeout_s
        )
        reply: tuple[str, Any]
        try:
            result = handler(json.loads(event_json), context)
            reply = ("ok", json.dumps(result))
        except Exception as exc:
            reply = ("error", _exception_error(exc))
        except SystemExit as exc:
            conn.send(("error", _error("Runtime.ExitError", f"handler called exit({exc.code})")))
            return
        try:
            conn.send(reply)
        except (TypeError, ValueError) as exc:
            conn.send(("error", _exception_error(exc)))


class _Worker:
    def __init__(self, spec: FunctionSpec, env: dict[str, str], generation: int = 0) -> None:
        # Which code the worker imported: see FunctionRuntime.recycle.
        self.generation = generation
        parent_conn, child_conn = _MP.Pipe()
        self.conn: Connection = parent_conn
        self.process: BaseProcess = _MP.Process(
            target=_worker_main, args=(spec, env, child_conn), name=f"devstack-{spec.logical_id}", daemon=True
        )
        self.process.start()
        child_conn.close()
        self.init_error: dict[str, Any] | None = None

    def wait_ready(self, timeout: float) -> None:
        if not self.conn.poll(timeout):
            self.kill()
            self.init_error = _error("Runtime.InitTimeout", f"handler import took over {timeout:.0f}s")
            return
        try:
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            kind, payload = "init_error", _error("Runtime.ExitError", "worker exited during init")
        if kind != "ready":
            self.init_error = payload
            self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self, timeout: float) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.process.join(timeout)
        self.kill()


class FunctionRuntime:
    """Up to ``size`` concurrent invocations of one function, each in a worker of its own.

    Thread-safe: HTTP request threads, SQS pollers and schedules all call :meth:`invoke`; a call
    waits for a free worker when all are busy.
    """

    def __init__(self, spec: FunctionSpec, env: dict[str, str], size: int) -> None:
        self.spec = spec
        self.env = env
        self.size = max(1, size)
        self._slots = threading.BoundedSemaphore(self.size)
        self._lock = threading.Lock()
        # Notified whenever a worker becomes idle, a cold start ends, or the pool shrinks.
        self._changed = threading.Condition(self._lock)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._starting = False
        self._closed = False
        self._generation = 0
        self.init_error: dict[str, Any] | None = None
        # Called before every invocation (``up --reload`` checks the code there).
        self.before_invoke: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        return self.spec.logical_id

    def warm(self) -> dict[str, Any] | None:
        """Start one worker now, so that the first request meets a warm function; returns the
        init error if the handler does not import."""
        worker = self._spawn()
        if worker is not None and worker.init_error is None:
            with self._changed:
                self._idle.append(worker)
                self._changed.notify_all()
        return self.init_error

    def _spawn(self) -> _Worker | None:
        with self._lock:
            if self._closed:
                return None
            worker = _Worker(self.spec, self.env, self._generation)
            self._all.add(worker)
        worker.wait_ready(INIT_TIMEOUT_S)
        if worker.init_error is not None:
            self.init_error = worker.init_error
            self._discard(worker)
            return worker
        self.init_error = None
        return worker

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._changed:
            self._all.discard(worker)
            self._changed.notify_all()

    def _acquire(self) -> _Worker | Invocation:
        """An idle worker; else a new one (a cold start) unless one is already starting; else the
        first worker to become idle. An Invocation says why there is none."""
        shutdown = Invocation(error=_error("Runtime.Shutdown", "devstack is stopping"))
        with self._changed:
            while True:
                if self._closed:
                    return shutdown
                if self._idle:
                    return self._idle.pop()
                # A caller holds one of `size` slots, so a full pool always has a busy worker
                # that will come back: waiting cannot last longer than an invocation.
                if not self._starting and len(self._all) < self.size:
                    self._starting = True
                    break
                self._changed.wait()
        try:
            worker = self._spawn()
        finally:
            with self._changed:
                self._starting = False
                self._changed.notify_all()
        if worker is None:
            return shutdown
        if worker.init_error is not None:
            return Invocation(error=worker.init_error)
        return worker

    def recycle(self) -> None:
        """Retire every worker, as a new deployment retires Lambda's environments: idle ones
        stop now, busy ones once their invocation ends; the next invocation imports the code anew."""
        with self._changed:
            self._generation += 1
            idle, self._idle = self._idle, []
            self._all.difference_update(idle)
            self.init_error = None
            self._changed.notify_all()
        for worker in idle:
            worker.stop(1)

    def invoke(self, event: Any, timeout: float | None = None) -> Invocation:
        if self.before_invoke is not None:
            self.before_invoke()
        timeout_s = self.spec.timeout if timeout is None else timeout
        event_json = json.dumps(event)
        with self._slots:
            worker = self._acquire()
            if isinstance(worker, Invocation):
                return worker
            return self._call(worker, event_json, timeout_s)

    def _call(self, worker: _Worker, event_json: str, timeout_s: float) -> Invocation:
        started = time.monotonic()
        try:
            worker.conn.send((event_json, max(1, round(timeout_s))))
            finished = worker.conn.poll(timeout_s)
        except (OSError, ValueError):
            finished = False
        elapsed = (time.monotonic() - started) * 1000
        if not finished:
            self._discard(worker)
            if self._closed:
                shutdown = _error("Runtime.Shutdown", "devstack is stopping")
                return Invocation(error=shutdown, duration_ms=elapsed)
            message = f"Task timed out after {timeout_s:.2f} seconds"
            return Invocation(error=_error("Sandbox.Timedout", message), duration_ms=elapsed)
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            self._discard(worker)
            return Invocation(
                error=_error("Runtime.ExitError", "the worker process exited during the invocation"),
                duration_ms=elapsed,
            )
        if kind == "ok":
            self._release(worker)
            return Invocation(result=json.loads(payload), duration_ms=elapsed)
        if worker.process.is_alive():
            self._release(worker)
        else:
            self._discard(worker)
        return Invocation(error=payload, duration_ms=elapsed)

    def _release(self, worker: _Worker) -> None:
        with self._changed:
            if not self._closed and worker.generation == self._generation:
                self._idle.append(worker)
                self._changed.notify()
                return
            self._all.discard(worker)
            self._changed.notify_all()
        worker.stop(1)

    def close(self, grace: float = 2.0) -> None:
        """Stop every worker; an invocation still running gets ``grace`` seconds, then is killed."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            workers = list(self._all)
            self._all.clear()
            self._changed.notify_all()
        for worker in idle:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
        deadline = time.monotonic() + grace
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            worker.kill()


def pool_size(spec: FunctionSpec, default: int) -> int:
    """Lambda scales a function out per event source; locally each SQS source may use up to its
    MaximumConcurrency (capped at ``default``) and every other source shares ``default`` more."""
    size = 0
    others = False
    for event in spec.events:
        if event.type == "SQS":
            scaling = event.properties.get("ScalingConfig") or {}
            size += min(int(scaling.get("MaximumConcurrency", default)), default)
        else:
            others = True
    if others or size == 0:
        size += default
    return size
