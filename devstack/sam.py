"""What ``sam local invoke`` needs from a running stack: an ``--env-vars`` file and sample events.

``sam local`` runs each function in a container, with the template's variables as they are
(logical ids for names, the placeholder Redis URL, no endpoint) unless an ``--env-vars`` file
gives others, and it only takes values for variables the template declares. ``sam-env`` writes
that file from stack.json: physical table, queue and bucket names, the stack's Redis and AWS
endpoints with loopback hosts renamed to one the container reaches (``host.docker.internal``).
``events`` writes the sample events with the stack's key in place of the placeholder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from devstack import attach
from devstack.invoke import API_KEY_PLACEHOLDER
from devstack.template import ROOT

CONTAINER_HOST = "host.docker.internal"
_LOOPBACK = {"127.0.0.1", "localhost", "0.0.0.0", "::1"}
EVENTS_DIR = ROOT / "events"


def _rehost(value: str, host: str) -> str:
    """A URL on a loopback host, moved to ``host``; anything else unchanged."""
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:
        return value
    # LocalStack names its queues on *.localhost.localstack.cloud, which resolves to loopback.
    loopback = hostname in _LOOPBACK or (hostname or "").endswith("localhost.localstack.cloud")
    if not parts.scheme or not loopback:
        return value
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@" if userinfo else ""
    netloc += host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def sam_env(info: dict[str, Any], host: str = CONTAINER_HOST) -> dict[str, dict[str, str]]:
    """``{FunctionLogicalId: {VARIABLE: value}}`` for every variable the template declares."""
    stack = attach.template_of(info, None)
    out: dict[str, dict[str, str]] = {}
    for spec in stack.functions(str(info["awsEndpointUrl"])):
        env = attach.function_env(stack, spec, info)
        out[spec.logical_id] = {name: _rehost(env[name], host) for name in spec.environment if name in env}
    return out


def write_events(info: dict[str, Any], out_dir: Path, source: Path = EVENTS_DIR) -> list[Path]:
    """The sample events with the stack's API key filled in; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.glob("*.json")):
        text = path.read_text(encoding="utf-8").replace(API_KEY_PLACEHOLDER, str(info.get("apiKey") or ""))
        json.loads(text)  # still an event
        target = out_dir / path.name
        target.write_text(text, encoding="utf-8")
        target.chmod(0o600)  # it carries the key
        written.append(target)
    return written
