"""CORS as the platform answers it: an HTTP API's ``CorsConfiguration`` and a Function URL's
``Cors`` (same fields), read from the template, applied by devstack's HTTP server and around
the web apps it runs.

In AWS, API Gateway and Lambda answer preflights themselves and put the headers on every answer,
the integration's errors included, ignoring any CORS headers the function set; so here. Written
by hand for the HTTP server (http.server has no middleware), and the same policy wraps the ASGI
web apps so that both transports behave alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

# Overrides the template's AllowOrigins for every CORS block (the CorsAllowOrigins parameter).
ORIGINS_SETTING = "SLUICE_CORS_ALLOW_ORIGINS"
# How devstack hands a web app's Function URL Cors to ``wrap`` (a JSON object).
WEB_APP_SETTING = "DEVSTACK_FUNCTION_URL_CORS"

Headers = list[tuple[str, str]]


def _listed(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return tuple(str(item).strip() for item in items if str(item).strip())


@dataclass(frozen=True)
class CorsPolicy:
    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int = 0
    allow_credentials: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, environ: Mapping[str, str]) -> CorsPolicy | None:
        """The policy of a resolved ``CorsConfiguration`` / ``Cors`` block (None without one);
        ``SLUICE_CORS_ALLOW_ORIGINS`` in ``environ`` replaces its origins."""
        if not config:
            return None
        origins = environ.get(ORIGINS_SETTING)
        return cls(
            allow_origins=_listed(origins if origins is not None else config.get("AllowOrigins")),
            allow_methods=_listed(config.get("AllowMethods")),
            allow_headers=_listed(config.get("AllowHeaders")),
            expose_headers=_listed(config.get("ExposeHeaders")),
            max_age=int(config.get("MaxAge", 0)),
            allow_credentials=bool(config.get("AllowCredentials", False)),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "AllowOrigins": self.allow_origins,
                "AllowMethods": self.allow_methods,
                "AllowHeaders": self.allow_headers,
                "ExposeHeaders": self.expose_headers,
                "MaxAge": self.max_age,
                "AllowCredentials": self.allow_credentials,
            }
        )

    def _origin(self, origin: str | None) -> str | None:
        """What Access-Control-Allow-Origin says to ``origin``: ``*`` only without credentials."""
        if not origin:
            return None
        if "*" in self.allow_origins and not self.allow_credentials:
            return "*"
        return origin if origin in self.allow_origins else None

    @staticmethod
    def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
        return method.upper() == "OPTIONS" and {"origin", "access-control-request-method"} <= headers.keys()

    def _common(self, allowed: str) -> Headers:
        out = [("access-control-allow-origin", allowed)]
        if allowed != "*":
            out.append(("vary", "origin"))
        if self.allow_credentials:
            out.append(("access-control-allow-credentials", "true"))
        return out

    def preflight(self, headers: Mapping[str, str]) -> Headers:
        """The answer's headers to a preflight (a 204): none for an origin not allowed."""
        allowed = self._origin(headers.get("origin"))
        if allowed is None:
            return []
        out = self._common(allowed)
        if self.allow_methods:
            out.append(("access-control-allow-methods", ",".join(self.allow_methods)))
        if self.allow_headers:
            out.append(("access-control-allow-headers", ",".join(self.allow_headers)))
        if self.max_age:
            out.append(("access-control-max-age", str(self.max_age)))
        return out

    def response(self, request_headers: Mapping[str, str], headers: Iterable[tuple[str, str]]) -> Headers:
        """An answer's headers with the policy's in place of any CORS headers the function set."""
        kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
        allowed = self._origin(request_headers.get("origin"))
        if allowed is None:
            return kept
        kept.extend(self._common(allowed))
        if self.expose_headers:
            kept.append(("access-control-expose-headers", ",".join(self.expose_headers)))
        return kept


# --- the ASGI side: a web app behind a Function URL --------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def wrap(app: AsgiApp, policy: CorsPolicy) -> AsgiApp:
    """``app`` as a Function URL with ``policy`` serves it."""

    async def with_cors(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if policy.is_preflight(scope["method"], request):
            raw = [(k.encode(), v.encode()) for k, v in policy.preflight(request)]
            await send({"type": "http.response.start", "status": 204, "headers": raw})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                decoded = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]
                message["headers"] = [(k.encode(), v.encode()) for k, v in policy.response(request, decoded)]
            await send(message)

        await app(scope, receive, send_with_cors)

    return with_cors


def web_app(inner: AsgiApp) -> AsgiApp:
    """The web app devstack starts: ``inner`` with the Function URL's Cors, if it has any."""
    config = os.environ.get(WEB_APP_SETTING)
    policy = CorsPolicy.from_config(json.loads(config), {}) if config else None
    return inner if policy is None else wrap(inner, policy)
