"""Typed errors of the client SDK: one class per status family, carrying the server's error body."""

from __future__ import annotations

from typing import Any


class SluiceClientError(Exception):
    """Base of every error the client raises."""


class ApiConnectionError(SluiceClientError):
    """The API could not be reached (after retries)."""


class ApiError(SluiceClientError):
    status: int = 0

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        if isinstance(body, dict):
            self.message = str(body.get("error") or body.get("message") or body)
            self.code: str | None = body.get("code")
            self.issues: list[Any] = body.get("issues") or []
        else:
            self.message, self.code, self.issues = str(body), None, []
        super().__init__(f"{status} {self.code or ''}: {self.message}".replace("  ", " "))


class BadRequestError(ApiError):
    """400: the request is malformed."""


class AuthenticationError(ApiError):
    """401: no API key, or one the API does not know."""


class PermissionDeniedError(ApiError):
    """403."""


class NotFoundError(ApiError):
    """404: no such resource in the key's environment."""


class ConflictError(ApiError):
    """409: the resource is in a state that does not allow the request."""


class PayloadTooLargeError(ApiError):
    """413."""


class UnsupportedMediaTypeError(ApiError):
    """415."""


class UnprocessableEntityError(ApiError):
    """422: the request is well-formed but invalid; ``issues`` says where."""


class RateLimitError(ApiError):
    """429 after the retries ran out."""


class ServerError(ApiError):
    """5xx after the retries ran out."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_for(status: int, body: Any, headers: dict[str, str] | None = None) -> ApiError:
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(status, body, headers)
