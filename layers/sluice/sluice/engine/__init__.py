"""The run store: prepare a trigger's run, create it (idempotent, one write), read it, ask for it
to be (re)sent."""

from sluice.engine.dispatch import dispatch_records
from sluice.engine.durations import parse_duration
from sluice.engine.ids import derived_run_id, new_run_id
from sluice.engine.models import (
    Run,
    RunError,
    RunView,
    TriggerBody,
    TriggerOptions,
    parse_task_id,
    parse_trigger_body,
)
from sluice.engine.service import (
    PreparedRun,
    TriggerResult,
    bound_run_id,
    create,
    get_run,
    prepare,
    replay,
    request_dispatch,
    trigger,
)

__all__ = [
    "PreparedRun",
    "Run",
    "RunError",
    "RunView",
    "TriggerBody",
    "TriggerOptions",
    "TriggerResult",
    "bound_run_id",
    "create",
    "derived_run_id",
    "dispatch_records",
    "get_run",
    "new_run_id",
    "parse_duration",
    "parse_task_id",
    "parse_trigger_body",
    "prepare",
    "replay",
    "request_dispatch",
    "trigger",
]
