"""The trigger use case: ``POST /api/v1/tasks/{taskId}/trigger``, and the run read that also sees
buffered runs. It sits above the engine and the burst buffer and applies no rule of either.

A trigger is validated and prepared once (``engine.parse_trigger_body``, ``engine.prepare``: what
the engine would refuse is refused now, while the caller is listening), and that one prepared run
goes to the engine (pass-through, ``engine.create``) or to the buffer (mollify).

- Kill switch off (``SLUICE_MOLLIFIER_ENABLED``): straight to the engine; no mollifier code runs
  and Redis is never touched.
- On: engine idempotency -> buffer idempotency -> pre-gate claim -> gate -> mollify (accept + drain
  signal) | shadow_log | pass_through. A rejected or cached trigger never reaches the gate; every
  Redis failure passes through (fail open).

The run id is minted when the run is prepared and used on both paths, so a buffer write that timed
out but landed, followed by the fail-open pass-through, still makes one run: the drainer's create
with the same id finds it.

The buffer's path is ``sluice.smoothing``, imported on first use: with the kill switch off (the
default) a cold start never imports the mollifier or redis-py (``bench/cold_start.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from sluice import engine
from sluice.auth import Environment
from sluice.config import get_settings
from sluice.engine import PreparedRun, run_v3
from sluice.engine.models import Run
from sluice.errors import NotFound


class TriggerResponse(BaseModel):
    """What ``POST /api/v1/tasks/{taskId}/trigger`` answers."""

    id: str
    isCached: bool
    # Set when the trigger was buffered in a burst: why, and that the run appears shortly.
    notice: dict[str, str] | None = None


@dataclass(frozen=True)
class TriggerAnswer:
    id: str
    is_cached: bool
    notice: dict[str, str] | None = None

    def to_api(self) -> dict[str, Any]:
        answer = TriggerResponse(id=self.id, isCached=self.is_cached, notice=self.notice)
        return answer.model_dump(exclude_none=True)


def trigger(env: Environment, task_id: str, raw_body: Any) -> TriggerAnswer:
    """Validate and trigger a task: buffered during a burst, otherwise straight into the engine.

    Raises:
        BadRequest, Unprocessable, PayloadTooLarge: an invalid trigger.
        ClaimTimedOut: a trigger with the same idempotency key held it past the wait.
        ServiceUnavailable: the engine is down on the pass-through path.
    """
    prepared = engine.prepare(env, task_id, engine.parse_trigger_body(raw_body, env.tenant))
    if not get_settings().mollifier_enabled:
        return pass_through(prepared)
    if engine.bound_run_id(prepared) is not None:
        return pass_through(prepared)  # the engine answers with the key's run
    from sluice import smoothing  # here: the buffer path costs a cold start nothing until used

    return smoothing.trigger(env, prepared)


def pass_through(prepared: PreparedRun) -> TriggerAnswer:
    result = engine.create(prepared)
    return TriggerAnswer(result.id, result.is_cached)


def read_run(env: Environment, run_id: str) -> dict[str, Any]:
    """``GET /api/v1/runs/{id}``: the engine's run, or the buffered one (``"buffered": true``).

    Raises:
        NotFound: neither the engine nor the buffer has the run in the caller's environment.
        ServiceUnavailable: the engine has no such run and the buffer cannot be read.
    """
    return find_run(env, run_id).to_api()


def read_run_v3(env: Environment, run_id: str) -> dict[str, Any]:
    """``GET /api/v3/runs/{id}``: the run as the trigger.dev SDK reads it (``engine.run_v3``), its
    parent and root among the related runs. Raises as ``read_run``."""

    def related(related_id: str) -> Run | None:
        try:
            return engine.get_run(env, related_id)
        except NotFound:
            return None

    return run_v3.retrieve_view(find_run(env, run_id), related)


def find_run(env: Environment, run_id: str) -> Run:
    """The engine's run, or the buffered one; raises as ``read_run``."""
    try:
        return engine.get_run(env, run_id)
    except NotFound:
        if not get_settings().mollifier_enabled:
            raise
    from sluice import smoothing  # here, as in trigger

    return smoothing.read_buffered(env, run_id)
