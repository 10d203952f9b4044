"""Burst smoothing: a gate in front of the engine that, while an environment is over its trigger
rate, buffers triggers in Redis and answers at once; an SQS-fed drainer creates their runs fairly.

- ``mollify``: buffer a prepared run with its drain signal; ``buffered_run``: a buffered run as the
  engine will show it (``intake``, the buffer's side of a trigger). The trigger use case, which
  decides between the buffer and the engine, is ``sluice.triggers``.
- ``drain_batch``: a batch of DrainQueue signals (``drain``); ``sweep``: the scheduled repair and
  metrics pass.
- ``gate``, ``trip``, ``buffer``, ``keys``: the parts, each named after what DESIGN.md section 4 calls it.
"""

from sluice.config import get_settings
from sluice.mollifier.buffer import MollifierBuffer, get_buffer
from sluice.mollifier.drain import drain_batch
from sluice.mollifier.intake import buffered_run, mollify
from sluice.mollifier.models import BufferEntry, Decision, DrainSignal, Outcome, Reason
from sluice.mollifier.sweep import SweepReport, run_sweep


def sweep() -> SweepReport:
    """One stale-sweep pass over the process-wide buffer with the current settings."""
    return run_sweep(get_buffer(), get_settings())


__all__ = [
    "BufferEntry",
    "Decision",
    "DrainSignal",
    "MollifierBuffer",
    "Outcome",
    "Reason",
    "SweepReport",
    "buffered_run",
    "drain_batch",
    "get_buffer",
    "mollify",
    "sweep",
]
