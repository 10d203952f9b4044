"""HTTP with the platform's retry rules, shared by every client resource.

Retries are written here rather than taken from httpx or tenacity because the rules are per
response: ``x-should-retry`` overrides everything, ``Retry-After`` (seconds or an HTTP date)
sets the delay, and only 408, 409 (where the caller allows it), 429 and 5xx are retried.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any

import httpx

from sluice_client.errors import ApiConnectionError, error_for

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryOptions:
    """Exponential backoff; the defaults are the reference SDK's for ordinary calls."""

    max_attempts: int = 5
    min_delay_s: float = 1.0
    max_delay_s: float = 30.0
    factor: float = 1.6
    randomize: bool = True

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt ``attempt`` (1-based)."""
        base = self.min_delay_s * self.factor ** (attempt - 1)
        if self.randomize:
            base *= 1 + random.random()
        return min(self.max_delay_s, base)


def retry_after_s(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def should_retry(response: httpx.Response, retry_conflict: bool = False) -> bool:
    explicit = response.headers.get("x-should-retry")
    if explicit in ("true", "false"):
        return bool(explicit == "true")
    return response.status_code in RETRYABLE_STATUSES or (retry_conflict and response.status_code == 409)


def decode(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def retry_delay(
    options: RetryOptions,
    attempt: int,
    what: str,
    response: httpx.Response | None = None,
    *,
    retry_conflict: bool = False,
    error: httpx.TransportError | None = None,
) -> float:
    """How long to wait before retrying failed attempt ``attempt`` (a response that is not a
    success, or a transport ``error``); raises the final error when it is not to be retried.

    Raises:
        ApiError: a non-retryable status, or a retryable one after the last attempt.
        ApiConnectionError: a transport error on the last attempt.
    """
    if response is None:
        if attempt >= options.max_attempts:
            raise ApiConnectionError(f"{what} failed after {attempt} attempts: {error}") from error
        return options.delay(attempt)
    if attempt >= options.max_attempts or not should_retry(response, retry_conflict):
        raise error_for(response.status_code, decode(response), dict(response.headers))
    delay = retry_after_s(response.headers)
    return options.delay(attempt) if delay is None else min(delay, options.max_delay_s)


def client_options(api_url: str, api_key: str, timeout_s: float) -> dict[str, Any]:
    """What the httpx client of either transport is made with: the API's base URL and key."""
    return {
        "base_url": api_url.rstrip("/"),
        "timeout": timeout_s,
        "headers": {"authorization": f"Bearer {api_key}", "user-agent": "sluice-python"},
        "verify": tls_context(),
    }


@cache
def tls_context() -> ssl.SSLContext:
    """The TLS context of every client the SDK makes in this process. httpx builds one per client
    and loads the CA bundle into it each time: ~34 ms of CPU for every ``Sluice`` and its upload
    client, more than a call to the API. The same bundle, as httpx chooses it (``SSL_CERT_FILE``,
    ``SSL_CERT_DIR`` or certifi's), loaded once."""
    return httpx.create_ssl_context()


class Transport:
    """An httpx client bound to the API's base URL and key, with retries."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        retry: RetryOptions | None = None,
        timeout_s: float = 30.0,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = retry or RetryOptions()
        self.sleep = sleep
        self.http = http or httpx.Client(**client_options(api_url, api_key, timeout_s))

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | Callable[[], Iterable[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        retry: RetryOptions | None = None,
        retry_conflict: bool = False,
    ) -> httpx.Response:
        """Send a request and return the successful response.

        ``content`` may be a factory of byte chunks, called again on every attempt, so that a
        streamed body is regenerated for a retry instead of held in memory.

        Raises:
            ApiError: a non-retryable status, or a retryable one after the last attempt.
            ApiConnectionError: the API could not be reached after the last attempt.
        """
        options = retry or self.retry
        attempt = 0
        while True:
            attempt += 1
            body = content() if callable(content) else content
            try:
                response = self.http.request(method, path, json=json, content=body, headers=headers)
            except httpx.TransportError as exc:
                self.sleep(retry_delay(options, attempt, f"{method} {path}", error=exc))
                continue
            if response.is_success:
                return response
            self.sleep(
                retry_delay(options, attempt, f"{method} {path}", response, retry_conflict=retry_conflict)
            )

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return decode(self.request(method, path, **kwargs))


class AsyncTransport:
    """``Transport`` for asyncio: the same retry rules (``retry_delay``) on ``httpx.AsyncClient``."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        retry: RetryOptions | None = None,
        timeout_s: float = 30.0,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.retry = retry or RetryOptions()
        self.sleep = sleep
        self.http = http or httpx.AsyncClient(**client_options(api_url, api_key, timeout_s))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """As ``Transport.request``."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.http.request(method, path, content=content, headers=headers)
            except httpx.TransportError as exc:
                await self.sleep(retry_delay(self.retry, attempt, f"{method} {path}", error=exc))
                continue
            if response.is_success:
                return response
            await self.sleep(retry_delay(self.retry, attempt, f"{method} {path}", response))
