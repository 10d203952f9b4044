"""The trip evaluator: one atomic Lua call per trigger (``lua/evaluate_trip.lua``).

A fixed window, not a sliding one: the counter is shared by every function instance that uses the
same Redis, so the threshold is a fleet-wide ceiling per environment, and up to about twice the
threshold can pass at a window boundary. Tripped means the hold key exists; every over-threshold
call re-arms it, so a sustained burst keeps diversion on, and the environment recovers once both
the window and the hold have expired.
"""

from __future__ import annotations

from collections.abc import Callable

from sluice.auth import Environment
from sluice.config import Settings
from sluice.mollifier.buffer import MollifierBuffer
from sluice.mollifier.models import TripResult

TripEvaluator = Callable[[Environment], TripResult]


def trip_evaluator(buffer: MollifierBuffer, settings: Settings) -> TripEvaluator:
    """An evaluator with the configured window, threshold and hold. Raises Redis errors: the gate
    turns them into pass-through."""

    def evaluate(env: Environment) -> TripResult:
        return buffer.evaluate_trip(
            env.org_id,
            env.env_id,
            window_ms=settings.mollifier_trip_window_ms,
            threshold=settings.mollifier_trip_threshold,
            hold_ms=settings.mollifier_hold_ms,
        )

    return evaluate
