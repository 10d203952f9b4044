"""The environment each local function runs with, built the way Lambda builds it.

Order, later wins: the process basics devstack itself runs with (PATH, HOME, virtualenv), the
template's variables, ``SLUICE_*`` overrides from devstack's own environment, then what only the
local stack can know: its Redis, its AWS endpoint and the queue URLs the emulator handed out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from devstack import endpoints as aws_endpoints
from devstack.template import REGION, FunctionSpec, Stack

# Never taken from devstack's environment: a local function talks to the local Redis only.
REDIS_URL_SETTING = "SLUICE_REDIS_URL"
REDIS_CLUSTER_SETTING = "SLUICE_REDIS_CLUSTER"
# Variables of devstack's own process that must not leak into a function: the function gets the
# template's values (or the local ones) instead.
_NOT_INHERITED_PREFIXES = ("SLUICE_", "AWS_", "POWERTOOLS_", "_HANDLER", "LAMBDA_")
DEFAULT_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


# moto answers from this machine, which a test run can load far beyond what AWS ever is: a read
# may take seconds. Connecting stays as short as deployed (it is local), and so do the attempts,
# so an emulator that is down still answers 503 within about a second, as AWS unreachable does.
LOCAL_AWS_CLIENT = {"SLUICE_AWS_READ_TIMEOUT_S": "10"}


def sluice_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``SLUICE_*`` variables of devstack's environment, which win over the template's."""
    return {k: v for k, v in environ.items() if k.startswith("SLUICE_") and k != REDIS_URL_SETTING}


def aws_client_environment(environ: Mapping[str, str], endpoints: Mapping[str, str] | None) -> dict[str, str]:
    """Region, credentials and endpoints for boto3: the caller's credentials if it has any (a real
    LocalStack may want its own), else moto's placeholders. Each service gets its own
    ``AWS_ENDPOINT_URL_<SERVICE>``; ``AWS_ENDPOINT_URL`` only when one endpoint serves them all."""
    region = environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION") or REGION
    env = {"AWS_DEFAULT_REGION": region, "AWS_REGION": region}
    if environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
        env["AWS_ACCESS_KEY_ID"] = environ["AWS_ACCESS_KEY_ID"]
        env["AWS_SECRET_ACCESS_KEY"] = environ["AWS_SECRET_ACCESS_KEY"]
        if environ.get("AWS_SESSION_TOKEN"):
            env["AWS_SESSION_TOKEN"] = environ["AWS_SESSION_TOKEN"]
    else:
        env.update(DEFAULT_CREDENTIALS)
    for service, url in (endpoints or {}).items():
        env[aws_endpoints.variable(service)] = url
    if endpoints and len(set(endpoints.values())) == 1:
        env["AWS_ENDPOINT_URL"] = next(iter(endpoints.values()))
    elif endpoints:
        for companion in aws_endpoints.COMPANIONS:
            env[aws_endpoints.variable(companion)] = aws_endpoints.url_of(endpoints, companion)
    return env


def local_queue_urls(stack: Stack, endpoint: str, provisioned: Mapping[str, str]) -> dict[str, str]:
    """Map each queue URL the template resolves to onto the URL the emulator really gave it
    (LocalStack's differ: other host, other account)."""
    return {stack.queue_url(lid, endpoint): url for lid, url in provisioned.items()}


def function_environment(
    spec: FunctionSpec,
    *,
    environ: Mapping[str, str],
    redis_url: str,
    aws_endpoints: Mapping[str, str] | None,
    queue_urls: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if not k.startswith(_NOT_INHERITED_PREFIXES)}
    template_env = {k: (queue_urls or {}).get(v, v) for k, v in spec.environment.items()}
    env.update(template_env)
    env[REDIS_CLUSTER_SETTING] = "false"
    env.update(LOCAL_AWS_CLIENT)
    env.update(sluice_overrides(environ))
    env[REDIS_URL_SETTING] = redis_url
    env.update(aws_client_environment(environ, aws_endpoints))
    # The variables Lambda sets in every execution environment; AWS_SAM_LOCAL is what `sam local`
    # sets, and it keeps Powertools' tracer from looking for an X-Ray daemon.
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
            "AWS_SAM_LOCAL": "true",
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(spec.code_uri),
        }
    )
    return env


def stack_settings(envs: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The ``SLUICE_*`` settings shared by the stack's functions, for devstack's own use of the
    layer (provisioning API keys). Functions disagree only on function-specific settings."""
    merged: dict[str, str] = {}
    for env in envs.values():
        merged.update({k: v for k, v in env.items() if k.startswith("SLUICE_")})
    return merged


def apply_to_process(settings: Mapping[str, str], aws_env: Mapping[str, str]) -> None:
    """Point this process's ``sluice`` at the stack, as the functions are."""
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[name]  # the caller's endpoints must not win over the stack's
    os.environ.update(settings)
    os.environ.update(aws_env)
    from sluice import aws as sluice_aws
    from sluice.auth import clear_auth_cache
    from sluice.config import reload_settings
    from sluice.redis import reset_redis

    reload_settings()
    sluice_aws.reset_clients()
    reset_redis()
    clear_auth_cache()
