"""Load a function's handler from its CodeUri and call it with a Lambda-like context."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from devstack.template import ACCOUNT, REGION, FunctionSpec

Handler = Callable[[dict[str, Any], Any], Any]

_import_lock = threading.RLock()


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_s: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/devstack"
    log_stream_name: str = "devstack"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def context_for(spec: FunctionSpec) -> LambdaContext:
    return LambdaContext(
        function_name=spec.logical_id, memory_limit_in_mb=spec.memory, timeout_s=spec.timeout
    )


def load_handler(spec: FunctionSpec) -> Handler:
    """Import ``<CodeUri>/<module>.py`` under a name of its own, so functions never share a
    module object, and return its handler attribute."""
    module_name, _, attr = spec.handler.rpartition(".")
    qualified = f"sluice_functions.{spec.name}.{module_name}"
    # Threads serving a function's first requests at once must not see a half-executed module.
    with _import_lock:
        module = sys.modules.get(qualified)
        if module is None:
            module = _import(qualified, spec.code_uri / (module_name.replace(".", "/") + ".py"))
    handler: Handler = getattr(module, attr)
    return handler


def _import(qualified: str, path: Path) -> ModuleType:
    loader_spec = importlib.util.spec_from_file_location(qualified, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[qualified] = module
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[qualified]
        raise
    return module
