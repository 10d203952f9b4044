"""The state directory of a running stack: ``stack.json`` (what clients need), ``devstack.pid``,
``health.json`` and the API keys backup.

``stack.json`` appears only once everything serves, and is written atomically, so whoever waits
for it never reads half a file or a stack that is still starting.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_STATE_DIR = Path(".devstack")
STACK_FILE = "stack.json"
PID_FILE = "devstack.pid"
LOG_FILE = "devstack.log"
HEALTH_FILE = "health.json"
KEYS_BACKUP_FILE = "api-keys.json"  # devstack.key_backup
# A running stack rewrites health.json twice a second; older than this, nobody is watching.
HEALTH_STALE_S = 5.0
REQUIRED_KEYS = ("apiUrl", "apiKey", "orgId", "envId", "redisUrl", "awsEndpointUrl")


def write_atomic(path: Path, text: str, *, sync: bool = True) -> None:
    """Write via a 0600 temporary file and a rename (mkstemp's mode: stack.json holds the key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_stack(state_dir: Path, info: dict[str, Any]) -> Path:
    missing = [key for key in REQUIRED_KEYS if key not in info]
    if missing:
        raise ValueError(f"stack info lacks {missing}")
    path = state_dir / STACK_FILE
    write_atomic(path, json.dumps(info, indent=2) + "\n")
    return path


def read_stack(state_dir: Path) -> dict[str, Any] | None:
    """The running stack's info, or None when no stack has written one."""
    try:
        data: dict[str, Any] = json.loads((state_dir / STACK_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return data


def write_health(state_dir: Path, health: dict[str, Any]) -> None:
    write_atomic(state_dir / HEALTH_FILE, json.dumps(health, indent=2) + "\n", sync=False)


def read_health(state_dir: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((state_dir / HEALTH_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data


def mask_key(api_key: str | None) -> str | None:
    """An API key as logs and ``status`` show it: enough to tell keys apart, not to use one."""
    if not api_key:
        return api_key
    prefix = next((p for p in ("sk_dev_", "sk_prod_") if api_key.startswith(p)), "")
    return f"{prefix}{api_key[len(prefix) :][:4]}{'*' * 8}"


def masked(info: dict[str, Any]) -> dict[str, Any]:
    """stack.json with its API key masked (the full key stays in the 0600 file)."""
    return {**info, "apiKey": mask_key(info.get("apiKey"))}


def write_pid(state_dir: Path, pid: int) -> None:
    write_atomic(state_dir / PID_FILE, f"{pid}\n")


def read_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / PID_FILE).read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear(state_dir: Path, pid: int | None = None) -> None:
    """Remove the stack's files; with ``pid``, only if that process still owns them (a newer stack
    in the same directory must keep its files)."""
    if pid is not None and read_pid(state_dir) not in (None, pid):
        return
    for name in (STACK_FILE, PID_FILE, HEALTH_FILE, KEYS_BACKUP_FILE):
        (state_dir / name).unlink(missing_ok=True)
