"""``devstack invoke`` of a Lambda Web Adapter function: the adapter's part, done locally.

In Lambda the adapter turns the event (a Function URL request, API Gateway's payload 2.0) into an
HTTP request to the app it started and the app's response into the function's result; here the
app is started with the function's environment, sent the event's request, and stopped again.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx

from devstack.runtime import Invocation
from devstack.services import free_port
from devstack.template import FunctionSpec
from devstack.web_apps import start_web_app


def invoke_web_app(spec: FunctionSpec, env: dict[str, str], event: dict[str, Any]) -> Invocation:
    url = f"http://127.0.0.1:{free_port()}"
    service = start_web_app(spec, env, url)
    started = time.monotonic()
    try:
        http = event["requestContext"]["http"]
        body = event.get("body") or ""
        content = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
        query = event.get("rawQueryString") or ""
        response = httpx.request(
            http["method"],
            url + event["rawPath"] + (f"?{query}" if query else ""),
            headers=event.get("headers") or {},
            content=content,
            timeout=spec.timeout,
        )
    except httpx.HTTPError as exc:
        error = {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": []}
        return Invocation(error=error, duration_ms=(time.monotonic() - started) * 1000)
    finally:
        service.stop()
    result = {"statusCode": response.status_code, "headers": dict(response.headers), "body": response.text}
    return Invocation(result=result, duration_ms=(time.monotonic() - started) * 1000)
