"""pytest fixtures over devstack.testing.launcher, which tests/conftest.py offers to every test.

Import ``StartDevstack`` (the factory's type) from here, never the fixtures themselves: a session
fixture imported into a module is a stack of that module's own, alive until the session ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from devstack.testing.launcher import DevStack, shared_devstack, start_devstack

StartDevstack = Callable[..., DevStack]


# Where pytest-xdist's controller tells its workers to share one session stack (tests/conftest.py).
SHARED_DEVSTACK = "shared_devstack_dir"


@pytest.fixture(scope="session")
def devstack(request: pytest.FixtureRequest) -> Iterator[DevStack]:
    """The session's stack on the default template.yaml, with the dev key of ``org_dev/env_dev``.
    Shared by every test of the session, and under xdist by every worker (the first to ask starts
    it, the controller stops it): use your own org/env ids (``devstack.create_key``)."""
    shared = getattr(request.config, "workerinput", {}).get(SHARED_DEVSTACK)
    with start_devstack() if shared is None else shared_devstack(Path(shared)) as stack:
        yield stack


# The stack of the tests that kill workers: a run lease of 3 s and the reaper's rate(1 minute)
# every 2 s, so that a lost worker's run is retried within seconds.
LIFECYCLE_LEASE_S = 3
LIFECYCLE_SCHEDULE_SCALE = 30


@pytest.fixture(scope="session")
def lifecycle_devstack() -> Iterator[DevStack]:
    """A stack with short run leases and a fast run reaper, shared by the session's run-lifecycle
    tests (tests/conftest.py keeps them on one xdist worker). Tests run their own workers on it and
    stop them before they end, so that the next test's workers find RunQueue to themselves."""
    env = {"SLUICE_RUN_LEASE_S": str(LIFECYCLE_LEASE_S)}
    with start_devstack(env, args=["--schedule-scale", str(LIFECYCLE_SCHEDULE_SCALE)]) as stack:
        yield stack


@pytest.fixture
def devstack_factory() -> Iterator[StartDevstack]:
    """Start stacks of your own, stopped (and checked for leftover processes) after the test:

    stack = devstack_factory(env={"SLUICE_MOLLIFIER_ENABLED": "true"}, args=["--concurrency", "2"])
    """
    with ExitStack() as stacks:

        def start(
            env: Mapping[str, str] | None = None,
            template: str | Path | None = None,
            args: Sequence[str] = (),
            **kwargs: Any,
        ) -> DevStack:
            return stacks.enter_context(start_devstack(env, template, args, **kwargs))

        yield start
