"""Where the CLI finds its API, and how SDK failures become exit codes.

The endpoint and key come from, in order: ``--api-url``/``--api-key``, ``SLUICE_API_URL``/
``SLUICE_API_KEY``, then the ``apiUrl``/``apiKey`` of a running devstack's stack.json
(``--stack-file``, ``SLUICE_STACK_FILE``, default ``.devstack/stack.json``), so that
``python -m devstack up`` followed by ``sluice trigger hello`` just works. The streamed reader's URL
(``--stream-url``, ``SLUICE_STREAM_URL``) comes from stack.json's ``streamUrl`` only when the API
URL came from there too; without one, stream reads long-poll the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from sluice_client import RetryOptions, Sluice
from sluice_client.batches import BatchTriggerError
from sluice_client.errors import ApiConnectionError, ApiError, AuthenticationError

DEFAULT_STACK_FILE = Path(".devstack") / "stack.json"
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class Exit(IntEnum):
    """The CLI's exit codes."""

    OK = 0
    FAILED = 1  # the call went through but the outcome is a failure (e.g. a batch left unsealed)
    USAGE = 2  # bad arguments, an unreadable file, no endpoint or key (click's own code for usage)
    UNREACHABLE = 3  # the API could not be reached after the SDK's retries
    REJECTED = 4  # the API answered 4xx: the request, the key or the id is wrong
    SERVER = 5  # the API answered 5xx after the SDK's retries
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


@dataclass
class ConnectionOptions:
    api_url: str | None
    api_key: str | None
    stack_file: Path
    max_attempts: int = RetryOptions.max_attempts
    stream_url: str | None = None


@dataclass(frozen=True)
class Connection:
    """Where the CLI's client goes."""

    api_url: str
    api_key: str
    stream_url: str | None  # the streamed SSE reader; None: stream reads long-poll the API


def connection_options(
    ctx: typer.Context,
    *,
    api_url: Annotated[
        str | None, typer.Option(envvar="SLUICE_API_URL", help="API base URL, e.g. http://127.0.0.1:3030")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="SLUICE_API_KEY", help="API key (Bearer)", show_default=False)
    ] = None,
    stack_file: Annotated[
        Path,
        typer.Option(envvar="SLUICE_STACK_FILE", help="devstack's stack.json, read for what is not given"),
    ] = DEFAULT_STACK_FILE,
    max_attempts: Annotated[
        int, typer.Option(min=1, help="attempts per request (retrying 408, 429, 5xx and connection errors)")
    ] = RetryOptions.max_attempts,
    stream_url: Annotated[
        str | None,
        typer.Option(envvar="SLUICE_STREAM_URL", help="the streamed SSE reader's URL (default: long poll)"),
    ] = None,
) -> None:
    ctx.obj = ConnectionOptions(api_url, api_key, stack_file, max_attempts, stream_url)


def fail(code: Exit, message: str) -> NoReturn:
    stderr.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def resolve(options: ConnectionOptions) -> Connection:
    """The API URL and key (and the stream URL, if any), or exit with USAGE saying where they can
    come from."""
    url, key, stream_url = options.api_url, options.api_key, options.stream_url
    if not (url and key) and options.stack_file.is_file():
        try:
            stack: dict[str, Any] = json.loads(options.stack_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            fail(Exit.USAGE, f"cannot read {options.stack_file}: {exc}")
        if not url:
            # The stack's streamed reader belongs to the stack's API, not to one named elsewhere.
            url, stream_url = stack.get("apiUrl"), stream_url or stack.get("streamUrl")
        key = key or stack.get("apiKey")
    if not url:
        fail(
            Exit.USAGE,
            "no API URL: pass --api-url, set SLUICE_API_URL, or start devstack "
            f"(it writes {options.stack_file})",
        )
    if not key:
        fail(
            Exit.USAGE,
            "no API key: pass --api-key, set SLUICE_API_KEY, or start devstack "
            f"(it writes {options.stack_file})",
        )
    return Connection(url, key, stream_url)


@contextmanager
def client(ctx: typer.Context) -> Iterator[Sluice]:
    """An SDK client for the resolved API; the SDK's errors become messages and exit codes."""
    options = ctx.find_object(ConnectionOptions) or ConnectionOptions(None, None, DEFAULT_STACK_FILE)
    to = resolve(options)
    retry = RetryOptions(max_attempts=options.max_attempts)
    try:
        with Sluice(to.api_url, to.api_key, retry=retry, stream_url=to.stream_url) as sluice:
            yield sluice
    except BatchTriggerError as exc:
        if exc.cause is None:
            fail(Exit.FAILED, str(exc))
        _fail_for(exc.cause, to.api_url, prefix=f"batch {exc.phase} failed: ")
    except (ApiError, ApiConnectionError) as exc:
        _fail_for(exc, to.api_url)


def _fail_for(exc: Exception, url: str, prefix: str = "") -> NoReturn:
    if isinstance(exc, ApiConnectionError):
        fail(Exit.UNREACHABLE, f"{prefix}cannot reach {url}: {exc}")
    if not isinstance(exc, ApiError):
        fail(Exit.FAILED, f"{prefix}{exc}")
    detail = f"{prefix}{exc.status} {exc.code or 'error'}: {exc.message}"
    for issue in exc.issues:
        detail += f"\n  - {json.dumps(issue) if not isinstance(issue, str) else issue}"
    if isinstance(exc, AuthenticationError):
        detail += "\n  the API does not accept this key: check --api-key / SLUICE_API_KEY"
    fail(Exit.SERVER if exc.status >= 500 else Exit.REJECTED, detail)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))
