"""Process checks for tests: what a process started, and that all of it ends (Linux /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def _parents() -> dict[int, int]:
    """Every live process's parent (Linux /proc; empty elsewhere)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
    return parents


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def function_workers(pid: int) -> set[int]:
    """The function workers of the devstack ``pid``: the processes its multiprocessing forkserver
    forked (devstack.runtime), or where there is none, the interpreters it spawned."""
    parents = _parents()
    started = {child for child in descendants(pid) if "from multiprocessing." in cmdline(child)}
    return {child for child in started if "spawn_main" in cmdline(child) or parents.get(child) in started}


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_devstack(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, wait, and assert that devstack exited with 0 and left no process it started."""
    if process.poll() is None:  # an unreaped child: its pid cannot have been reused
        stop_pid(process.pid, timeout)
    assert process.wait() == 0, f"devstack exited with {process.returncode}"


def stop_pid(pid: int, timeout: float = 30) -> None:
    """SIGTERM the devstack ``pid``, wait for it, and assert that no process it started is still
    alive (its exit status is for its parent to read)."""
    before = descendants(pid)
    if running(pid):
        os.kill(pid, signal.SIGTERM)
    try:
        assert_gone({pid}, timeout)
    except AssertionError:
        raise AssertionError(f"devstack did not stop within {timeout:.0f}s of SIGTERM") from None
    assert_gone(before)


def assert_gone(pids: set[int], timeout: float = 10) -> None:
    """Assert that these processes end (killing any that do not, so that a failure leaks nothing).

    The multiprocessing resource tracker leaves when its last user did: hence the moment's grace.
    """
    deadline = time.monotonic() + timeout
    left = {pid for pid in pids if running(pid)}
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {pid for pid in left if running(pid)}
    commands = {pid: cmdline(pid) for pid in left}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"devstack left processes behind: {commands}"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
