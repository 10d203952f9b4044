"""Functions that the Lambda Web Adapter runs (a web app started by a script, not a Python
handler), served locally the same way: their start script under the function's environment.

In AWS the adapter relays the app's response as it is written (Function URL, RESPONSE_STREAM);
locally clients talk to the app directly, so a streamed response streams here too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from devstack.cors import WEB_APP_SETTING, CorsPolicy
from devstack.services import Service, free_port, wait_for_http
from devstack.template import FunctionSpec

# The folder that holds the devstack package (the repository's root).
DEVSTACK_HOME = Path(__file__).resolve().parent.parent
READINESS_DEFAULT = "/"
START_TIMEOUT_S = 30


def web_app_specs(specs: list[FunctionSpec]) -> list[FunctionSpec]:
    return [spec for spec in specs if spec.web_adapter]


def reserve_urls(specs: list[FunctionSpec], host: str) -> dict[str, str]:
    """A free port per web app, chosen before the other functions start so that their
    environment can name the app's URL (as ``!GetAtt <Fn>Url.FunctionUrl`` does in AWS)."""
    return {spec.logical_id: f"http://{host}:{free_port()}" for spec in specs}


def start_web_app(
    spec: FunctionSpec,
    env: Mapping[str, str],
    url: str,
    *,
    cors: CorsPolicy | None = None,
    verbose: bool = False,
) -> Service:
    host, _, port = url.removeprefix("http://").rpartition(":")
    app_env = {
        **env,
        "AWS_LWA_HOST": host,
        "AWS_LWA_PORT": port,
        # The start script's interpreter: devstack's own, which has the layer's packages.
        "SLUICE_PYTHON": sys.executable,
    }
    if cors is not None:
        # The start script then serves the app behind the Function URL's CORS (devstack.cors).
        # devstack is not an installed package and the app starts in the function's folder, so
        # the folder devstack lives in goes on its path.
        app_env.update({"DEVSTACK_ASGI_APP": "devstack.function_url:app", WEB_APP_SETTING: cors.to_json()})
        app_env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(DEVSTACK_HOME), env.get("PYTHONPATH"))))
    script = spec.code_uri / spec.handler
    output = None if verbose else subprocess.DEVNULL
    process = subprocess.Popen(
        ["sh", str(script)], cwd=spec.code_uri, env=app_env, stdout=output, stderr=output
    )
    check = url + env.get("AWS_LWA_READINESS_CHECK_PATH", READINESS_DEFAULT)
    service = Service(url, process)
    try:
        wait_for_http(check, START_TIMEOUT_S, spec.logical_id)
    except RuntimeError:
        service.stop()
        raise
    return service
