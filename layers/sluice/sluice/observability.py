"""Traces, logs and metrics: the one place that configures Powertools' Tracer, Logger and Metrics.

Every function's handler wears ``lambda_handler``: an X-Ray subsegment per invocation (AWS calls
as subsegments of it by Powertools' patching of botocore, Redis calls by ``trace_redis``), the log
keys of the invocation (the API Gateway request id as correlation id on HTTP functions), and the
metrics the invocation added, flushed as one EMF line at its end.

Tracing costs nothing where X-Ray is not listening: Powertools disables it outside Lambda and under
``sam local``, which is what devstack sets (``AWS_SAM_LOCAL``), and with
``POWERTOOLS_TRACE_DISABLED``; then no module is patched and annotations are no-ops. Metrics have
low-cardinality dimensions only (never an organization, environment or run id): those go in the
log line and the trace annotations, where one run's story is read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = "sluice"
# Powertools needs a namespace; template.yaml sets POWERTOOLS_METRICS_NAMESPACE per stage, and
# this keeps tests and scripts without it from raising.
DEFAULT_NAMESPACE = "Sluice"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
# Powertools shares one metric set between every Metrics instance of the process.


def namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE


metrics = Metrics(service=SERVICE, namespace=namespace())

Handler = TypeVar("Handler", bound=Callable[..., Any])
Client = TypeVar("Client")


def lambda_handler(*, http: bool = False) -> Callable[[Handler], Handler]:
    """A Lambda handler, traced, logged with the invocation's keys (and, ``http``, the API Gateway
    request id as correlation id) and its metrics flushed when it returns."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        def about_its_run(event: Any, context: Any) -> Any:
            # A route on one run (/runs/{runId}/..., /streams/{runId}/...) names it on every line.
            run_id = ((event.get("pathParameters") if isinstance(event, dict) else None) or {}).get("runId")
            if run_id:
                run_keys(run_id)
            return handler(event, context)

        logged = logger.inject_lambda_context(
            about_its_run if http else handler,
            clear_state=True,
            correlation_id_path=correlation_paths.API_GATEWAY_HTTP if http else None,
        )
        # The response may hold payloads and tokens: it stays out of the trace.
        traced = tracer.capture_lambda_handler(logged, capture_response=False)
        return cast(Handler, metrics.log_metrics(traced))

    return decorate


# --- what a request or a run is about ----------------------------------------------------------


def tenant_keys(org_id: str, env_id: str) -> None:
    """The tenant of this invocation on every later log line and on the trace."""
    logger.append_keys(orgId=org_id, envId=env_id)
    tracer.put_annotation("orgId", org_id)
    tracer.put_annotation("envId", env_id)


def run_keys(run_id: str, org_id: str | None = None, env_id: str | None = None) -> None:
    """The run this invocation works on, on every later log line and on the trace."""
    logger.append_keys(runId=run_id)
    tracer.put_annotation("runId", run_id)
    if org_id is not None and env_id is not None:
        tenant_keys(org_id, env_id)


_WORDS = re.compile(r"(?<!^)(?=[A-Z])")


def run_transition(metric: str, run_id: str, org_id: str, env_id: str, **fields: Any) -> None:
    """A run changed state: one INFO line (``RunCompleted`` -> ``run.completed``) with the run's
    keys, and one count of ``metric``. Call it once the change is written."""
    message = _WORDS.sub(".", metric).lower()
    logger.info(message, extra={"runId": run_id, "orgId": org_id, "envId": env_id, **fields})
    count(metric)


# --- metrics ----------------------------------------------------------------------------------


def count(name: str, value: float = 1) -> None:
    """Add to a count of this invocation (flushed by ``lambda_handler``)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def lag_ms(name: str, since: datetime) -> None:
    """How long ago ``since`` was, in milliseconds, as one value of ``name``."""
    aware = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    elapsed_ms = (datetime.now(UTC) - aware).total_seconds() * 1000
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=max(0.0, elapsed_ms))


def count_now(name: str, value: float = 1, **dimensions: str) -> None:
    """A count written at once as its own EMF line, with its own dimensions: for code that runs
    outside a handler (the streamed reader is an ASGI app) or needs a dimension."""
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=namespace()) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


# --- Redis --------------------------------------------------------------------------------------


def trace_redis(client: Client) -> Client:
    """``client`` with every command in an X-Ray subsegment of its own, when tracing is on.

    Written here because X-Ray's SDK patches botocore and HTTP clients but not redis-py; wrapping
    ``execute_command`` covers every command, script (EVALSHA) and cluster redirection. Pipelines
    run as one subsegment each."""
    if tracer.disabled:
        return client
    command = client.execute_command  # type: ignore[attr-defined]

    @wraps(command)
    def traced(*args: Any, **options: Any) -> Any:
        with tracer.provider.in_subsegment(f"redis {args[0] if args else '?'}"):
            return command(*args, **options)

    client.execute_command = traced  # type: ignore[attr-defined]
    pipeline = client.pipeline  # type: ignore[attr-defined]

    @wraps(pipeline)
    def traced_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = pipeline(*args, **kwargs)
        execute = pipe.execute

        @wraps(execute)
        def traced_execute(*a: Any, **k: Any) -> Any:
            with tracer.provider.in_subsegment(f"redis pipeline {len(pipe.command_stack)}"):
                return execute(*a, **k)

        pipe.execute = traced_execute
        return pipe

    client.pipeline = traced_pipeline  # type: ignore[attr-defined]
    return client
