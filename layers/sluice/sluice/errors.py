"""Errors that carry their HTTP status, code and issues, mapped to responses in one place."""

from __future__ import annotations

from typing import Any


class SluiceError(Exception):
    """A failure a client can act on. ``status`` is the HTTP status it maps to."""

    status: int = 400
    code: str = "bad_request"
    # Set on errors a client should retry: the response then carries Retry-After.
    retry_after_s: int | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        issues: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.issues = issues or []
        self.headers = headers or {}
        if self.retry_after_s is not None:
            self.headers = {"Retry-After": str(self.retry_after_s), **self.headers}

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.issues:
            body["issues"] = self.issues
        return body


class BadRequest(SluiceError):
    status, code = 400, "bad_request"


class Unauthorized(SluiceError):
    status, code = 401, "unauthorized"


class Forbidden(SluiceError):
    status, code = 403, "forbidden"


class NotFound(SluiceError):
    status, code = 404, "not_found"


class Conflict(SluiceError):
    status, code = 409, "conflict"


class PayloadTooLarge(SluiceError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(SluiceError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(SluiceError):
    status, code = 422, "invalid_request"


class TooManyRequests(SluiceError):
    status, code = 429, "rate_limited"


class InternalError(SluiceError):
    """A failure on our side, not the request's (AWS denied access, a misconfiguration, a bug):
    answered in the API's shape, its cause only in the logs."""

    status, code = 500, "internal_error"


class ServiceUnavailable(SluiceError):
    """A dependency is down and the request cannot be served safely; the client should retry."""

    status, code = 503, "service_unavailable"
    # Seconds a client should wait before retrying: a dependency outage that a second clears is
    # the common case, and the client SDK backs off further on repeated 503s.
    retry_after_s = 1


def issues_from_pydantic(errors: list[Any]) -> list[dict[str, Any]]:
    """Shape pydantic's ``ValidationError.errors()`` as the API's ``issues`` list."""
    return [
        {"path": [str(p) for p in err.get("loc", ())], "message": err.get("msg", ""), "type": err.get("type")}
        for err in errors
    ]
