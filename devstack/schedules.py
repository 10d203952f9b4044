"""Schedule events: EventBridge ``rate(...)`` and ``cron(...)`` expressions, on a clock that can
run faster than the wall clock.

``scale`` speeds time up: at 60, ``rate(1 minute)`` fires every second and ``cron(0 * * * ? *)``
once a minute. Schedules run on a virtual clock that starts at the wall-clock time the stack starts
and advances ``scale`` times faster, so cron expressions keep their meaning, only compressed.
Invocations are asynchronous, as EventBridge's are: a slow run never delays the next tick.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import re
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from devstack.runtime import FunctionRuntime
from devstack.template import ACCOUNT, REGION, EventSource

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {name: i for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_MAX_SEARCH = timedelta(days=366 * 5)


def rate_seconds(expression: str) -> int | None:
    found = _RATE.match(expression.strip())
    if not found:
        return None
    return int(found.group(1)) * _UNIT_S[found.group(2).rstrip("s")]


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int] | None:
    """The values one cron field allows; None for ``*`` and ``?`` (anything)."""
    if text in ("*", "?"):
        return None
    if any(c in text for c in "LW#"):
        raise ValueError(f"cron field {text!r}: L, W and # are not supported by devstack")
    values: set[int] = set()

    def value(token: str) -> int:
        return (names or {}).get(token.upper(), None) or int(token)

    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = value(first), value(last)
        else:
            start = value(base)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high):
            raise ValueError(f"cron field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


@dataclass(frozen=True)
class Cron:
    """An EventBridge cron: minutes hours day-of-month month day-of-week year (1 = Sunday)."""

    minutes: set[int] | None
    hours: set[int] | None
    days: set[int] | None
    months: set[int] | None
    weekdays: set[int] | None
    years: set[int] | None
    zone: tzinfo = UTC

    @classmethod
    def parse(cls, expression: str, zone: tzinfo = UTC) -> Cron:
        found = _CRON.match(expression.strip())
        fields = found.group(1).split() if found else []
        if len(fields) != 6:
            raise ValueError(f"not an EventBridge cron expression: {expression!r}")
        minute, hour, day, month, weekday, year = fields
        return cls(
            _field(minute, 0, 59),
            _field(hour, 0, 23),
            _field(day, 1, 31),
            _field(month, 1, 12, _MONTHS),
            _field(weekday, 1, 7, _DAYS),
            _field(year, 1970, 2199),
            zone,
        )

    def _day_matches(self, moment: datetime) -> bool:
        weekday = (moment.weekday() + 1) % 7 + 1
        return (self.days is None or moment.day in self.days) and (
            self.weekdays is None or weekday in self.weekdays
        )

    def next_after(self, after: datetime) -> datetime:
        """The first matching minute strictly after ``after``."""
        moment = after.astimezone(self.zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = moment + _MAX_SEARCH
        while moment < limit:
            if self.years is not None and moment.year not in self.years:
                moment = moment.replace(year=moment.year + 1, month=1, day=1, hour=0, minute=0)
            elif self.months is not None and moment.month not in self.months:
                moment = (moment.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(moment):
                moment = moment.replace(hour=0, minute=0) + timedelta(days=1)
            elif self.hours is not None and moment.hour not in self.hours:
                moment = moment.replace(minute=0) + timedelta(hours=1)
            elif self.minutes is not None and moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
            else:
                return moment
        raise ValueError("the cron expression never fires")


@dataclass(frozen=True)
class ScheduleSource:
    name: str
    expression: str
    event: dict[str, Any] | None  # the rule's Input; None -> a Scheduled Event
    zone: tzinfo = UTC

    @classmethod
    def from_event(cls, event: EventSource) -> ScheduleSource | None:
        """The schedule of a ``Schedule`` or ``ScheduleV2`` event; None when it is disabled."""
        props = event.properties
        if event.type == "ScheduleV2":
            expression = str(props.get("ScheduleExpression", ""))
            enabled = str(props.get("State", "ENABLED")).upper() == "ENABLED"
            zone: tzinfo = ZoneInfo(str(props.get("ScheduleExpressionTimezone") or "UTC"))
        else:
            expression = str(props.get("Schedule", ""))
            enabled = props.get("Enabled", True) not in (False, "false", "False") and (
                str(props.get("State", "ENABLED")).upper() == "ENABLED"
            )
            zone = UTC
        if not enabled:
            return None
        raw_input = props.get("Input")
        payload = json.loads(raw_input) if isinstance(raw_input, str) else raw_input
        source = cls(event.name, expression, payload, zone)
        source.next_after(datetime.now(UTC))  # rejects an expression devstack cannot run, early
        return source

    def next_after(self, moment: datetime) -> datetime:
        seconds = rate_seconds(self.expression)
        if seconds is not None:
            return moment + timedelta(seconds=seconds)
        if self.expression.startswith("cron("):
            return Cron.parse(self.expression, self.zone).next_after(moment)
        raise ValueError(f"unsupported schedule expression {self.expression!r}")


def scheduled_event(function: str, source: ScheduleSource) -> dict[str, Any]:
    if source.event is not None:
        return dict(source.event) if isinstance(source.event, dict) else source.event
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{function}-{source.name}"],
        "detail": {},
    }


class Scheduler:
    """Fires every schedule of every function on one thread; invocations run on a pool."""

    def __init__(self, scale: float = 1.0, *, verbose: bool = False) -> None:
        if scale <= 0:
            raise ValueError("the schedule scale must be positive")
        self.scale = scale
        self.verbose = verbose
        self._entries: list[tuple[FunctionRuntime, ScheduleSource]] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="devstack-schedule")
        self._thread = threading.Thread(target=self._run, name="devstack-scheduler", daemon=True)
        self._origin_wall = datetime.now(UTC)
        self._origin_mono = time.monotonic()

    def add(self, runtime: FunctionRuntime, source: ScheduleSource) -> None:
        self._entries.append((runtime, source))

    def __len__(self) -> int:
        return len(self._entries)

    def virtual_now(self) -> datetime:
        return self._origin_wall + timedelta(seconds=(time.monotonic() - self._origin_mono) * self.scale)

    def start(self) -> None:
        if self._entries:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        start = self.virtual_now()
        due = [source.next_after(start) for _, source in self._entries]
        while not self._stop.is_set():
            now = self.virtual_now()
            for i, (runtime, source) in enumerate(self._entries):
                if due[i] <= now:
                    self._fire(runtime, source)
                    due[i] = source.next_after(due[i])
                    # A stack paused (laptop asleep) fires a missed tick once, not a backlog.
                    while due[i] <= now:
                        due[i] = source.next_after(due[i])
            wait = (min(due) - self.virtual_now()).total_seconds() / self.scale
            self._stop.wait(min(max(wait, 0.01), 1.0))

    def _fire(self, runtime: FunctionRuntime, source: ScheduleSource) -> None:
        event = scheduled_event(runtime.name, source)
        # RuntimeError: the pool is shut down, the stack is stopping.
        with contextlib.suppress(RuntimeError):
            self._pool.submit(self._invoke, runtime, source, event)

    def _invoke(self, runtime: FunctionRuntime, source: ScheduleSource, event: Any) -> None:
        outcome = runtime.invoke(event)
        if not outcome.ok:
            error = outcome.error or {}
            trace = "".join(error.get("stackTrace") or [])
            sys.stderr.write(
                f"devstack schedule {runtime.name}/{source.name}: "
                f"{error.get('errorType')}: {error.get('errorMessage')}\n{trace}"
            )
        elif self.verbose:
            took = f"{outcome.duration_ms:.0f} ms"
            sys.stderr.write(f"devstack schedule {runtime.name}/{source.name}: ok ({took})\n")
