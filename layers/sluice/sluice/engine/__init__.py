"""The run store: create a run (idempotent, one write), read it, ask for it to be (re)sent."""

from sluice.engine.dispatch import dispatch_records
from sluice.engine.durations import parse_duration
from sluice.engine.ids import derived_run_id, new_run_id
from sluice.engine.models import (
    Run,
    RunError,
    TriggerBody,
    TriggerOptions,
    parse_task_id,
    parse_trigger_body,
)
from sluice.engine.service import TriggerResult, get_run, request_dispatch, trigger

__all__ = [
    "Run",
    "RunError",
    "TriggerBody",
    "TriggerOptions",
    "TriggerResult",
    "derived_run_id",
    "dispatch_records",
    "get_run",
    "new_run_id",
    "parse_duration",
    "parse_task_id",
    "parse_trigger_body",
    "request_dispatch",
    "trigger",
]
