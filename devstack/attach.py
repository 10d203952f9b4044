"""Use a running stack from another process: ``keys create`` and ``invoke`` read its stack.json
and give the layer, or a function, the environment the stack's own functions have."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from devstack import endpoints, environment, stack_file
from devstack.template import FunctionSpec, Stack


class NoStack(RuntimeError):
    pass


def running_stack(state_dir: Path) -> dict[str, Any]:
    info = stack_file.read_stack(state_dir)
    if info is None:
        raise NoStack(
            f"no running stack: {state_dir / stack_file.STACK_FILE} does not exist "
            "(start one with `python -m devstack up`)"
        )
    return info


def template_of(info: dict[str, Any] | None, template: Path | None) -> Stack:
    if template is not None:
        stack = Stack(template.resolve())
    elif info and info.get("template"):
        stack = Stack(Path(info["template"]), stage=info.get("stage"))
    else:
        stack = Stack()
    if info and info.get("account"):
        stack.account = str(info["account"])
    return stack


def function_env(stack: Stack, spec: FunctionSpec, info: dict[str, Any] | None) -> dict[str, str]:
    """The environment of ``spec`` in the stack ``info`` describes; without a stack, the caller's
    REDIS_URL and AWS endpoints (or the template's values)."""
    environ = dict(os.environ)
    if info is not None:
        environ.update(info.get("overrides") or {})
        urls: dict[str, str] | None = endpoints.of(info)
        redis_url = str(info["redisUrl"])
        provisioned = info.get("queueUrls") or {}
    else:
        chosen = endpoints.plan(None, environ)
        urls = None if endpoints.MOTO in chosen.values() else chosen
        redis_url = environ.get("REDIS_URL") or spec.environment.get(environment.REDIS_URL_SETTING, "")
        provisioned = {}
    url_map = environment.local_queue_urls(stack, urls["sqs"], provisioned) if urls else {}
    return environment.function_environment(
        spec, environ=environ, redis_url=redis_url, aws_endpoints=urls, queue_urls=url_map
    )


def use_stack_in_process(info: dict[str, Any], template: Path | None = None) -> None:
    """Point this process's ``sluice`` at the running stack, as devstack's own process is."""
    stack = template_of(info, template)
    urls = endpoints.of(info)
    specs = stack.functions(urls["sqs"])
    envs = {spec.logical_id: function_env(stack, spec, info) for spec in specs}
    settings = environment.stack_settings(envs)
    environment.apply_to_process(settings, environment.aws_client_environment(os.environ, urls))
