"""The run store: create a run (idempotent), read it, enqueue it for execution."""

from sluice.engine.durations import parse_duration
from sluice.engine.ids import derived_run_id, new_run_id
from sluice.engine.models import Run, RunError, TriggerBody, TriggerOptions, parse_trigger_body
from sluice.engine.service import TriggerResult, get_run, trigger

__all__ = [
    "Run",
    "RunError",
    "TriggerBody",
    "TriggerOptions",
    "TriggerResult",
    "derived_run_id",
    "get_run",
    "new_run_id",
    "parse_duration",
    "parse_trigger_body",
    "trigger",
]
