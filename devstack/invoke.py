"""``devstack invoke``: ``sam local invoke`` without Docker. One invocation, in a worker process
with the function's environment, against the running stack when there is one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from devstack import attach, endpoints, stack_file
from devstack.runtime import FunctionRuntime, Invocation
from devstack.web_invoke import invoke_web_app

# Sample events carry this instead of a key; invoke puts the running stack's dev key in its place.
API_KEY_PLACEHOLDER = "<devstack-api-key>"


def load_event(source: str, api_key: str | None) -> Any:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    if api_key:
        text = text.replace(API_KEY_PLACEHOLDER, api_key)
    return json.loads(text)


def invoke(function: str, event_source: str, state_dir: Path, template: Path | None = None) -> Invocation:
    info = stack_file.read_stack(state_dir)
    stack = attach.template_of(info, template)
    endpoint = endpoints.of(info)["sqs"] if info else endpoints.LOCALSTACK_URL
    spec = stack.function(function, endpoint)
    event = load_event(event_source, info.get("apiKey") if info else None)
    env = attach.function_env(stack, spec, info)
    if spec.web_adapter:
        return invoke_web_app(spec, env, event)
    runtime = FunctionRuntime(spec, env, size=1)
    try:
        return runtime.invoke(event)
    finally:
        runtime.close()
