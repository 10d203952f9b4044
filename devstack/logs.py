"""``python -m devstack logs``: the stack's log (``STATE_DIR/devstack.log``), one function's or one
run's lines, readable.

The log mixes devstack's own lines (``devstack: ...``), the functions' Powertools JSON lines and
their EMF metric blobs. Log lines are shown as ``time level function message key=value``; EMF
blobs are left out unless asked for (``--metrics``), then shown as ``name=value unit`` pairs; lines
that are not JSON (devstack's, tracebacks) as they are.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# Keys every Powertools line carries that say nothing about what happened.
_NOISE = {
    "level",
    "location",
    "message",
    "timestamp",
    "service",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "xray_trace_id",
}
FOLLOW_POLL_S = 0.2


@dataclass(frozen=True)
class Filters:
    function: str | None = None  # a logical id (folder names are mapped by ``resolve_function``)
    run_id: str | None = None
    metrics: bool = False
    raw: bool = False


def resolve_function(name: str, functions: Mapping[str, str]) -> str:
    """A function's logical id from its logical id or its folder name (stack.json's ``functions``).

    Raises:
        KeyError: no such function in the stack.
    """
    for logical_id, short in functions.items():
        if name in (logical_id, short):
            return logical_id
    raise KeyError(f"no function {name!r} in the stack (one of: {', '.join(sorted(functions.values()))})")


def _json(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _metrics_text(blob: Mapping[str, Any]) -> str:
    parts = []
    for directive in blob["_aws"].get("CloudWatchMetrics", []):
        for metric in directive.get("Metrics", []):
            values = blob.get(metric["Name"])
            shown = values[0] if isinstance(values, list) and len(values) == 1 else values
            text = f"{shown:g}" if isinstance(shown, float) else str(shown)
            unit = metric.get("Unit")
            shown_unit = f" {unit}" if unit not in (None, "Count", "None") else ""
            parts.append(f"{metric['Name']}={text}{shown_unit}")
        dims = {d: blob.get(d) for group in directive.get("Dimensions", []) for d in group if d != "service"}
        parts.extend(f"[{k}={v}]" for k, v in dims.items())
    return "metrics  " + "  ".join(parts)


def _log_text(entry: Mapping[str, Any]) -> str:
    clock = str(entry.get("timestamp", ""))[11:23]
    keys = " ".join(
        f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in entry.items() if k not in _NOISE
    )
    head = f"{clock} {entry.get('level', '?'):7} {entry.get('function_name', '-')}  {entry.get('message')}"
    return head + (f"  {keys}" if keys else "")


def render(line: str, filters: Filters) -> str | None:
    """What to print for one log line, or None to leave it out."""
    line = line.rstrip("\n")
    if filters.run_id is not None and filters.run_id not in line:
        return None
    entry = _json(line)
    if entry is not None and "_aws" in entry:
        # Metrics name no function (their dimensions are low-cardinality), so a --function
        # view leaves them out.
        if not filters.metrics or filters.function is not None:
            return None
        return line if filters.raw else _metrics_text(entry)
    if entry is not None and "level" in entry and "message" in entry:
        if filters.function is not None and entry.get("function_name") != filters.function:
            return None
        return line if filters.raw else _log_text(entry)
    if filters.function is not None and filters.function not in line:
        return None
    return line


def read_lines(stream: IO[str], follow: bool, sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """The stream's lines; with ``follow``, then every line appended to it, until interrupted."""
    pending = ""
    while True:
        chunk = stream.readline()
        if chunk:
            pending += chunk
            if pending.endswith("\n"):
                yield pending
                pending = ""
            continue
        if not follow:
            if pending:
                yield pending
            return
        sleep(FOLLOW_POLL_S)


def show(lines: Iterable[str], filters: Filters, out: IO[str]) -> None:
    for line in lines:
        shown = render(line, filters)
        if shown is not None:
            out.write(shown + "\n")
            out.flush()


def run(log_path: Path, filters: Filters, follow: bool) -> int:
    if not log_path.is_file():
        sys.stderr.write(
            f"devstack: no log at {log_path}: it is written by `up --detach` (a foreground `up` "
            "logs to its terminal)\n"
        )
        return 1
    with open(log_path, encoding="utf-8", errors="replace") as stream:
        try:
            show(read_lines(stream, follow), filters, sys.stdout)
        except KeyboardInterrupt:
            return 130
    return 0
