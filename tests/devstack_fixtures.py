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

from devstack.testing.launcher import DevStack, start_devstack

StartDevstack = Callable[..., DevStack]


@pytest.fixture(scope="session")
def devstack() -> Iterator[DevStack]:
    """The session's stack on the default template.yaml, with the dev key of ``org_dev/env_dev``.
    Shared by every test of the session: use your own org/env ids (``devstack.create_key``)."""
    with start_devstack() as stack:
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
